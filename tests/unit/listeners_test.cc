#include "http/listeners.h"

#include <doctest/doctest.h>
#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "support/fakes.h"
#include "support/unix_socket.h"
#include "unit/unit_helpers.h"

using namespace sidecar;
using sidecar::testing::BoundUnixSocket;
using sidecar::testing::IsSocketFile;
using sidecar::testing::ReadWholeFile;
using sidecar::testing::TempDir;
using sidecar::testing::UnixSocketConnects;
using sidecar::testing::WriteWholeFile;

namespace {

ListenAddress Unix(const std::string& path) {
  return ListenAddress{"", 0, path};
}

ListenAddress Tcp(int port) {
  return ListenAddress{"127.0.0.1", port, ""};
}

ListenerSet MustOpen(const std::vector<ListenAddress>& addresses, ListenOptions options = {}) {
  Result<ListenerSet> set = ListenerSet::Open(addresses, options);
  REQUIRE_MESSAGE(set.ok(), (set.ok() ? "" : set.error().message));
  return std::move(set).value();
}

std::string OpenRefusal(const std::vector<ListenAddress>& addresses, ListenOptions options = {}) {
  Result<ListenerSet> set = ListenerSet::Open(addresses, options);
  REQUIRE_FALSE(set.ok());
  CHECK(set.error().code == "listen_failed");
  return set.error().message;
}

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace

TEST_SUITE("listeners") {
  TEST_CASE("a Unix socket is made with mode 0660, serves, and is removed on Close") {
    TempDir dir;
    std::string path = dir.File("otp.sock");
    ListenerSet set = MustOpen({Unix(path)});
    REQUIRE(set.listeners().size() == 1);
    CHECK(set.listeners()[0].address.ToString() == "unix:" + path);
    CHECK_FALSE(set.listeners()[0].activated);

    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK(S_ISSOCK(st.st_mode));
    CHECK((st.st_mode & 07777) == 0660);
    CHECK(UnixSocketConnects(path));
    CHECK(set.Describe() == "unix:" + path);

    set.Close();
    CHECK_FALSE(IsSocketFile(path));
    set.Close();  // twice is harmless
  }

  TEST_CASE("the process's umask does not loosen or tighten the socket's mode") {
    TempDir dir;
    for (mode_t mask : {mode_t{0}, mode_t{077}}) {
      CAPTURE(mask);
      mode_t previous = ::umask(mask);
      ListenerSet set = MustOpen({Unix(dir.File("m.sock"))});
      ::umask(previous);
      struct stat st {};
      REQUIRE(::stat(dir.File("m.sock").c_str(), &st) == 0);
      CHECK((st.st_mode & 07777) == 0660);
    }
  }

  TEST_CASE("a stale socket file is replaced; a live one and a non-socket are refused") {
    TempDir dir;
    std::string stale = dir.File("stale.sock");
    { BoundUnixSocket crashed(stale, true); }  // closed without removing the file
    REQUIRE(IsSocketFile(stale));
    ListenerSet replaced = MustOpen({Unix(stale)});
    CHECK(UnixSocketConnects(stale));

    std::string live = dir.File("live.sock");
    BoundUnixSocket other(live, true);
    std::string refused = OpenRefusal({Unix(live)});
    CHECK(Contains(refused, "unix:" + live));
    CHECK(Contains(refused, "a process is listening on it"));
    CHECK(UnixSocketConnects(live));  // left alone

    std::string file = dir.File("notes.txt");
    WriteWholeFile(file, "keep me");
    CHECK(Contains(OpenRefusal({Unix(file)}), "exists and is not a socket"));
    CHECK(ReadWholeFile(file) == "keep me");

    REQUIRE(::mkdir(dir.File("folder").c_str(), 0700) == 0);
    CHECK(Contains(OpenRefusal({Unix(dir.File("folder"))}), "exists and is not a socket"));
  }

  TEST_CASE("a socket bound but not listening counts as stale") {
    TempDir dir;
    std::string path = dir.File("half.sock");
    BoundUnixSocket half(path, false);
    ListenerSet set = MustOpen({Unix(path)});
    CHECK(UnixSocketConnects(path));
  }

  TEST_CASE("the file is removed only while it is still the one this process made") {
    TempDir dir;
    std::string path = dir.File("otp.sock");
    ListenerSet set = MustOpen({Unix(path)});
    REQUIRE(::unlink(path.c_str()) == 0);
    WriteWholeFile(path, "someone else's");
    set.Close();
    CHECK(ReadWholeFile(path) == "someone else's");
  }

  TEST_CASE("socket_group gives the socket file its group; an unknown group is refused") {
    TempDir dir;
    group* mine = ::getgrgid(::getegid());
    REQUIRE(mine != nullptr);
    ListenOptions options;
    options.socket_group = mine->gr_name;
    ListenerSet set = MustOpen({Unix(dir.File("g.sock"))}, options);
    struct stat st {};
    REQUIRE(::stat(dir.File("g.sock").c_str(), &st) == 0);
    CHECK(st.st_gid == ::getegid());

    options.socket_group = "no-such-group-for-otp-sidecar";
    CHECK(Contains(OpenRefusal({Unix(dir.File("h.sock"))}, options),
                   "no-such-group-for-otp-sidecar"));
    CHECK_FALSE(IsSocketFile(dir.File("h.sock")));

    Result<gid_t> numeric = ResolveGroup(std::to_string(::getegid()));
    REQUIRE(numeric.ok());
    CHECK(*numeric == ::getegid());
    CHECK_FALSE(ResolveGroup("no-such-group-for-otp-sidecar").ok());
    CHECK_FALSE(ResolveGroup("4294967295").ok());  // chown's "leave the group"
    CHECK_FALSE(ResolveGroup("4294967296").ok());  // would wrap around to root
    CHECK_FALSE(ResolveGroup("-1").ok());
  }

  TEST_CASE("TCP and Unix listeners together, with the kernel's port for port 0") {
    TempDir dir;
    ListenerSet set = MustOpen({Tcp(0), Unix(dir.File("a.sock"))});
    REQUIRE(set.listeners().size() == 2);
    int port = set.listeners()[0].address.port;
    CHECK(port > 0);
    CHECK(set.Describe() == "127.0.0.1:" + std::to_string(port) + ",unix:" + dir.File("a.sock"));

    // The port is taken: a second set fails, and removes the socket file it had made.
    std::string in_use = OpenRefusal({Unix(dir.File("b.sock")), Tcp(port)});
    CHECK(Contains(in_use, "the address is already in use"));
    CHECK_FALSE(IsSocketFile(dir.File("b.sock")));
  }

  TEST_CASE("a missing folder is reported; check-config's path check agrees") {
    TempDir dir;
    std::string path = dir.File("missing/otp.sock");
    std::string refused = OpenRefusal({Unix(path)});
    CHECK(Contains(refused, "unix:" + path));
    CHECK(Contains(refused, "folder " + dir.File("missing") + " does not exist"));

    Status missing = CheckUnixSocketPath(path);
    REQUIRE_FALSE(missing.ok());
    CHECK(Contains(missing.error().message, "does not exist or is not writable"));
    CHECK(CheckUnixSocketPath(dir.File("fine.sock")).ok());
    WriteWholeFile(dir.File("file"), "x");
    CHECK_FALSE(CheckUnixSocketPath(dir.File("file")).ok());
  }
}
