#include "http/server.h"

#include <doctest/doctest.h>
#include <httplib.h>
#include <sys/socket.h>

#include <chrono>
#include <future>
#include <regex>
#include <string>
#include <thread>

#include "http/listeners.h"
#include "support/unix_socket.h"
#include "unit/unit_helpers.h"

using namespace sidecar;
using namespace sidecar::testing;

namespace {

constexpr const char* kToken = "0123456789abcdef-server-token";

// One HttpServer on a fresh listener (TCP on a free loopback port, or a Unix socket),
// over a real Api, served on its own thread until the fixture ends.
struct ServedApi : ServiceFixture {
  ServedApi(const ListenAddress& address, const CallerAuth& caller_auth)
      : auth(caller_auth), listeners(MustOpen(address)) {
    Listener listener = listeners.listeners().front();
    listener.fd = listeners.TakeFd(0);
    server = std::make_unique<HttpServer>(api, auth, ServerSettings{2, 8, 5000, 5000}, listener);
    serving = std::async(std::launch::async, [this] { return server->Serve(); });
  }
  ~ServedApi() {
    server->Stop();
    CHECK(serving.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
  }

  static ListenerSet MustOpen(const ListenAddress& address) {
    Result<ListenerSet> set = ListenerSet::Open({address}, ListenOptions{});
    REQUIRE_MESSAGE(set.ok(), (set.ok() ? "" : set.error().message));
    return std::move(set).value();
  }

  httplib::Client Client() const {
    const ListenAddress& bound = listeners.listeners().front().address;
    if (!bound.is_unix()) {
      httplib::Client client(bound.host, bound.port);
      client.set_read_timeout(std::chrono::seconds(10));
      return client;
    }
    httplib::Client client(bound.unix_path, 80);
    client.set_address_family(AF_UNIX);
    client.set_read_timeout(std::chrono::seconds(10));
    return client;
  }

  PhoneValidator phones{PhoneSettings{}};
  Api api{service, phones, clock};
  CallerAuth auth;
  ListenerSet listeners;
  std::unique_ptr<HttpServer> server;
  std::future<bool> serving;
};

int StatusOf(const httplib::Result& result) {
  return result ? result->status : 0;
}

}  // namespace

TEST_SUITE("server") {
  TEST_CASE("Stop before Serve makes Serve return at once") {
    Result<ListenerSet> set = ListenerSet::Open({ListenAddress{"127.0.0.1", 0, ""}}, {});
    REQUIRE(set.ok());
    Listener listener = set->listeners().front();
    listener.fd = set->TakeFd(0);
    ServiceFixture fixture;
    PhoneValidator phones{PhoneSettings{}};
    Api api(fixture.service, phones, fixture.clock);
    CallerAuth none;
    HttpServer server(api, none, ServerSettings{}, listener);

    server.Stop();
    std::future<bool> served = std::async(std::launch::async, [&] { return server.Serve(); });
    REQUIRE(served.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
    CHECK(served.get());
  }

  TEST_CASE("a TCP and a Unix socket server answer; auth comes before the Api") {
    TempDir dir;
    CallerAuth auth({kToken}, true);
    for (const ListenAddress& address :
         {ListenAddress{"127.0.0.1", 0, ""}, ListenAddress{"", 0, dir.File("api.sock")}}) {
      CAPTURE(address.ToString());
      ServedApi served(address, auth);
      httplib::Client client = served.Client();
      CHECK(StatusOf(client.Get("/healthz")) == 200);

      httplib::Result refused = client.Post("/v1/challenges", "{not json", "application/json");
      REQUIRE(refused);
      CHECK(refused->status == 401);
      CHECK(refused->get_header_value("WWW-Authenticate") == "Bearer");
      CHECK(!refused->get_header_value("X-Request-Id").empty());

      client.set_bearer_token_auth(kToken);
      CHECK(StatusOf(client.Post("/v1/challenges", "{not json", "application/json")) == 400);
      CHECK(StatusOf(client.Post("/v1/challenges", R"({"user": "alice", "phone": "+12065550100"})",
                                 "application/json")) == 202);
    }
    CHECK_FALSE(IsSocketFile(dir.File("api.sock")));  // the fixture's set removed it
  }
}

TEST_SUITE("http server") {
  TEST_CASE("a caller's plain, short X-Request-Id is kept") {
    for (const std::string& given :
         {std::string("trace-123_abc.9"), std::string("A"), std::string(64, 'x')}) {
      CAPTURE(given);
      CHECK(RequestIdFrom(given) == given);
    }
  }

  TEST_CASE("a missing, long or unsafe X-Request-Id is replaced by 16 random hex digits") {
    static const std::regex kGenerated("^[0-9a-f]{16}$");
    for (const std::string& given :
         {std::string(), std::string(65, 'x'), std::string("a b"), std::string("a\"b"),
          std::string("a=b"), std::string("line\nbreak"), std::string("caf\xc3\xa9"),
          std::string("semi;colon"), std::string("slash/es")}) {
      CAPTURE(given);
      std::string id = RequestIdFrom(given);
      CHECK(std::regex_match(id, kGenerated));
    }
    CHECK(RequestIdFrom("") != RequestIdFrom(""));
  }

  TEST_CASE("MethodLabel keeps HTTP's methods and folds anything else into other") {
    for (const char* method : {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}) {
      CHECK(MethodLabel(method) == method);
    }
    for (const char* method : {"get", "TRACE", "CONNECT", "PRI", "", "X-CUSTOM"}) {
      CHECK(MethodLabel(method) == "other");
    }
  }
}  // TEST_SUITE
