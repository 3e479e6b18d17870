#!/usr/bin/env bash
# Installs the build into a temporary prefix and checks the installed units with systemd's own
# tools: `systemd-analyze verify` must report nothing, and `systemd-analyze security
# --offline=true` must rate the service at most MAX_EXPOSURE.
#
# usage: unit_security.sh BUILD_DIR [MAX_EXPOSURE]
# Exits 77 (reported by ctest as skipped, never as passed) when systemd-analyze is missing.
set -euo pipefail

build_dir="$1"
max_exposure="${2:-1.5}"

if ! command -v systemd-analyze >/dev/null; then
  echo "SKIPPED: systemd-analyze is not installed (apt-get install systemd); the units were" \
       "NOT checked" >&2
  exit 77
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
prefix="$work/usr"
cmake --install "$build_dir" --prefix "$prefix" >/dev/null
unitdir="$prefix/lib/systemd/system"

# The installed unit names the installed binary, so verify has nothing to report.
verify="$(systemd-analyze verify "$unitdir/otp-sidecar.service" "$unitdir/otp-sidecar.socket" 2>&1)" || {
  echo "systemd-analyze verify failed:" >&2
  echo "$verify" >&2
  exit 1
}
if [ -n "$verify" ]; then
  echo "systemd-analyze verify reported:" >&2
  echo "$verify" >&2
  exit 1
fi

report="$(systemd-analyze security --offline=true --no-pager "$unitdir/otp-sidecar.service" 2>&1)"
exposure="$(printf '%s\n' "$report" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')"
if [ -z "$exposure" ]; then
  echo "cannot read the exposure level from systemd-analyze security:" >&2
  echo "$report" >&2
  exit 1
fi
echo "exposure: $exposure (at most $max_exposure)"
if ! awk -v e="$exposure" -v m="$max_exposure" 'BEGIN { exit !(e <= m) }'; then
  echo "$report" >&2
  echo "otp-sidecar.service is rated $exposure, above $max_exposure" >&2
  exit 1
fi
