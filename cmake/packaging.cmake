# A Debian package: `cpack -G DEB` in the build folder makes otp-sidecar_VERSION_ARCH.deb
# with the binary, both systemd units, the example configuration (a conffile), the
# migrations and the README, installed under /usr and /etc.

set(CPACK_PACKAGE_NAME "otp-sidecar")
set(CPACK_PACKAGE_VENDOR "otp-sidecar")
set(CPACK_PACKAGE_CONTACT "otp-sidecar maintainers <root@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "SMS one-time codes for a login server on the same host")
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
# The install script writes to /etc and names the binary in the unit: CPack must install
# with the real prefix and stage through DESTDIR.
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX "/usr")
set(CPACK_PACKAGING_INSTALL_PREFIX "/usr")
set(CPACK_STRIP_FILES ON)

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION "net")
set(CPACK_DEBIAN_PACKAGE_PRIORITY "optional")
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "SMS one-time codes for a login server on the same host.\n\
 Issues, delivers by SMS and verifies one-time codes for a login server on\n\
 the same host, over HTTP on loopback or a Unix socket.")
# dpkg-shlibdeps reads the runtime libraries (libsqlite3, libsodium, libsystemd,
# libphonenumber, libcpp-httplib, ...) from the binary itself.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "systemd")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

# The configuration is a conffile: an upgrade never overwrites an operator's edits.
set(conffiles "${CMAKE_BINARY_DIR}/debian/conffiles")
file(WRITE "${conffiles}" "/etc/otp-sidecar/otp-sidecar.toml\n")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA "${conffiles}" "${CMAKE_SOURCE_DIR}/cmake/debian/postinst"
    "${CMAKE_SOURCE_DIR}/cmake/debian/prerm" "${CMAKE_SOURCE_DIR}/cmake/debian/postrm")

# cpack packages what is built (build first); it must not rebuild the whole tree itself,
# least of all while the test suite runs the binary.
set(CMAKE_SKIP_INSTALL_ALL_DEPENDENCY ON)

set(CPACK_GENERATOR "DEB")
include(CPack)
