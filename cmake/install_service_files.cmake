# Installs the systemd unit and the example configuration, at install time so that
# `cmake --install build --prefix P` puts them under P and the unit names P's binary.
#
# Inputs: OTP_SIDECAR_SOURCE_DIR, OTP_SIDECAR_BINARY_DIR, OTP_SIDECAR_BINDIR (relative to the
# prefix);
# CMAKE_INSTALL_PREFIX is the prefix given to `cmake --install`.

set(prefix "${CMAKE_INSTALL_PREFIX}")
# /usr is the system prefix: its configuration belongs in /etc, as GNUInstallDirs says.
if(prefix STREQUAL "/usr")
  set(confdir "/etc/otp-sidecar")
else()
  set(confdir "${prefix}/etc/otp-sidecar")
endif()

file(READ "${OTP_SIDECAR_SOURCE_DIR}/systemd/otp-sidecar.service" unit)
string(REPLACE "/usr/bin/otp-sidecar" "${prefix}/${OTP_SIDECAR_BINDIR}/otp-sidecar" unit "${unit}")
string(REPLACE "/etc/otp-sidecar/" "${confdir}/" unit "${unit}")

# Written to a staging file first so that file(INSTALL) records it in the install manifest.
set(staged_unit "${OTP_SIDECAR_BINARY_DIR}/staged/otp-sidecar.service")
file(WRITE "${staged_unit}" "${unit}")
file(INSTALL "${staged_unit}" DESTINATION "$ENV{DESTDIR}${prefix}/lib/systemd/system")

set(config_path "$ENV{DESTDIR}${confdir}/otp-sidecar.toml")
if(EXISTS "${config_path}")
  # An operator's edited configuration is never overwritten.
  message(STATUS "Keeping: ${config_path}")
else()
  file(INSTALL "${OTP_SIDECAR_SOURCE_DIR}/etc/otp-sidecar.toml"
       DESTINATION "$ENV{DESTDIR}${confdir}")
endif()
