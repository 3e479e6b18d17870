#pragma once

// The sockets the API is served on: TCP addresses and Unix sockets from `listen`, and the
// sockets systemd passes in when it starts the service from a socket unit.
//
// Unix sockets are made with mode 0660 (and the configured group) before they accept
// anyone. A socket file left by a process that died is replaced; a socket some process
// still listens on is never taken over, and a path that is not a socket is never deleted.

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/result.h"
#include "config/config.h"

namespace sidecar {

struct Listener {
  int fd = -1;
  ListenAddress address;   // as bound: the kernel's port when 0 was asked for
  bool activated = false;  // passed in by systemd
  // A Unix socket file this process made, identified so that it is removed only while it
  // is still the same file.
  bool owns_file = false;
  dev_t file_device = 0;
  ino_t file_inode = 0;
};

struct ListenOptions {
  std::string socket_group;  // Unix sockets' group; empty leaves the one they are made with
  bool allow_remote = false;
  bool auth_enabled = false;  // a non-loopback TCP socket is served only with both
};

// Owns the listening sockets: closes those not taken and removes the Unix socket files
// it made when destroyed. Move-only.
class ListenerSet {
 public:
  ListenerSet() = default;
  ~ListenerSet();
  ListenerSet(ListenerSet&& other) noexcept;
  ListenerSet& operator=(ListenerSet&& other) noexcept;
  ListenerSet(const ListenerSet&) = delete;
  ListenerSet& operator=(const ListenerSet&) = delete;

  // Serves the sockets passed in by systemd (sd_listen_fds) first, then binds each of
  // `addresses` that is not among them (a Unix path or a TCP address equal to a passed-in
  // socket's is not bound again). All are bound and listening when it returns. Errors
  // ("listen_failed") name the address: in use, a live socket at the path, a path that is
  // not a socket, a missing folder, an unknown group, a passed-in socket that is not a
  // listening stream socket or is remote without allow_remote and auth. On error nothing
  // stays open or created.
  static Result<ListenerSet> Open(const std::vector<ListenAddress>& addresses,
                                  const ListenOptions& options);

  const std::vector<Listener>& listeners() const { return listeners_; }

  // Hands the socket of listener `index` to its server, which closes it from then on.
  int TakeFd(std::size_t index);

  // "127.0.0.1:8470,unix:/run/otp-sidecar/otp-sidecar.sock": every address, in order.
  std::string Describe() const;

  // Closes the sockets not taken and removes the Unix socket files this process made (when
  // they are still the files it made). Called by the destructor; safe to call twice.
  void Close();

 private:
  // The sockets systemd passed in, checked (see Open).
  Status AddPassedIn(const ListenOptions& options);
  // Binds each of `addresses` not already among the passed-in sockets.
  Status BindConfigured(const std::vector<ListenAddress>& addresses, const ListenOptions& options);

  std::vector<Listener> listeners_;
};

// The group id for `name` (a group name or a number). Errors ("invalid_config", field
// "socket_group") when no such group exists.
Result<gid_t> ResolveGroup(const std::string& name);

// What would stop a Unix socket from being made at `path`, without touching it: a path that
// exists and is not a socket, or, when nothing is there yet, a folder that does not exist or
// cannot be written.
Status CheckUnixSocketPath(const std::string& path);

}  // namespace sidecar
