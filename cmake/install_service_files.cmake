# Installs the systemd units, the example configuration and the empty credentials folder,
# at install time so that `cmake --install build --prefix P` puts them under P and the
# service unit names P's binary.
#
# Inputs: OTP_SIDECAR_SOURCE_DIR, OTP_SIDECAR_BINARY_DIR, OTP_SIDECAR_BINDIR (relative to the
# prefix);
# CMAKE_INSTALL_PREFIX is the prefix given to `cmake --install` (or CPack's /usr).

set(prefix "${CMAKE_INSTALL_PREFIX}")
# /usr is the system prefix: its configuration belongs in /etc, as GNUInstallDirs says.
if(prefix STREQUAL "/usr")
  set(confdir "/etc/otp-sidecar")
else()
  set(confdir "${prefix}/etc/otp-sidecar")
endif()

# Units are written to a staging file first so that file(INSTALL) records them in the
# install manifest.
# file(INSTALL) puts $DESTDIR in front of these destinations itself.
set(unitdir "${prefix}/lib/systemd/system")
foreach(name otp-sidecar.service otp-sidecar.socket)
  file(READ "${OTP_SIDECAR_SOURCE_DIR}/systemd/${name}" unit)
  string(REPLACE "/usr/bin/otp-sidecar" "${prefix}/${OTP_SIDECAR_BINDIR}/otp-sidecar" unit
                 "${unit}")
  string(REPLACE "/etc/otp-sidecar/" "${confdir}/" unit "${unit}")
  set(staged_unit "${OTP_SIDECAR_BINARY_DIR}/staged/${name}")
  file(WRITE "${staged_unit}" "${unit}")
  file(INSTALL "${staged_unit}" DESTINATION "${unitdir}")
endforeach()

# LoadCredential= in the unit loads every file of this folder; it must exist, even empty.
file(INSTALL DESTINATION "${confdir}" TYPE DIRECTORY FILES
     "${OTP_SIDECAR_SOURCE_DIR}/etc/credentials"
     DIRECTORY_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE
     FILES_MATCHING PATTERN "README" EXCLUDE)

set(config_path "$ENV{DESTDIR}${confdir}/otp-sidecar.toml")
if(EXISTS "${config_path}")
  # An operator's edited configuration is never overwritten.
  message(STATUS "Keeping: ${config_path}")
else()
  file(INSTALL "${OTP_SIDECAR_SOURCE_DIR}/etc/otp-sidecar.toml" DESTINATION "${confdir}")
endif()
