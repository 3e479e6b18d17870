#!/usr/bin/env bash
# Builds the Debian package from BUILD_DIR into a temporary folder with `cpack -G DEB` and
# checks what it holds (dpkg-deb -c) and declares (dpkg-deb -I): the binary, both units, the
# example configuration as a conffile, the migrations, and dependencies on the runtime
# libraries.
#
# usage: deb_contents.sh BUILD_DIR SOURCE_DIR
set -euo pipefail

build_dir="$1"
source_dir="$2"

for tool in cpack dpkg-deb dpkg-shlibdeps; do
  if ! command -v "$tool" >/dev/null; then
    echo "SKIPPED: $tool is not installed (apt-get install dpkg-dev cmake); the package was" \
         "NOT checked" >&2
    exit 77
  fi
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$build_dir" && cpack -G DEB -B "$work" >"$work/cpack.log" 2>&1) || {
  cat "$work/cpack.log" >&2
  exit 1
}
deb="$(ls "$work"/otp-sidecar_*.deb)"
contents="$(dpkg-deb -c "$deb" | awk '{print $1, $NF}')"
info="$(dpkg-deb -I "$deb")"
failed=0

expect_file() {  # MODE_PREFIX PATH
  if ! grep -qx -- "$1[^ ]* \./${2#/}" <<<"$contents"; then
    echo "missing from the package: $2 (mode $1...)" >&2
    failed=1
  fi
}
expect_file "-rwxr-xr-x" /usr/bin/otp-sidecar
expect_file "-rw-r--r--" /usr/lib/systemd/system/otp-sidecar.service
expect_file "-rw-r--r--" /usr/lib/systemd/system/otp-sidecar.socket
expect_file "-rw-r--r--" /etc/otp-sidecar/otp-sidecar.toml
expect_file "drwx------" /etc/otp-sidecar/credentials/
expect_file "-rw-r--r--" /usr/share/doc/otp-sidecar/README.md
for migration in "$source_dir"/migrations/*.sql; do
  expect_file "-rw-r--r--" "/usr/share/otp-sidecar/migrations/$(basename "$migration")"
done
if grep -q "_CPack_Packages\|/usr/local/" <<<"$contents"; then
  echo "the package holds staging or /usr/local paths:" >&2
  echo "$contents" >&2
  failed=1
fi

conffiles="$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)"
if [ "$conffiles" != "/etc/otp-sidecar/otp-sidecar.toml" ]; then
  echo "conffiles is not the configuration alone: $conffiles" >&2
  failed=1
fi

depends="$(sed -n 's/^ Depends: //p' <<<"$info")"
for library in libsqlite3 libsodium libsystemd0 libphonenumber libcpp-httplib libtomlplusplus \
               systemd; do
  if ! grep -q "$library" <<<"$depends"; then
    echo "Depends lacks $library: $depends" >&2
    failed=1
  fi
done

unit="$(dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/lib/systemd/system/otp-sidecar.service)"
if ! grep -qx "ExecStart=/usr/bin/otp-sidecar serve --config /etc/otp-sidecar/otp-sidecar.toml" \
     <<<"$unit"; then
  echo "the packaged unit does not run /usr/bin/otp-sidecar with /etc's configuration" >&2
  failed=1
fi

if [ "$failed" -ne 0 ]; then
  echo "$info" >&2
  echo "$contents" >&2
  exit 1
fi
echo "ok: $(basename "$deb")"
