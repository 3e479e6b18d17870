// Overrides from OTP_SIDECAR_* environment variables (config/environment.cc, through
// LoadConfig and ParseConfigText).

#include <doctest/doctest.h>

#include <algorithm>
#include <set>
#include <string>

#include "config/config.h"

using namespace sidecar;

namespace {

constexpr const char* kOrigin = "/etc/otp-sidecar/otp-sidecar.toml";

Config MustParse(const std::string& text, const Environment& environment) {
  Result<Config> config = ParseConfigText(text, kOrigin, environment);
  REQUIRE_MESSAGE(config.ok(), (config.ok() ? "" : config.error().message));
  return *config;
}

std::string Problems(const std::string& text, const Environment& environment) {
  Result<Config> config = ParseConfigText(text, kOrigin, environment);
  REQUIRE_FALSE(config.ok());
  CHECK(config.error().code == "invalid_config");
  return config.error().message;
}

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace

TEST_SUITE("environment") {
  TEST_CASE("variables override the file with the file's types") {
    Config config = MustParse("database = \"file.db\"\n[code]\nttl = \"5m\"\nlength = 8\n",
                              {{"OTP_SIDECAR_CODE_TTL", "10m"},
                               {"OTP_SIDECAR_DATABASE", "/var/lib/otp/env.db"},
                               {"OTP_SIDECAR_DATABASE_MAX_SIZE", "2GB"},
                               {"OTP_SIDECAR_LIMITS_PUMPING_FLOOR", "40"},
                               {"OTP_SIDECAR_LIMITS_PUMPING_ENABLED", "false"},
                               {"OTP_SIDECAR_LIMITS_PUMPING_MIN_CONVERSION", "0.5"},
                               {"OTP_SIDECAR_LIMITS_USER_SENDS", R"(["5/15m"])"},
                               {"OTP_SIDECAR_LIMITS_IP_SENDS", "[]"},
                               {"OTP_SIDECAR_APP_NAME", "12345"},
                               {"OTP_SIDECAR_SMS_WEBOTP_DOMAIN", R"("login.example.com")"},
                               {"OTP_SIDECAR_SMS_TEMPLATES", R"({fr = "{code} est votre code"})"},
                               {"OTP_SIDECAR_SMS_FILE_PATH", "/tmp/sms file.jsonl"}});
    CHECK(config.code_ttl_ms == 600'000);
    CHECK(config.code_length == 8);  // the file's, not overridden
    CHECK(config.database == "/var/lib/otp/env.db");
    CHECK(config.database_max_size_bytes == 2'000'000'000);
    CHECK(config.key_file == "/var/lib/otp/otp-sidecar.key");
    CHECK(config.limits.pumping.floor == 40);
    CHECK_FALSE(config.limits.pumping.enabled);
    CHECK(config.limits.pumping.min_conversion == doctest::Approx(0.5));
    REQUIRE(config.limits.user_sends.size() == 1);
    CHECK(config.limits.user_sends[0].count == 5);
    CHECK(config.limits.ip_sends.empty());
    CHECK(config.app_name == "12345");  // a string key takes the text as it is
    CHECK(config.webotp_domain == "login.example.com");
    CHECK(config.sms_templates.at("fr") == "{code} est votre code");
    CHECK(config.sms_file_path == "/tmp/sms file.jsonl");
  }

  TEST_CASE("flags override variables, which override the file") {
    ConfigOverrides flags;
    flags.database = "/flag.db";
    Result<Config> config = LoadConfig(
        flags, {{"OTP_SIDECAR_DATABASE", "/env.db"}, {"OTP_SIDECAR_LISTEN", "127.0.0.1:9999"}});
    REQUIRE(config.ok());
    CHECK(config->database == "/flag.db");
    CHECK(config->listen_addresses.front().port == 9999);
    CHECK(LoadConfig(flags)->listen_addresses.front().port == 8470);
  }

  TEST_CASE("a list key takes a bare string or a TOML array") {
    Result<Config> config = LoadConfig(
        ConfigOverrides{},
        {{"OTP_SIDECAR_LISTEN", R"(["127.0.0.1:9998", "unix:/tmp/otp-sidecar-env.sock"])"}});
    REQUIRE(config.ok());
    REQUIRE(config->listen_addresses.size() == 2);
    CHECK(config->listen_addresses[0].port == 9998);
    CHECK(config->listen_addresses[1].is_unix());
  }

  TEST_CASE("every problem with a variable names the variable and the key") {
    std::string problems =
        Problems("[code]\nlength = 6\n", {{"OTP_SIDECAR_CODE_LENGTH", "4"},
                                          {"OTP_SIDECAR_CODE_TTL", "forever"},
                                          {"OTP_SIDECAR_DATABASE_MAX_SIZE", "lots"},
                                          {"OTP_SIDECAR_CODE_MAX_ATTEMPTS", "many"},
                                          {"OTP_SIDECAR_LIMITS_USER_SENDS", R"(["5 per hour"])"},
                                          {"OTP_SIDECAR_HTTP_MIN_THREADS", "\"8\""},
                                          {"OTP_SIDECAR_LISTEN", "192.0.2.1:80"},
                                          {"OTP_SIDECAR_COLOUR", "blue"},
                                          {"OTP_SIDECAR_CODE", "{length = 8}"}});
    INFO(problems);
    CHECK(Contains(problems, "environment OTP_SIDECAR_CODE_LENGTH: code.length: must be between"));
    CHECK(Contains(problems, "environment OTP_SIDECAR_CODE_TTL: code.ttl:"));
    CHECK(Contains(problems,
                   "environment OTP_SIDECAR_DATABASE_MAX_SIZE: database_max_size: \"lots\""));
    CHECK(Contains(problems, "environment OTP_SIDECAR_CODE_MAX_ATTEMPTS: is not a TOML value"));
    CHECK(Contains(problems, "environment OTP_SIDECAR_LIMITS_USER_SENDS: limits.user_sends:"));
    CHECK(Contains(problems,
                   "environment OTP_SIDECAR_HTTP_MIN_THREADS: http.min_threads: must be an "
                   "integer"));
    CHECK(Contains(problems, "environment OTP_SIDECAR_LISTEN: listen:"));
    CHECK(Contains(problems, "environment OTP_SIDECAR_COLOUR: unknown variable"));
    CHECK(Contains(problems, "environment OTP_SIDECAR_CODE: unknown variable"));
    CHECK_FALSE(Contains(problems, kOrigin));  // the file itself is fine
  }

  TEST_CASE("a variable the configuration names as a secret's source is not an override") {
    std::string toml =
        "[sms.twilio]\nauth_token_env = \"OTP_SIDECAR_TWILIO_TOKEN\"\n"
        "[sms.webhook]\nsecret_env = \"OTP_SIDECAR_WEBHOOK_SECRET\"\n";
    MustParse(toml,
              {{"OTP_SIDECAR_TWILIO_TOKEN", "s3cr3t"}, {"OTP_SIDECAR_WEBHOOK_SECRET", "s3cr3t"}});
    MustParse("", {{"OTP_SIDECAR_SMS_WEBHOOK_SECRET_ENV", "OTP_SIDECAR_HOOK"},
                   {"OTP_SIDECAR_HOOK", "s3cr3t"}});

    std::string problems = Problems("", {{"OTP_SIDECAR_TWILIO_TOKEN", "s3cr3t"}});
    CHECK(Contains(problems, "OTP_SIDECAR_TWILIO_TOKEN: unknown variable"));
    CHECK_FALSE(Contains(problems, "s3cr3t"));
  }

  TEST_CASE("other variables are ignored") {
    MustParse("", {{"HOME", "/root"}, {"OTP_SIDECARX", "1"}, {"otp_sidecar_code_ttl", "x"}});
  }

  TEST_CASE("every key has its own variable") {
    std::set<std::string> variables;
    std::vector<std::string> keys = KnownConfigKeys();
    for (const std::string& key : keys) {
      CAPTURE(key);
      CHECK(variables.insert(VariableForKey(key)).second);
    }
    for (const char* key :
         {"listen", "database", "database_max_size", "key_file", "code.ttl", "sms.providers",
          "sms.templates", "sms.file.path", "sms.twilio.auth_token_file", "limits.pumping.floor",
          "http.max_threads", "delivery.workers"}) {
      CAPTURE(key);
      CHECK(std::find(keys.begin(), keys.end(), key) != keys.end());
    }
    CHECK(VariableForKey("limits.user_sends") == "OTP_SIDECAR_LIMITS_USER_SENDS");
    CHECK(VariableForKey("database") == "OTP_SIDECAR_DATABASE");
    CHECK(VariableForKey("database_max_size") == "OTP_SIDECAR_DATABASE_MAX_SIZE");
  }
}  // TEST_SUITE
