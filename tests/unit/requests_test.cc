#include "http/requests.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace sidecar;

namespace {

// What the service is configured with by default: numbers read as US, only US served.
const PhoneValidator& UsPhones() {
  static const PhoneValidator validator{PhoneSettings{}};
  return validator;
}

// Numbers read as US, and these regions served.
PhoneValidator PhonesFor(std::vector<std::string> allowed_regions) {
  PhoneSettings settings;
  settings.default_region = "US";
  settings.allowed_regions = std::move(allowed_regions);
  return PhoneValidator(settings);
}

std::string BodyWithPhone(const std::string& phone_json) {
  return std::string("{\"user\": \"alice\", \"phone\": ") + phone_json + "}";
}

constexpr const char* kPhone = "\"phone\": \"+12065550100\"";

// A create body with `extra` added after user and phone.
std::string CreateBody(const std::string& extra = "") {
  return std::string("{\"user\": \"alice\", ") + kPhone + extra + "}";
}

template <typename T>
void CheckError(const Result<T>& result, const std::string& code, const std::string& field) {
  REQUIRE_FALSE(result.ok());
  CHECK(result.error().code == code);
  CHECK(result.error().field == field);
}

void CheckCreateError(const std::string& body, const std::string& code, const std::string& field) {
  CAPTURE(body);
  CheckError(ParseCreateRequest(body, UsPhones()), code, field);
}

void CheckVerifyError(const std::string& body, bool with_user, const std::string& code,
                      const std::string& field) {
  CAPTURE(body);
  CheckError(ParseVerifyRequest(body, with_user), code, field);
}

CreateRequest MustCreate(const std::string& body) {
  CAPTURE(body);
  Result<CreateRequest> parsed = ParseCreateRequest(body, UsPhones());
  REQUIRE_MESSAGE(parsed.ok(), (parsed.ok() ? "" : parsed.error().code));
  return *parsed;
}

VerifyRequest MustVerify(const std::string& body, bool with_user) {
  CAPTURE(body);
  Result<VerifyRequest> parsed = ParseVerifyRequest(body, with_user);
  REQUIRE_MESSAGE(parsed.ok(), (parsed.ok() ? "" : parsed.error().code));
  return *parsed;
}

std::string ClientIpOf(const std::string& ip_json) {
  return MustCreate(CreateBody(", \"client_ip\": " + ip_json)).client_ip;
}

// A JSON object of exactly `size` bytes: the body padded with spaces before its '}'.
std::string PaddedTo(const std::string& body, std::size_t size) {
  REQUIRE(body.size() <= size);
  std::string out = body.substr(0, body.size() - 1);
  out += std::string(size - body.size(), ' ');
  out += '}';
  return out;
}

}  // namespace

TEST_SUITE("requests") {
  TEST_CASE("a minimal create body is parsed") {
    CreateRequest r = MustCreate(CreateBody());
    CHECK(r.user == "alice");
    CHECK(r.phone == "+12065550100");
    CHECK(r.locale.empty());
    CHECK(r.client_ip.empty());
  }

  TEST_CASE("a minimal create body gives the phone's region") {
    CreateRequest r = MustCreate(CreateBody());
    CHECK(r.region == "US");
  }

  TEST_CASE("a full create body is parsed") {
    std::string body =
        R"({"user": "alice@example.com", "phone": "+44 20 7946 0958", "client_ip": "198.51.100.7",
          "locale": "pt-BR"})";
    Result<CreateRequest> r = ParseCreateRequest(body, PhonesFor({"US", "GB"}));
    REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().code));
    CHECK(r->user == "alice@example.com");
    CHECK(r->phone == "+442079460958");
    CHECK(r->region == "GB");
    CHECK(r->client_ip == "198.51.100.7");
    CHECK(r->locale == "pt-BR");
  }

  TEST_CASE("the ways of writing one US number all give one E.164 number and region US") {
    for (const char* phone : {"+1 206 555 0100", "+1-206-555-0100", "(206) 555-0100",
                              "+12065550100 ", "+1 (206) 555.0100"}) {
      CreateRequest r = MustCreate(BodyWithPhone(std::string("\"") + phone + "\""));
      CHECK(r.phone == "+12065550100");
      CHECK(r.region == "US");
    }
  }

  TEST_CASE("a number written without '+' is read in the default region") {
    CreateRequest r = MustCreate(BodyWithPhone("\"12065550100\""));
    CHECK(r.phone == "+12065550100");
    CHECK(r.region == "US");
  }

  TEST_CASE("a premium-rate number is invalid_phone") {
    CheckCreateError(BodyWithPhone("\"+1 900 555 0100\""), "invalid_phone", "phone");
  }

  TEST_CASE("a number of a region that is not allowed is region_not_allowed") {
    std::string french_mobile = BodyWithPhone("\"+33 6 12 34 56 78\"");

    CAPTURE(french_mobile);
    CheckError(ParseCreateRequest(french_mobile, PhonesFor({"US"})), "region_not_allowed", "phone");
    CheckError(ParseCreateRequest(french_mobile, UsPhones()), "region_not_allowed", "phone");

    Result<CreateRequest> allowed = ParseCreateRequest(french_mobile, PhonesFor({"US", "FR"}));
    REQUIRE_MESSAGE(allowed.ok(), (allowed.ok() ? "" : allowed.error().code));
    CHECK(allowed->phone == "+33612345678");
    CHECK(allowed->region == "FR");
  }

  TEST_CASE("malformed JSON is invalid_json") {
    for (const char* body : {"", "   ", "{", "{\"user\": }", "{\"user\": \"alice\",}", "nul",
                             "{} x", "{'user': 'alice'}",
                             "{\"user\": \"al\xff"
                             "ice\"}",
                             "{\"user\": \"alice\"} {}"}) {
      CheckCreateError(body, "invalid_json", "");
    }
  }

  TEST_CASE("a body that is not an object is invalid_body") {
    for (const char* body : {"[]", "[{\"user\": \"alice\"}]", "\"alice\"", "42", "null", "true"}) {
      CheckCreateError(body, "invalid_body", "");
      CheckVerifyError(body, true, "invalid_body", "");
    }
  }

  TEST_CASE("a missing or empty user is missing_field") {
    CheckCreateError(std::string("{") + kPhone + "}", "missing_field", "user");
    CheckCreateError(std::string("{\"user\": \"\", ") + kPhone + "}", "missing_field", "user");
  }

  TEST_CASE("a user of the wrong type is invalid_field") {
    for (const char* user : {"42", "true", "null", "[\"alice\"]", "{\"name\": \"alice\"}"}) {
      CheckCreateError(std::string("{\"user\": ") + user + ", " + kPhone + "}", "invalid_field",
                       "user");
    }
  }

  TEST_CASE("a user may hold 256 bytes, not 257") {
    std::string longest(256, 'u');
    CHECK(MustCreate("{\"user\": \"" + longest + "\", " + kPhone + "}").user == longest);

    CheckCreateError("{\"user\": \"" + longest + "u\", " + kPhone + "}", "invalid_field", "user");

    std::string multibyte;
    for (int i = 0; i < 128; ++i)
      multibyte += "\xc3\xa9";  // 128 x "é": 256 bytes
    CHECK(MustCreate("{\"user\": \"" + multibyte + "\", " + kPhone + "}").user == multibyte);
    CheckCreateError("{\"user\": \"" + multibyte + "x\", " + kPhone + "}", "invalid_field", "user");
  }

  TEST_CASE("a user with control characters or outer spaces is invalid_field") {
    for (const char* user :
         {"ali\\nce", "alice\\u0000", "\\talice", " alice", "alice ", "alice\\u007f"}) {
      CheckCreateError(std::string("{\"user\": \"") + user + "\", " + kPhone + "}", "invalid_field",
                       "user");
    }
    CHECK(MustCreate(std::string("{\"user\": \"alice smith\", ") + kPhone + "}").user ==
          "alice smith");
  }

  TEST_CASE("unknown fields are refused, naming the field") {
    CheckCreateError(CreateBody(", \"extra\": 1"), "unknown_field", "extra");
    CheckCreateError(R"({"user": "alice", "Phone": "+12065550100"})", "unknown_field", "Phone");
    CheckCreateError(CreateBody(", \"code\": \"123456\""), "unknown_field", "code");
    CheckVerifyError(R"({"code": "123456", "phone": "+12065550100"})", false, "unknown_field",
                     "phone");
  }

  TEST_CASE("a missing or invalid phone is invalid_phone") {
    CheckCreateError(R"({"user": "alice"})", "invalid_phone", "phone");
    for (const char* phone : {"null", "\"\"", "\"abc\"", "\"+1\"", "\"12\"", "\"+1 900 555 0100\"",
                              "12065550100", "[\"+12065550100\"]", "true", "{}"}) {
      CheckCreateError(std::string("{\"user\": \"alice\", \"phone\": ") + phone + "}",
                       "invalid_phone", "phone");
    }
  }

  TEST_CASE("client_ip is stored in canonical form") {
    CHECK(ClientIpOf("\"192.0.2.1\"") == "192.0.2.1");
    CHECK(ClientIpOf("\"2001:DB8::1\"") == "2001:db8::1");
    CHECK(ClientIpOf("\"2001:0db8:0000:0000:0000:0000:0000:0001\"") == "2001:db8::1");
    CHECK(ClientIpOf("\"::FFFF:192.0.2.1\"") == "192.0.2.1");
    CHECK(ClientIpOf("\"::ffff:c000:201\"") == "192.0.2.1");
    CHECK(ClientIpOf("\"::192.0.2.1\"") == "::192.0.2.1");
    CHECK(ClientIpOf("\"::1\"") == "::1");
    CHECK(ClientIpOf("null").empty());
  }

  TEST_CASE("an invalid client_ip is invalid_field") {
    for (const char* ip : {"\"999.1.1.1\"", "\"1.2.3\"", "\"example.com\"", "\"192.0.2.1:80\"",
                           "\"[::1]\"", "\" 192.0.2.1\"", "\"fe80::1%eth0\"",
                           "\"192.0.2.1\\u0000x\"", "\"::1\\u0000\"", "42", "true", "[\"::1\"]"}) {
      CheckCreateError(CreateBody(std::string(", \"client_ip\": ") + ip), "invalid_field",
                       "client_ip");
      CheckVerifyError(std::string("{\"code\": \"123456\", \"client_ip\": ") + ip + "}", false,
                       "invalid_field", "client_ip");
    }
  }

  TEST_CASE("locale tags are checked") {
    for (const char* locale : {"en", "pt-BR", "zh-Hant-TW", "en_US", "es-419", "fil"}) {
      CAPTURE(locale);
      CHECK(MustCreate(CreateBody(std::string(", \"locale\": \"") + locale + "\"")).locale ==
            locale);
    }
    CHECK(MustCreate(CreateBody(", \"locale\": null")).locale.empty());

    for (const char* locale : {"e", "engl", "english", "en-", "-en", "1en", "en--US", "en US",
                               "en-abcdefghi", "en-US.UTF-8", "\xc3\xa9n"}) {
      CheckCreateError(CreateBody(std::string(", \"locale\": \"") + locale + "\""), "invalid_field",
                       "locale");
    }
    CheckCreateError(CreateBody(", \"locale\": 7"), "invalid_field", "locale");
  }

  TEST_CASE("bodies over 16 KiB are payload_too_large") {
    std::string exact = PaddedTo(CreateBody(), kMaxBodyBytes);
    REQUIRE(exact.size() == 16 * 1024);
    CHECK(MustCreate(exact).user == "alice");

    std::string over = PaddedTo(CreateBody(), kMaxBodyBytes + 1);
    CheckCreateError(over, "payload_too_large", "");
    CheckVerifyError(PaddedTo(R"({"code": "123456"})", kMaxBodyBytes + 1), false,
                     "payload_too_large", "");
    CheckError(ParseOptionalClientIp(std::string(kMaxBodyBytes + 1, ' ') + "{}"),
               "payload_too_large", "");
  }

  TEST_CASE("a verify body gives a text attempt") {
    VerifyRequest r = MustVerify(R"({"code": "012345", "client_ip": "::1"})", false);
    CHECK(r.attempt.text == "012345");
    CHECK(r.attempt.is_text);
    CHECK(r.client_ip == "::1");
    CHECK(r.user.empty());
  }

  TEST_CASE("a verify-by-user body needs the user") {
    VerifyRequest r = MustVerify(R"({"user": "alice", "code": "012345"})", true);
    CHECK(r.user == "alice");
    CHECK(r.attempt.text == "012345");

    CheckVerifyError(R"({"code": "012345"})", true, "missing_field", "user");
    CheckVerifyError(R"({"user": "", "code": "012345"})", true, "missing_field", "user");
    CheckVerifyError(R"({"user": 1, "code": "012345"})", true, "invalid_field", "user");
  }

  TEST_CASE("a field given twice is duplicate_field, whichever request") {
    CheckVerifyError(R"({"user": "bob", "user": "alice", "code": "012345"})", true,
                     "duplicate_field", "user");
    CheckVerifyError(R"({"code": "000000", "code": "012345"})", false, "duplicate_field", "code");
    CheckCreateError(R"({"user": "a", "phone": "+12065550100", "phone": "+12065550101"})",
                     "duplicate_field", "phone");
    CheckError(ParseOptionalClientIp(R"({"client_ip": "::1", "client_ip": "::2"})"),
               "duplicate_field", "client_ip");
    // The same key in different nested objects is no repeat (and a nested object is no field).
    CheckVerifyError(R"({"code": {"a": 1}, "x": {"a": 2}})", false, "unknown_field", "x");
  }

  TEST_CASE("verify by id refuses a user field") {
    CheckVerifyError(R"({"user": "alice", "code": "012345"})", false, "unknown_field", "user");
  }

  TEST_CASE("a code given as a JSON number is an attempt that cannot match") {
    for (const char* code : {"12345", "123456", "0", "-1", "1.5", "1e6"}) {
      VerifyRequest r = MustVerify(std::string("{\"code\": ") + code + "}", false);
      CHECK_FALSE(r.attempt.is_text);
      CHECK(r.attempt.text.empty());
    }
  }

  TEST_CASE("a code of any other non-string type is invalid_field") {
    for (const char* code :
         {"null", "true", "false", "{}", "{\"code\": \"123456\"}", "[]", "[\"123456\"]"}) {
      CheckVerifyError(std::string("{\"code\": ") + code + "}", false, "invalid_field", "code");
    }
  }

  TEST_CASE("a missing or empty code is missing_field") {
    CheckVerifyError("{}", false, "missing_field", "code");
    CheckVerifyError(R"({"code": ""})", false, "missing_field", "code");
    CheckVerifyError(R"({"user": "alice", "code": ""})", true, "missing_field", "code");
    CheckVerifyError(R"({"client_ip": "::1"})", false, "missing_field", "code");
  }

  TEST_CASE("odd code strings are still text attempts, over-long ones cannot match") {
    VerifyRequest spaced = MustVerify(R"({"code": " 12345"})", false);
    CHECK(spaced.attempt.is_text);
    CHECK(spaced.attempt.text == " 12345");

    VerifyRequest huge = MustVerify("{\"code\": \"" + std::string(1000, '1') + "\"}", false);
    CHECK_FALSE(huge.attempt.is_text);
  }

  TEST_CASE("a verify body with a bad client_ip is invalid_field") {
    CheckVerifyError(R"({"code": "123456", "client_ip": "nope"})", false, "invalid_field",
                     "client_ip");
  }

  TEST_CASE("ParseOptionalClientIp takes an empty body or an object with client_ip") {
    CHECK(ParseOptionalClientIp("")->empty());
    CHECK(ParseOptionalClientIp(" \r\n\t")->empty());
    CHECK(ParseOptionalClientIp("{}")->empty());
    CHECK(ParseOptionalClientIp(R"({"client_ip": null})")->empty());
    CHECK(*ParseOptionalClientIp(R"({"client_ip": "2001:DB8::5"})") == "2001:db8::5");

    CheckError(ParseOptionalClientIp(R"({"reason": "user asked"})"), "unknown_field", "reason");
    CheckError(ParseOptionalClientIp(R"({"client_ip": "x"})"), "invalid_field", "client_ip");
    CheckError(ParseOptionalClientIp("[]"), "invalid_body", "");
    CheckError(ParseOptionalClientIp("{"), "invalid_json", "");
  }

}  // TEST_SUITE
