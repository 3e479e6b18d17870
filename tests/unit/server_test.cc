#include "http/server.h"

#include <doctest/doctest.h>

#include <regex>
#include <string>

using namespace sidecar;

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
