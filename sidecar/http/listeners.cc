#include "http/listeners.h"

#include <arpa/inet.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <optional>

#include "common/log.h"
#include "common/paths.h"

namespace sidecar {
namespace {

constexpr const char kInUse[] = "the address is already in use (is another otp-sidecar running?)";

Error ListenError(const std::string& address, const std::string& why) {
  return MakeError("listen_failed", "cannot listen on " + address + ": " + why);
}

std::string ErrnoText(int error) {
  return std::strerror(error);
}

sockaddr_un UnixAddress(const std::string& path, socklen_t* length) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.data(), path.size());  // checked by the config: <= 107
  *length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
  return address;
}

std::string AbsolutePath(const std::string& path) {
  if (!path.empty() && path.front() == '/') return path;
  char folder[4096];
  if (::getcwd(folder, sizeof folder) == nullptr) return path;
  return std::string(folder) + "/" + path;
}

// The address a socket is bound to, as a `listen` entry would name it.
Result<ListenAddress> LocalAddress(int fd) {
  sockaddr_storage storage{};
  socklen_t length = sizeof storage;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&storage), &length) != 0) {
    return MakeError("listen_failed", "getsockname: " + ErrnoText(errno));
  }

  char host[INET6_ADDRSTRLEN] = "";
  if (storage.ss_family == AF_INET) {
    auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
    ::inet_ntop(AF_INET, &v4->sin_addr, host, sizeof host);
    return ListenAddress{host, ntohs(v4->sin_port), ""};
  }
  if (storage.ss_family == AF_INET6) {
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
    ::inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof host);
    return ListenAddress{host, ntohs(v6->sin6_port), ""};
  }
  if (storage.ss_family == AF_UNIX) {
    auto* local = reinterpret_cast<sockaddr_un*>(&storage);
    std::size_t size = length - offsetof(sockaddr_un, sun_path);
    std::string path(local->sun_path, size);
    // An abstract socket's name starts with a NUL byte; it is shown with "@" as ss does.
    if (!path.empty() && path.front() == '\0') path.front() = '@';
    path = path.substr(0, path.find('\0'));
    return ListenAddress{"", 0, path.empty() ? "@" : path};
  }
  return MakeError("listen_failed", "the socket is neither TCP nor a Unix socket");
}

bool SameAddress(const ListenAddress& configured, const ListenAddress& passed_in) {
  if (configured.is_unix() || passed_in.is_unix()) {
    return configured.is_unix() && passed_in.is_unix() &&
           AbsolutePath(configured.unix_path) == passed_in.unix_path;
  }
  return configured.host == passed_in.host && configured.port == passed_in.port;
}

void RemoveOwnedFile(Listener& listener) {
  if (!listener.owns_file) return;
  listener.owns_file = false;
  // Only the file this process made: another process may have replaced it since.
  const std::string& path = listener.address.unix_path;
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) &&
      st.st_dev == listener.file_device && st.st_ino == listener.file_inode) {
    ::unlink(path.c_str());
  }
}

void CloseListener(Listener& listener) {
  if (listener.fd >= 0) ::close(listener.fd);
  listener.fd = -1;
  RemoveOwnedFile(listener);
}

int BindTcp(const addrinfo& candidate, int* error) {
  int fd = ::socket(candidate.ai_family, SOCK_STREAM | SOCK_CLOEXEC, candidate.ai_protocol);
  if (fd < 0) {
    *error = errno;
    return -1;
  }
  // SO_REUSEADDR alone: a restart binds while old connections linger in TIME_WAIT, and no
  // SO_REUSEPORT, which would let a second sidecar share the port without an error.
  int yes = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  // Without TCP_NODELAY each answer waits ~40 ms for Nagle; accepted sockets inherit it.
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
  if (::bind(fd, candidate.ai_addr, candidate.ai_addrlen) != 0 || ::listen(fd, SOMAXCONN) != 0) {
    *error = errno;
    ::close(fd);
    return -1;
  }
  return fd;
}

Result<Listener> OpenTcp(const ListenAddress& address) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  std::string port = std::to_string(address.port);
  int rc = ::getaddrinfo(address.host.c_str(), port.c_str(), &hints, &found);
  if (rc != 0) return ListenError(address.ToString(), ::gai_strerror(rc));

  int error = 0;
  int fd = -1;
  for (addrinfo* candidate = found; candidate != nullptr && fd < 0; candidate = candidate->ai_next)
    fd = BindTcp(*candidate, &error);
  ::freeaddrinfo(found);
  if (fd < 0) {
    return ListenError(address.ToString(), error == EADDRINUSE ? kInUse : ErrnoText(error));
  }

  Listener listener;
  listener.fd = fd;
  listener.address = address;
  Result<ListenAddress> bound = LocalAddress(fd);
  if (bound.ok()) listener.address.port = bound->port;
  return listener;
}

// A socket file nobody listens on was left by a process that died and is removed; one
// that a process still listens on is not taken over. Connecting tells the two apart.
// TODO(listen): two sidecars started at the same instant on one stale file can both remove
// it and bind in turn, leaving the first without its file; a lock file beside the socket
// would serialise them.
Status ClaimUnixPath(const ListenAddress& address) {
  const std::string& path = address.unix_path;
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return OkStatus();
    return ListenError(address.ToString(), ErrnoText(errno));
  }
  if (!S_ISSOCK(st.st_mode)) {
    return ListenError(address.ToString(), "the path exists and is not a socket; it is left alone");
  }

  int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (probe < 0) return ListenError(address.ToString(), ErrnoText(errno));
  socklen_t length = 0;
  sockaddr_un target = UnixAddress(path, &length);
  int rc = ::connect(probe, reinterpret_cast<sockaddr*>(&target), length);
  int error = errno;
  ::close(probe);
  if (rc == 0 || error == EAGAIN) {
    return ListenError(address.ToString(),
                       "a process is listening on it (is another otp-sidecar running?)");
  }
  if (error != ECONNREFUSED) {
    return ListenError(address.ToString(), "cannot tell whether it is in use: " + ErrnoText(error));
  }

  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return ListenError(address.ToString(), "cannot remove the stale socket: " + ErrnoText(errno));
  }
  Log(LogLevel::kInfo, "http", "replaced a stale socket file", {{"path", path}});
  return OkStatus();
}

// Gives the bound socket file its group and mode 0660, then listens.
Status OpenUnixFile(Listener& listener, const std::optional<gid_t>& group) {
  const std::string& path = listener.address.unix_path;
  const std::string name = listener.address.ToString();
  if (group && ::chown(path.c_str(), static_cast<uid_t>(-1), *group) != 0) {
    return ListenError(name, "cannot give the socket to group " + std::to_string(*group) + ": " +
                                 ErrnoText(errno) + " (the service must be a member)");
  }
  if (::chmod(path.c_str(), 0660) != 0) return ListenError(name, "chmod: " + ErrnoText(errno));
  if (::listen(listener.fd, SOMAXCONN) != 0) return ListenError(name, ErrnoText(errno));
  return OkStatus();
}

Result<Listener> OpenUnix(const ListenAddress& address, const std::optional<gid_t>& group) {
  Status claimed = ClaimUnixPath(address);
  if (!claimed.ok()) return claimed.error();

  Listener listener;
  listener.address = address;
  listener.fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listener.fd < 0) return ListenError(address.ToString(), ErrnoText(errno));

  // The file is made with mode 0600 under a strict umask, and only opened to the group
  // once it has its group; nobody can connect before listen(), so no one but the owner and
  // the group ever can. The umask is process-wide: no other thread makes files yet.
  socklen_t length = 0;
  sockaddr_un target = UnixAddress(address.unix_path, &length);
  mode_t previous = ::umask(0177);
  int rc = ::bind(listener.fd, reinterpret_cast<sockaddr*>(&target), length);
  int error = errno;
  ::umask(previous);
  if (rc != 0) {
    CloseListener(listener);
    std::string why = error == EADDRINUSE ? kInUse
                      : error == ENOENT
                          ? "folder " + FolderOf(address.unix_path) + " does not exist"
                          : ErrnoText(error);
    return ListenError(address.ToString(), why);
  }

  struct stat st {};
  ::lstat(address.unix_path.c_str(), &st);
  listener.owns_file = true;
  listener.file_device = st.st_dev;
  listener.file_inode = st.st_ino;
  Status opened = OpenUnixFile(listener, group);
  if (!opened.ok()) {
    CloseListener(listener);
    return opened.error();
  }
  return listener;
}

// Checks one socket passed in by systemd.
Result<Listener> AdoptPassedIn(int fd, const ListenOptions& options) {
  std::string name = "socket activation: file descriptor " + std::to_string(fd);
  if (::sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0) {
    return MakeError("listen_failed", name + " is not a listening stream socket");
  }
  Result<ListenAddress> address = LocalAddress(fd);
  if (!address.ok()) return address.error().WithContext(name);

  if (!address->is_unix()) {
    if (!IsLoopbackHost(address->host) && !(options.allow_remote && options.auth_enabled)) {
      return MakeError("listen_failed", name + " is " + address->ToString() +
                                            ", not a loopback address; serving other hosts "
                                            "needs allow_remote = true and [auth] token_files");
    }
    int yes = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
  }
  Listener listener;
  listener.fd = fd;
  listener.address = *address;
  listener.activated = true;
  return listener;
}

}  // namespace

ListenerSet::~ListenerSet() {
  Close();
}

ListenerSet::ListenerSet(ListenerSet&& other) noexcept : listeners_(std::move(other.listeners_)) {
  other.listeners_.clear();
}

ListenerSet& ListenerSet::operator=(ListenerSet&& other) noexcept {
  if (this != &other) {
    Close();
    listeners_ = std::move(other.listeners_);
    other.listeners_.clear();
  }
  return *this;
}

Result<ListenerSet> ListenerSet::Open(const std::vector<ListenAddress>& addresses,
                                      const ListenOptions& options) {
  ListenerSet set;  // closes and removes what it holds when an error returns early

  Status passed = set.AddPassedIn(options);
  if (!passed.ok()) return passed.error();

  Status bound = set.BindConfigured(addresses, options);
  if (!bound.ok()) return bound.error();

  if (set.listeners_.empty()) return MakeError("listen_failed", "there is nothing to listen on");
  return set;
}

Status ListenerSet::AddPassedIn(const ListenOptions& options) {
  // sd_listen_fds(1) also unsets LISTEN_FDS and LISTEN_PID, so nothing started from here
  // mistakes the sockets for its own.
  int passed = ::sd_listen_fds(1);
  if (passed < 0) return MakeError("listen_failed", "socket activation: " + ErrnoText(-passed));

  // Every passed-in socket is held first, so that all are closed if one is refused.
  for (int fd = SD_LISTEN_FDS_START; fd < SD_LISTEN_FDS_START + passed; ++fd)
    listeners_.push_back(Listener{fd, {}, true});
  for (Listener& listener : listeners_) {
    Result<Listener> adopted = AdoptPassedIn(listener.fd, options);
    if (!adopted.ok()) return adopted.error();
    listener = *adopted;
  }
  return OkStatus();
}

Status ListenerSet::BindConfigured(const std::vector<ListenAddress>& addresses,
                                   const ListenOptions& options) {
  std::optional<gid_t> group;
  if (!options.socket_group.empty()) {
    Result<gid_t> resolved = ResolveGroup(options.socket_group);
    if (!resolved.ok()) {
      return MakeError("listen_failed", "socket_group: " + resolved.error().message);
    }
    group = *resolved;
  }

  std::vector<ListenAddress> passed_in;
  for (const Listener& listener : listeners_)
    passed_in.push_back(listener.address);
  for (const ListenAddress& address : addresses) {
    auto same = [&](const ListenAddress& other) { return SameAddress(address, other); };
    if (std::any_of(passed_in.begin(), passed_in.end(), same)) continue;

    Result<Listener> opened = address.is_unix() ? OpenUnix(address, group) : OpenTcp(address);
    if (!opened.ok()) return opened.error();
    listeners_.push_back(*opened);
  }
  return OkStatus();
}

int ListenerSet::TakeFd(std::size_t index) {
  int fd = listeners_.at(index).fd;
  listeners_.at(index).fd = -1;
  return fd;
}

std::string ListenerSet::Describe() const {
  std::string out;
  for (const Listener& listener : listeners_)
    out += (out.empty() ? "" : ",") + listener.address.ToString();
  return out;
}

void ListenerSet::Close() {
  for (Listener& listener : listeners_)
    CloseListener(listener);
  listeners_.clear();
}

Result<gid_t> ResolveGroup(const std::string& name) {
  group entry{};
  group* found = nullptr;
  std::vector<char> buffer(64 * 1024);
  if (::getgrnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found) == 0 &&
      found != nullptr) {
    return found->gr_gid;
  }

  unsigned long id = 0;
  auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), id);
  // (gid_t)-1 means "leave the group" to chown, and larger numbers would wrap around.
  bool number = ec == std::errc() && end == name.data() + name.size() && !name.empty();
  if (number && id < static_cast<unsigned long>(static_cast<gid_t>(-1))) {
    return static_cast<gid_t>(id);
  }
  return MakeError("invalid_config", "there is no group \"" + name + "\"", "socket_group");
}

Status CheckUnixSocketPath(const std::string& path) {
  std::string name = "unix:" + path;
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    // An existing socket may be one systemd passes in, in a folder only systemd can write;
    // whether it is stale or live is judged when the listeners open.
    if (S_ISSOCK(st.st_mode)) return OkStatus();
    return ListenError(name, "the path exists and is not a socket");
  }

  std::string folder = FolderOf(path);
  if (::access(folder.c_str(), W_OK | X_OK) != 0) {
    return ListenError(name, "folder " + folder + " does not exist or is not writable");
  }
  return OkStatus();
}

}  // namespace sidecar
