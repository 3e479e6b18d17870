#include "config/config.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <string>

#include "support/fakes.h"
#include "unit/unit_helpers.h"

using namespace sidecar;
using sidecar::testing::TempDir;
using sidecar::testing::WriteWholeFile;

namespace {

constexpr const char* kOrigin = "/etc/otp-sidecar/otp-sidecar.toml";

Config MustParse(const std::string& text) {
  Result<Config> config = ParseConfigText(text, kOrigin);
  REQUIRE_MESSAGE(config.ok(), (config.ok() ? "" : config.error().message));
  return *config;
}

// The error message for `text`, which must be refused as invalid_config.
std::string Problems(const std::string& text) {
  Result<Config> config = ParseConfigText(text, kOrigin);
  REQUIRE_FALSE(config.ok());
  CHECK(config.error().code == "invalid_config");
  return config.error().message;
}

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

int LineCount(const std::string& text) {
  return 1 + static_cast<int>(std::count(text.begin(), text.end(), '\n'));
}

// "5/900s,10/86400s": rules as RateRule::ToString writes them, for compact comparisons.
std::string RulesText(const std::vector<RateRule>& rules) {
  std::string out;
  for (const RateRule& rule : rules)
    out += (out.empty() ? "" : ",") + rule.ToString();
  return out;
}

std::string ShippedConfigPath() {
  return (std::filesystem::path(__FILE__).parent_path().parent_path().parent_path() / "etc" /
          "otp-sidecar.toml")
      .string();
}

}  // namespace

TEST_SUITE("config") {
  TEST_CASE("an empty file gives the documented defaults") {
    Config c = MustParse("");

    CHECK(c.listen == std::vector<std::string>{"127.0.0.1:8470"});
    REQUIRE(c.listen_addresses.size() == 1);
    CHECK(c.listen_addresses[0].host == "127.0.0.1");
    CHECK(c.listen_addresses[0].port == 8470);
    CHECK_FALSE(c.allow_remote);
    CHECK(c.socket_group.empty());
    CHECK(c.auth.token_files.empty());
    CHECK_FALSE(c.auth.enabled());
    CHECK(c.auth.metrics_require_token);
    CHECK(c.database == "otp-sidecar.db");
    CHECK(c.database_max_size_bytes == 0);
    CHECK(c.key_file == "otp-sidecar.key");
    CHECK(c.app_name == "Example");
    CHECK(c.log_level == LogLevel::kInfo);
    CHECK(c.code_length == 6);
    CHECK(c.code_ttl_ms == 300'000);
    CHECK(c.max_attempts == 5);
    CHECK(c.sms_providers == std::vector<std::string>{"console"});
    CHECK(c.sms_template ==
          "{code} is your {app} verification code. It expires in {minutes} minutes.");
    CHECK(c.webotp_domain.empty());
    CHECK(c.sms_file_path == "sms.jsonl");
    CHECK(c.http_min_threads == 8);
    CHECK(c.http_max_threads == 512);
    CHECK(c.http_keep_alive_timeout_ms == 2000);
    CHECK(c.http_request_timeout_ms == 5000);
    CHECK(c.delivery_max_attempts == 6);  // 1 + delivery.max_retries (5)
    CHECK(c.delivery_connect_timeout_ms == 3000);
    CHECK(c.delivery_request_timeout_ms == 10'000);
    CHECK_FALSE(c.delivery_resend_on_unknown);
    CHECK(c.delivery_workers == 4);
    CHECK(c.delivery_max_in_flight == 2);
  }

  TEST_CASE("LoadConfig without a file gives the defaults too") {
    Result<Config> c = LoadConfig(ConfigOverrides{});
    REQUIRE(c.ok());
    REQUIRE(c->listen_addresses.size() == 1);
    CHECK(c->listen_addresses[0].port == 8470);
    CHECK(c->database == "otp-sidecar.db");
    CHECK(c->key_file == "otp-sidecar.key");
  }

  TEST_CASE("every documented key is read") {
    Config c = MustParse(R"(
listen = "127.0.0.2:9001"
database = "/srv/otp/otp.db"
key_file = "/srv/keys/otp.key"
app_name = "Acme Bank"
log_level = "debug"

[code]
length = 8
ttl = "90s"
max_attempts = 3

[sms]
providers = ["file", "console"]
template = "{app}: {code}"
webotp_domain = "login.acme.example"

[sms.file]
path = "/srv/otp/sms.jsonl"

[http]
min_threads = 2
max_threads = 64
keep_alive_timeout = "10s"
request_timeout = "2s"

[delivery]
max_retries = 8
connect_timeout = "2s"
request_timeout = "20s"
resend_on_unknown = true
workers = 3
max_in_flight = 5
)");

    CHECK(c.listen == std::vector<std::string>{"127.0.0.2:9001"});
    REQUIRE(c.listen_addresses.size() == 1);
    CHECK(c.listen_addresses[0].host == "127.0.0.2");
    CHECK(c.listen_addresses[0].port == 9001);
    CHECK(c.database == "/srv/otp/otp.db");
    CHECK(c.key_file == "/srv/keys/otp.key");
    CHECK(c.app_name == "Acme Bank");
    CHECK(c.log_level == LogLevel::kDebug);
    CHECK(c.code_length == 8);
    CHECK(c.code_ttl_ms == 90'000);
    CHECK(c.max_attempts == 3);
    CHECK(c.sms_providers == std::vector<std::string>{"file", "console"});
    CHECK(c.sms_template == "{app}: {code}");
    CHECK(c.webotp_domain == "login.acme.example");
    CHECK(c.sms_file_path == "/srv/otp/sms.jsonl");
    CHECK(c.http_min_threads == 2);
    CHECK(c.http_max_threads == 64);
    CHECK(c.http_keep_alive_timeout_ms == 10'000);
    CHECK(c.http_request_timeout_ms == 2000);
    CHECK(c.delivery_max_attempts == 9);
    CHECK(c.delivery_connect_timeout_ms == 2000);
    CHECK(c.delivery_request_timeout_ms == 20'000);
    CHECK(c.delivery_resend_on_unknown);
    CHECK(c.delivery_workers == 3);
    CHECK(c.delivery_max_in_flight == 5);
  }

  TEST_CASE("the shipped etc/otp-sidecar.toml is valid") {
    ConfigOverrides overrides;
    overrides.config_file = ShippedConfigPath();
    REQUIRE(std::filesystem::exists(overrides.config_file));

    Result<Config> c = LoadConfig(overrides);
    REQUIRE_MESSAGE(c.ok(), (c.ok() ? "" : c.error().message));
    CHECK(c->sms_providers == std::vector<std::string>{"file"});
    CHECK(c->key_file == "/var/lib/otp-sidecar/otp-sidecar.key");
  }

  TEST_CASE("unknown keys are reported with file and line") {
    std::string problems = Problems(
        "listen = \"127.0.0.1:8470\"\n"
        "lisen = \"127.0.0.1:8471\"\n"
        "[code]\n"
        "lenght = 6\n"
        "[sms.file]\n"
        "pth = \"x\"\n"
        "[bogus]\n"
        "x = 1\n");

    CHECK(Contains(problems, std::string(kOrigin) + ":2: lisen: unknown key"));
    CHECK(Contains(problems, std::string(kOrigin) + ":4: code.lenght: unknown key"));
    CHECK(Contains(problems, std::string(kOrigin) + ":6: sms.file.pth: unknown key"));
    CHECK(Contains(problems, std::string(kOrigin) + ":7: bogus: unknown key"));
  }

  TEST_CASE("values of the wrong type are reported with file, line and key") {
    std::string problems = Problems(
        "listen = 8470\n"
        "[code]\n"
        "length = \"6\"\n"
        "max_attempts = 2.5\n"
        "ttl = 300\n"
        "[sms]\n"
        "providers = \"file\"\n"
        "[http]\n"
        "min_threads = true\n");

    CHECK(Contains(problems,
                   std::string(kOrigin) + ":1: listen: must be a string or an array of strings"));
    CHECK(Contains(problems, std::string(kOrigin) + ":3: code.length: must be an integer"));
    CHECK(Contains(problems, std::string(kOrigin) + ":4: code.max_attempts: must be an integer"));
    CHECK(Contains(problems, std::string(kOrigin) + ":5: code.ttl: must be a duration"));
    CHECK(Contains(problems, std::string(kOrigin) + ":7: sms.providers: must be an array"));
    CHECK(Contains(problems, std::string(kOrigin) + ":9: http.min_threads: must be an integer"));
  }

  TEST_CASE("a table given as a value, and arrays holding non-strings, are refused") {
    CHECK(Contains(Problems("code = 5\n"), "code: must be a table"));
    CHECK(Contains(Problems("[sms]\nproviders = [\"file\", 1]\n"),
                   "sms.providers: must be an array of strings"));
  }

  TEST_CASE("bad durations are refused") {
    for (const char* ttl : {"5", "5x", "-1s", "", "1.5m", "5 m"}) {
      CAPTURE(ttl);
      std::string problems = Problems(std::string("[code]\nttl = \"") + ttl + "\"\n");
      CHECK(Contains(problems, std::string(kOrigin) + ":2: code.ttl:"));
    }
    CHECK(Contains(Problems("[http]\nrequest_timeout = \"5x\"\n"), "http.request_timeout:"));
  }

  TEST_CASE("code.length must be 6 to 10") {
    CHECK(MustParse("[code]\nlength = 6\n").code_length == 6);
    CHECK(MustParse("[code]\nlength = 10\n").code_length == 10);

    CHECK(Contains(Problems("[code]\nlength = 5\n"), "code.length: must be between 6 and 10"));
    CHECK(Contains(Problems("[code]\nlength = 11\n"), "code.length: must be between 6 and 10"));
    CHECK(Contains(Problems("[code]\nlength = -6\n"), "code.length:"));
  }

  TEST_CASE("code.max_attempts must be 1 to 20") {
    CHECK(MustParse("[code]\nmax_attempts = 1\n").max_attempts == 1);
    CHECK(MustParse("[code]\nmax_attempts = 20\n").max_attempts == 20);

    CHECK(Contains(Problems("[code]\nmax_attempts = 0\n"), "code.max_attempts:"));
    CHECK(Contains(Problems("[code]\nmax_attempts = 21\n"), "code.max_attempts:"));
    CHECK(Contains(Problems("[code]\nmax_attempts = 4294967297\n"), "code.max_attempts:"));
  }

  TEST_CASE("code.ttl must be 1s to 1d") {
    CHECK(MustParse("[code]\nttl = \"1s\"\n").code_ttl_ms == 1000);
    CHECK(MustParse("[code]\nttl = \"1d\"\n").code_ttl_ms == 86'400'000);
    CHECK(MustParse("[code]\nttl = \"24h\"\n").code_ttl_ms == 86'400'000);

    CHECK(Contains(Problems("[code]\nttl = \"999ms\"\n"), "code.ttl: must be between"));
    CHECK(Contains(Problems("[code]\nttl = \"25h\"\n"), "code.ttl: must be between"));
    CHECK(Contains(Problems("[code]\nttl = \"2d\"\n"), "code.ttl: must be between"));
  }

  TEST_CASE("a non-loopback listen address is refused") {
    for (const char* listen : {"0.0.0.0:8470", "192.168.1.10:8470", "10.0.0.1:8470", "[::]:8470",
                               "[2001:db8::1]:8470", "128.0.0.1:8470"}) {
      CAPTURE(listen);
      std::string problems = Problems(std::string("listen = \"") + listen + "\"\n");
      CHECK(Contains(problems, "listen:"));
      CHECK(Contains(problems, "loopback"));
    }
  }

  TEST_CASE("malformed listen addresses are refused") {
    for (const char* listen :
         {"127.0.0.1", "127.0.0.1:", "127.0.0.1:abc", "127.0.0.1:65536", "127.0.0.1:-1", "::1:8470",
          ":8470", "example.com:8470", "127.0.0.1:84 70", ""}) {
      CAPTURE(listen);
      CHECK(Contains(Problems(std::string("listen = \"") + listen + "\"\n"), "listen:"));
    }
  }

  TEST_CASE("loopback listen addresses are accepted, IPv6 in brackets") {
    auto only = [](const Config& c) {
      REQUIRE(c.listen_addresses.size() == 1);
      return c.listen_addresses[0];
    };
    ListenAddress v6 = only(MustParse("listen = \"[::1]:8470\"\n"));
    CHECK(v6.host == "::1");
    CHECK(v6.port == 8470);
    CHECK(v6.ToString() == "[::1]:8470");

    ListenAddress named = only(MustParse("listen = \"localhost:9000\"\n"));
    CHECK(named.host == "localhost");
    CHECK(named.port == 9000);

    ListenAddress other = only(MustParse("listen = \"127.1.2.3:0\"\n"));
    CHECK(other.host == "127.1.2.3");
    CHECK(other.port == 0);
    CHECK(other.ToString() == "127.1.2.3:0");
    CHECK_FALSE(other.is_unix());
  }

  TEST_CASE("listen takes a list of TCP addresses and Unix sockets, in order") {
    Config c = MustParse(
        "listen = [\"127.0.0.1:8470\", \"unix:/run/otp-sidecar/otp-sidecar.sock\", "
        "\"[::1]:0\"]\n");
    REQUIRE(c.listen_addresses.size() == 3);
    CHECK(c.listen_addresses[0].ToString() == "127.0.0.1:8470");
    CHECK(c.listen_addresses[1].is_unix());
    CHECK(c.listen_addresses[1].unix_path == "/run/otp-sidecar/otp-sidecar.sock");
    CHECK(c.listen_addresses[1].ToString() == "unix:/run/otp-sidecar/otp-sidecar.sock");
    CHECK(c.listen_addresses[2].ToString() == "[::1]:0");

    Config relative = MustParse("listen = \"unix:run/otp.sock\"\n");
    REQUIRE(relative.listen_addresses.size() == 1);
    CHECK(relative.listen_addresses[0].unix_path == "run/otp.sock");
  }

  TEST_CASE("bad Unix socket entries, empty and repeated lists are refused with their line") {
    std::string long_path = "unix:/" + std::string(107, 'a');
    CHECK(Contains(Problems("listen = \"" + long_path + "\"\n"),
                   std::string(kOrigin) + ":1: listen: \"" + long_path +
                       "\" has a path longer than 107 bytes"));
    CHECK(MustParse("listen = \"unix:/" + std::string(106, 'a') + "\"\n").listen.size() == 1);
    CHECK(Contains(Problems("listen = \"unix:\"\n"), ":1: listen: \"unix:\" names no socket path"));
    CHECK(Contains(Problems("listen = []\n"), ":1: listen: must name at least one address"));
    CHECK(Contains(Problems("\nlisten = [\"unix:/a.sock\", \"unix:/a.sock\"]\n"),
                   ":2: listen: \"unix:/a.sock\" is listed twice"));
    CHECK(Contains(Problems("listen = [\"127.0.0.1:1\", 2]\n"),
                   "listen: must be an array of strings"));
  }

  TEST_CASE("a non-loopback address needs allow_remote and caller auth together") {
    const std::string remote = "listen = [\"127.0.0.1:8470\", \"0.0.0.0:8470\"]\n";
    const std::string auth = "[auth]\ntoken_files = [\"api-token\"]\n";
    std::string without = Problems(remote);
    CHECK(Contains(without, ":1: listen: 0.0.0.0:8470 is not a loopback address"));
    CHECK(Contains(without, "allow_remote = true and [auth] token_files"));
    CHECK(Contains(Problems("allow_remote = true\n" + remote), "0.0.0.0:8470 is not a loopback"));
    CHECK(Contains(Problems(remote + auth), "0.0.0.0:8470 is not a loopback"));

    Config allowed = MustParse("allow_remote = true\n" + remote + auth);
    CHECK(allowed.allow_remote);
    CHECK(allowed.listen_addresses.size() == 2);
    // Unix sockets and loopback addresses never need either.
    CHECK(MustParse("listen = [\"unix:/run/o.sock\", \"[::1]:1\"]\n").listen.size() == 2);
  }

  TEST_CASE("[auth] and socket_group are read") {
    Config c = MustParse(
        "socket_group = \"otp-clients\"\n"
        "[auth]\n"
        "token_files = [\"/run/credentials/otp-sidecar.service/api-token\", \"next-token\"]\n"
        "metrics_require_token = false\n");
    CHECK(c.socket_group == "otp-clients");
    CHECK(c.auth.enabled());
    CHECK(c.auth.token_files ==
          std::vector<std::string>{"/run/credentials/otp-sidecar.service/api-token", "next-token"});
    CHECK_FALSE(c.auth.metrics_require_token);

    std::string problems = Problems(
        "[auth]\n"
        "token_files = \"api-token\"\n"
        "metrics_require_token = \"yes\"\n"
        "tokens = [\"secret\"]\n");
    CHECK(Contains(problems, ":2: auth.token_files: must be an array of strings"));
    CHECK(Contains(problems, ":3: auth.metrics_require_token: must be true or false"));
    CHECK(Contains(problems, ":4: auth.tokens: unknown key"));
    CHECK(Contains(Problems("[auth]\ntoken_files = [\"\"]\n"), "auth.token_files:"));
  }

  TEST_CASE("repeated --listen flags replace the file's list") {
    TempDir dir;
    std::string file = dir.File("c.toml");
    WriteWholeFile(file, "listen = [\"127.0.0.1:8470\", \"127.0.0.1:8471\"]\n");
    ConfigOverrides flags;
    flags.config_file = file;
    flags.listen = {"unix:/run/o.sock", "127.0.0.1:9000"};

    Result<Config> c = LoadConfig(flags);
    REQUIRE_MESSAGE(c.ok(), (c.ok() ? "" : c.error().message));
    REQUIRE(c->listen_addresses.size() == 2);
    CHECK(c->listen_addresses[0].ToString() == "unix:/run/o.sock");
    CHECK(c->listen_addresses[1].ToString() == "127.0.0.1:9000");

    flags.listen = {"127.0.0.1:1", "10.0.0.1:1"};
    Result<Config> bad = LoadConfig(flags);
    REQUIRE_FALSE(bad.ok());
    CHECK(Contains(bad.error().message, "--listen: 10.0.0.1:1 is not a loopback address"));
  }

  TEST_CASE("IsLoopbackHost knows 127.0.0.0/8, ::1 and localhost") {
    CHECK(IsLoopbackHost("127.0.0.1"));
    CHECK(IsLoopbackHost("127.255.255.254"));
    CHECK(IsLoopbackHost("::1"));
    CHECK(IsLoopbackHost("localhost"));

    CHECK_FALSE(IsLoopbackHost("0.0.0.0"));
    CHECK_FALSE(IsLoopbackHost("::"));
    CHECK_FALSE(IsLoopbackHost("128.0.0.1"));
    CHECK_FALSE(IsLoopbackHost("10.127.0.1"));
    CHECK_FALSE(IsLoopbackHost("localhost.example.com"));
    CHECK_FALSE(IsLoopbackHost(""));
  }

  TEST_CASE("several problems are reported together, one per line") {
    std::string problems = Problems(
        "listen = \"0.0.0.0:8470\"\n"
        "log_level = \"loud\"\n"
        "[code]\n"
        "length = 4\n"
        "ttl = \"5x\"\n"
        "[sms]\n"
        "template = \"no code here\"\n");

    CHECK(LineCount(problems) == 5);
    CHECK(Contains(problems, "listen:"));
    CHECK(Contains(problems, std::string(kOrigin) + ":2: log_level:"));
    CHECK(Contains(problems, std::string(kOrigin) + ":4: code.length:"));
    CHECK(Contains(problems, std::string(kOrigin) + ":5: code.ttl:"));
    CHECK(Contains(problems, "sms.template:"));
  }

  TEST_CASE("a TOML syntax error is reported with file and line") {
    std::string problems = Problems("listen = \"127.0.0.1:8470\"\n[code\nlength = 6\n");
    CHECK(Contains(problems, std::string(kOrigin) + ":2:"));
  }

  TEST_CASE("provider lists are checked") {
    CHECK(Contains(Problems("[sms]\nproviders = []\n"), "sms.providers:"));
    CHECK(Contains(Problems("[sms]\nproviders = [\"twilio\"]\n"), "twilio"));
    CHECK(Contains(Problems("[sms]\nproviders = [\"console\", \"console\"]\n"), "listed twice"));
    CHECK(Contains(Problems("[sms]\nproviders = [\"file\"]\n[sms.file]\npath = \"\"\n"),
                   "sms.file.path:"));
  }

  TEST_CASE("provider URLs and the Twilio sender are checked as the providers will use them") {
    const std::string twilio =
        "[sms]\nproviders = [\"twilio\"]\n[sms.twilio]\n"
        "account_sid = \"AC0123456789abcdef0123456789abcdef\"\nauth_token_env = \"T\"\n";
    const std::string webhook =
        "[sms]\nproviders = [\"webhook\"]\n[sms.webhook]\nsecret_env = \"S\"\n";
    const std::string sender = "from = \"+12065550199\"\n";

    MustParse(twilio + sender + "status_callback = \"https://cb.example/sms?tenant=a\"\n");
    MustParse(webhook + "url = \"https://gw.example/send?tenant=a\"\n");
    for (const char* from : {"+12065550199", "12345", "Acme Login", "ACME"}) {
      CAPTURE(from);
      MustParse(twilio + "from = \"" + from + "\"\n");
    }

    for (const char* url : {"https://api.example:99999", "https://user:pw@api.example",
                            "https://api.example/#z", "http://", "ftp://api.example"}) {
      CAPTURE(url);
      CHECK(Contains(Problems(twilio + sender + "base_url = \"" + url + "\"\n"),
                     "sms.twilio.base_url:"));
      CHECK(Contains(Problems(twilio + sender + "status_callback = \"" + url + "\"\n"),
                     "sms.twilio.status_callback:"));
    }
    CHECK(Contains(Problems(twilio + sender + "base_url = \"https://api.example/x?y=1\"\n"),
                   "sms.twilio.base_url:"));
    for (const char* url : {"http://127.0.0.1:99999/send", "http://", "http://u:p@h/send",
                            "https://h/send#frag", "h/send", ""}) {
      CAPTURE(url);
      CHECK(Contains(Problems(webhook + "url = \"" + url + "\"\n"), "sms.webhook.url:"));
    }
    for (const char* from :
         {"not a number!", "+0123456789", "+1206", "Twelve Chars", "12", " ACME"}) {
      CAPTURE(from);
      CHECK(Contains(Problems(twilio + "from = \"" + from + "\"\n"), "sms.twilio.from:"));
    }
  }

  TEST_CASE("templates, WebOTP domains, app names and thread counts are checked") {
    CHECK(Contains(Problems("[sms]\ntemplate = \"{code} {code}\"\n"), "sms.template:"));
    CHECK(Contains(Problems("[sms]\ntemplate = \"{code} {foo}\"\n"), "sms.template:"));
    CHECK(
        Contains(Problems("[sms]\nwebotp_domain = \"Login.Example.com\"\n"), "sms.webotp_domain:"));
    CHECK(Contains(Problems("app_name = \"\"\n"), "app_name:"));
    CHECK(Contains(Problems("app_name = \"" + std::string(65, 'a') + "\"\n"), "app_name:"));
    CHECK(Contains(Problems("app_name = \"a\\nb\"\n"), "app_name:"));
    CHECK(Contains(Problems("[http]\nmin_threads = 10\nmax_threads = 5\n"), "http.min_threads:"));
    CHECK(Contains(Problems("database = \"\"\n"), "database:"));
  }

  TEST_CASE("flags override the file") {
    TempDir dir;
    std::string file = dir.File("otp.toml");
    WriteWholeFile(file,
                   "listen = \"127.0.0.1:8470\"\n"
                   "database = \"/srv/file.db\"\n"
                   "key_file = \"/srv/file.key\"\n"
                   "log_level = \"warn\"\n"
                   "[code]\n"
                   "length = 7\n"
                   "[sms]\n"
                   "providers = [\"console\"]\n"
                   "[sms.file]\n"
                   "path = \"/srv/file.jsonl\"\n");

    ConfigOverrides flags;
    flags.config_file = file;
    flags.listen = {"[::1]:9100"};
    flags.database = "/tmp/flag.db";
    flags.key_file = "/tmp/flag.key";
    flags.sms_provider = "file";
    flags.sms_file = "/tmp/flag.jsonl";
    flags.log_level = "error";

    Result<Config> c = LoadConfig(flags);
    REQUIRE_MESSAGE(c.ok(), (c.ok() ? "" : c.error().message));
    REQUIRE(c->listen_addresses.size() == 1);
    CHECK(c->listen_addresses[0].host == "::1");
    CHECK(c->listen_addresses[0].port == 9100);
    CHECK(c->database == "/tmp/flag.db");
    CHECK(c->key_file == "/tmp/flag.key");
    CHECK(c->sms_providers == std::vector<std::string>{"file"});
    CHECK(c->sms_file_path == "/tmp/flag.jsonl");
    CHECK(c->log_level == LogLevel::kError);
    CHECK(c->code_length == 7);  // not overridden: from the file
  }

  TEST_CASE("bad flag values are reported by flag") {
    ConfigOverrides flags;
    flags.log_level = "chatty";
    Result<Config> c = LoadConfig(flags);
    REQUIRE_FALSE(c.ok());
    CHECK(Contains(c.error().message, "--log-level:"));

    ConfigOverrides listen;
    listen.listen = {"0.0.0.0:8470"};
    Result<Config> d = LoadConfig(listen);
    REQUIRE_FALSE(d.ok());
    CHECK(Contains(d.error().message, "loopback"));
  }

  TEST_CASE("a config file that cannot be read is an error naming it") {
    TempDir dir;
    ConfigOverrides flags;
    flags.config_file = dir.File("missing.toml");

    Result<Config> c = LoadConfig(flags);
    REQUIRE_FALSE(c.ok());
    CHECK(c.error().code == "invalid_config");
    CHECK(Contains(c.error().message, flags.config_file));
  }

  TEST_CASE("a folder given as the config file is an error, not an empty configuration") {
    TempDir dir;
    ConfigOverrides flags;
    flags.config_file = dir.path();

    Result<Config> c = LoadConfig(flags);
    REQUIRE_FALSE(c.ok());
    CHECK(c.error().code == "invalid_config");
    CHECK(Contains(c.error().message, "cannot be read"));
  }

  TEST_CASE("key_file defaults to otp-sidecar.key beside the database") {
    CHECK(MustParse("database = \"/var/lib/otp/otp.db\"\n").key_file ==
          "/var/lib/otp/otp-sidecar.key");
    CHECK(MustParse("database = \"data/otp.db\"\n").key_file == "data/otp-sidecar.key");
    CHECK(MustParse("database = \"otp.db\"\n").key_file == "otp-sidecar.key");
    CHECK(MustParse("database = \"/otp.db\"\n").key_file == "/otp-sidecar.key");

    CHECK(MustParse("database = \"/a/otp.db\"\nkey_file = \"/b/k\"\n").key_file == "/b/k");
  }

  TEST_CASE("key_file follows a --database flag when neither names a key file") {
    TempDir dir;
    std::string file = dir.File("otp.toml");
    WriteWholeFile(file, "database = \"/srv/file.db\"\n");

    ConfigOverrides flags;
    flags.config_file = file;
    flags.database = "/tmp/elsewhere/flag.db";

    Result<Config> c = LoadConfig(flags);
    REQUIRE(c.ok());
    CHECK(c->key_file == "/tmp/elsewhere/otp-sidecar.key");
  }

  TEST_CASE("[phone] and [limits] default to the documented values") {
    Config c = MustParse("");

    CHECK(c.phone.default_region == "US");
    CHECK(c.phone.allowed_regions == std::vector<std::string>{"US"});  // the default region
    CHECK(c.phone.blocked_types ==
          std::vector<std::string>{"premium_rate", "shared_cost", "uan", "pager", "unknown"});

    const LimitSettings& l = c.limits;
    CHECK(l.resend_cooldown_ms == 30'000);
    CHECK(RulesText(l.user_sends) == "5/900s,10/86400s");
    CHECK(RulesText(l.phone_sends) == "5/900s,10/86400s");
    CHECK(RulesText(l.ip_sends) == "20/3600s");
    CHECK(RulesText(l.region_sends) == "100/3600s");
    CHECK(RulesText(l.global_sends) == "60/60s");
    CHECK(RulesText(l.user_failures) == "10/3600s");
    CHECK(RulesText(l.ip_failures) == "50/3600s");
    CHECK(l.exempt_numbers.empty());
    CHECK(l.pumping.enabled);
    CHECK(l.pumping.floor == 20);
    CHECK(l.pumping.min_conversion == doctest::Approx(0.2));
    CHECK(l.pumping.cool_off_ms == 3'600'000);
  }

  TEST_CASE("allowed_regions defaults to a configured default_region") {
    Config c = MustParse("[phone]\ndefault_region = \"GB\"\n");
    CHECK(c.phone.default_region == "GB");
    CHECK(c.phone.allowed_regions == std::vector<std::string>{"GB"});
  }

  TEST_CASE("every [phone] and [limits] key is read") {
    Config c = MustParse(R"(
[phone]
default_region = "CA"
allowed_regions = ["CA", "US", "FR"]
blocked_types = ["premium_rate", "toll_free"]

[limits]
resend_cooldown = "45s"
user_sends = ["3/10m", "8/1d"]
phone_sends = ["4/15m"]
ip_sends = ["30/2h"]
region_sends = ["500/1h"]
global_sends = ["120/1m"]
user_failures = ["6/30m"]
ip_failures = ["40/1h"]
exempt_numbers = ["+12065550199"]

[limits.pumping]
enabled = false
floor = 50
min_conversion = 0.35
cool_off = "2h"
)");

    CHECK(c.phone.default_region == "CA");
    CHECK(c.phone.allowed_regions == std::vector<std::string>{"CA", "US", "FR"});
    CHECK(c.phone.blocked_types == std::vector<std::string>{"premium_rate", "toll_free"});
    const LimitSettings& l = c.limits;
    CHECK(l.resend_cooldown_ms == 45'000);
    CHECK(RulesText(l.user_sends) == "3/600s,8/86400s");
    CHECK(RulesText(l.phone_sends) == "4/900s");
    CHECK(RulesText(l.ip_sends) == "30/7200s");
    CHECK(RulesText(l.region_sends) == "500/3600s");
    CHECK(RulesText(l.global_sends) == "120/60s");
    CHECK(RulesText(l.user_failures) == "6/1800s");
    CHECK(RulesText(l.ip_failures) == "40/3600s");
    CHECK(l.exempt_numbers == std::vector<std::string>{"+12065550199"});
    CHECK_FALSE(l.pumping.enabled);
    CHECK(l.pumping.floor == 50);
    CHECK(l.pumping.min_conversion == doctest::Approx(0.35));
    CHECK(l.pumping.cool_off_ms == 7'200'000);
  }

  TEST_CASE("rates are COUNT/DURATION and an empty list turns a limit off") {
    Config c = MustParse(
        "[limits]\n"
        "user_sends = [\"5/15m\"]\n"
        "phone_sends = [\"1/1s\", \"100000/30d\"]\n"
        "ip_sends = []\n");
    REQUIRE(c.limits.user_sends.size() == 1);
    CHECK(c.limits.user_sends[0].count == 5);
    CHECK(c.limits.user_sends[0].window_ms == 15 * 60 * 1000);
    REQUIRE(c.limits.phone_sends.size() == 2);
    CHECK(c.limits.phone_sends[0].count == 1);
    CHECK(c.limits.phone_sends[0].window_ms == 1000);
    CHECK(c.limits.phone_sends[1].count == 100'000);
    CHECK(c.limits.phone_sends[1].window_ms == 30LL * 24 * 60 * 60 * 1000);
    CHECK(c.limits.ip_sends.empty());
    CHECK(RulesText(c.limits.region_sends) == "100/3600s");  // untouched: the default
  }

  TEST_CASE("bad rates are reported with file, line and key") {
    for (const char* key : {"user_sends", "phone_sends", "ip_sends", "region_sends", "global_sends",
                            "user_failures", "ip_failures"}) {
      for (const char* rate :
           {"5", "0/1m", "5/0s", "x/1m", "5/", "/1m", "-1/1m", "5/31d", "100001/1m", "5/15x", ""}) {
        CAPTURE(key);
        CAPTURE(rate);
        std::string problems =
            Problems(std::string("[limits]\n") + key + " = [\"1/1m\", \"" + rate + "\"]\n");
        CHECK(Contains(problems, std::string(kOrigin) + ":2: limits." + key + ":"));
        CHECK(Contains(problems, std::string("\"") + rate + "\" is not a rate"));
        CHECK(LineCount(problems) == 1);
      }
    }
  }

  TEST_CASE("every bad rate in a list is reported, not only the first") {
    std::string problems = Problems("[limits]\nuser_sends = [\"x/1m\", \"1/1m\", \"5/15x\"]\n");
    CHECK(Contains(problems, "\"x/1m\" is not a rate"));
    CHECK(Contains(problems, "\"5/15x\" is not a rate"));
    CHECK(LineCount(problems) == 2);
  }

  TEST_CASE("template keys naming one language twice are refused") {
    std::string problems =
        Problems("[sms.templates]\n\"pt-BR\" = \"{code} a\"\n\"pt_br\" = \"{code} b\"\n");
    CHECK(Contains(problems, "sms.templates.pt_br: names the same language as another key"));
    CHECK(LineCount(problems) == 1);
  }

  TEST_CASE("rates that are not an array of strings are refused") {
    CHECK(Contains(Problems("[limits]\nuser_sends = \"5/15m\"\n"),
                   "limits.user_sends: must be an array of strings"));
    CHECK(Contains(Problems("[limits]\nuser_sends = [5]\n"),
                   "limits.user_sends: must be an array of strings"));
  }

  TEST_CASE("unknown regions are refused with the key") {
    std::string bad_default = Problems("[phone]\ndefault_region = \"XX\"\n");
    CHECK(Contains(bad_default, std::string(kOrigin) + ":2: phone.default_region:"));
    CHECK(Contains(bad_default, "\"XX\""));

    std::string bad_allowed = Problems("[phone]\nallowed_regions = [\"US\", \"XX\"]\n");
    CHECK(Contains(bad_allowed, std::string(kOrigin) + ":2: phone.allowed_regions:"));
    CHECK(Contains(bad_allowed, "\"XX\""));
    CHECK_FALSE(Contains(bad_allowed, "\"US\""));

    CHECK(Contains(Problems("[phone]\ndefault_region = \"us\"\n"), "phone.default_region:"));
    CHECK(Contains(Problems("[phone]\ndefault_region = 1\n"),
                   "phone.default_region: must be a string"));
  }

  TEST_CASE("unknown blocked types are refused, listing the known ones") {
    std::string problems = Problems("[phone]\nblocked_types = [\"premium_rate\", \"satellite\"]\n");
    CHECK(Contains(problems, std::string(kOrigin) + ":2: phone.blocked_types:"));
    CHECK(Contains(problems, "\"satellite\""));
    CHECK(Contains(problems, "premium_rate"));  // in the list of known types
    CHECK(LineCount(problems) == 1);

    CHECK(MustParse("[phone]\nblocked_types = []\n").phone.blocked_types.empty());
  }

  TEST_CASE("exempt numbers are normalised to E.164, whatever their region or type") {
    Config c = MustParse(
        "[limits]\n"
        "exempt_numbers = [\"+1 206 555 0199\", \"(206) 555-0198\", \"+44 20 7946 0958\",\n"
        "                  \"+1 900 555 0100\", \"+12065550197 \"]\n");
    CHECK(c.limits.exempt_numbers == std::vector<std::string>{"+12065550199", "+12065550198",
                                                              "+442079460958", "+19005550100",
                                                              "+12065550197"});
  }

  TEST_CASE("an exempt number that is not a phone number is refused with the key") {
    std::string problems = Problems("[limits]\nexempt_numbers = [\"+12065550199\", \"abc\"]\n");
    CHECK(Contains(problems, std::string(kOrigin) + ":2: limits.exempt_numbers:"));
    CHECK(Contains(problems, "\"abc\""));
    CHECK(LineCount(problems) == 1);
  }

  TEST_CASE("min_conversion must be a number from 0 to 1") {
    CHECK(MustParse("[limits.pumping]\nmin_conversion = 0\n").limits.pumping.min_conversion == 0.0);
    CHECK(MustParse("[limits.pumping]\nmin_conversion = 1\n").limits.pumping.min_conversion == 1.0);
    CHECK(MustParse("[limits.pumping]\nmin_conversion = 1.0\n").limits.pumping.min_conversion ==
          1.0);

    for (const char* value : {"1.5", "-0.1", "2", "-1", "\"0.5\"", "nan", "inf", "true"}) {
      CAPTURE(value);
      std::string problems = Problems(std::string("[limits.pumping]\nmin_conversion = ") + value);
      CHECK(Contains(problems,
                     std::string(kOrigin) + ":2: limits.pumping.min_conversion: must be a number"));
    }
  }

  TEST_CASE("the other pumping and cooldown values are checked") {
    CHECK(Contains(Problems("[limits.pumping]\nfloor = 0\n"), "limits.pumping.floor:"));
    CHECK(Contains(Problems("[limits.pumping]\nenabled = \"yes\"\n"),
                   "limits.pumping.enabled: must be true or false"));
    CHECK(
        Contains(Problems("[limits.pumping]\ncool_off = \"500ms\"\n"), "limits.pumping.cool_off:"));
    CHECK(Contains(Problems("[limits.pumping]\ncool_off = \"8d\"\n"), "limits.pumping.cool_off:"));
    CHECK(Contains(Problems("[limits]\nresend_cooldown = \"500ms\"\n"), "limits.resend_cooldown:"));
    CHECK(Contains(Problems("[limits]\nresend_cooldown = 30\n"),
                   "limits.resend_cooldown: must be a duration"));
    CHECK(MustParse("[limits]\nresend_cooldown = \"1s\"\n").limits.resend_cooldown_ms == 1000);
  }

  TEST_CASE("unknown keys in [phone] and [limits] are reported") {
    std::string problems = Problems(
        "[phone]\n"
        "default_regoin = \"US\"\n"
        "[limits]\n"
        "user_send = [\"5/15m\"]\n"
        "[limits.pumping]\n"
        "flor = 20\n");
    CHECK(Contains(problems, std::string(kOrigin) + ":2: phone.default_regoin: unknown key"));
    CHECK(Contains(problems, std::string(kOrigin) + ":4: limits.user_send: unknown key"));
    CHECK(Contains(problems, std::string(kOrigin) + ":6: limits.pumping.flor: unknown key"));
  }

  TEST_CASE("[retention] and log_file default to 7 and 90 days and stderr") {
    Config c = MustParse("");
    CHECK(c.retention.challenges_ms == 7LL * 24 * 60 * 60 * 1000);
    CHECK(c.retention.audit_ms == 90LL * 24 * 60 * 60 * 1000);
    CHECK(c.log_file.empty());
  }

  TEST_CASE("[retention] periods and log_file are read and checked") {
    Config c = MustParse(
        "log_file = \"/var/log/otp-sidecar.log\"\n"
        "[retention]\n"
        "challenges = \"2d\"\n"
        "audit = \"30d\"\n");
    CHECK(c.log_file == "/var/log/otp-sidecar.log");
    CHECK(c.retention.challenges_ms == 2LL * 24 * 60 * 60 * 1000);
    CHECK(c.retention.audit_ms == 30LL * 24 * 60 * 60 * 1000);

    std::string problems = Problems(
        "[retention]\n"
        "challenges = \"0d\"\n"
        "audit = \"4000d\"\n"
        "deliveries = \"1d\"\n");
    CHECK(Contains(problems, std::string(kOrigin) + ":2: retention.challenges:"));
    CHECK(Contains(problems, std::string(kOrigin) + ":3: retention.audit: must be between"));
    CHECK(Contains(problems, std::string(kOrigin) + ":4: retention.deliveries: unknown key"));
  }

  TEST_CASE("a loaded configuration remembers where it came from for reloading") {
    TempDir dir;
    ConfigOverrides flags;
    flags.config_file = dir.File("otp.toml");
    flags.sms_provider = "file";
    WriteWholeFile(flags.config_file, "app_name = \"Acme\"\n");

    Result<Config> c = LoadConfig(flags);
    REQUIRE(c.ok());
    CHECK(c->source.config_file == flags.config_file);
    CHECK(c->source.sms_provider == "file");
  }

  TEST_CASE("database_max_size takes bytes or a size with a unit, 0 or at least 1MiB") {
    CHECK(MustParse("database_max_size = \"512MiB\"\n").database_max_size_bytes == 536'870'912);
    CHECK(MustParse("database_max_size = \"2GB\"\n").database_max_size_bytes == 2'000'000'000);
    CHECK(MustParse("database_max_size = 1048576\n").database_max_size_bytes == 1'048'576);
    CHECK(MustParse("database_max_size = \"1048576\"\n").database_max_size_bytes == 1'048'576);
    CHECK(MustParse("database_max_size = 0\n").database_max_size_bytes == 0);

    std::string problems = Problems(
        "database_max_size = \"512M\"\n"
        "[code]\nlength = 6\n");
    CHECK(
        Contains(problems, std::string(kOrigin) + ":1: database_max_size: \"512M\" is not a size"));
    CHECK(Contains(Problems("database_max_size = 1048575\n"),
                   ":1: database_max_size: must be 0 (no limit) or at least \"1MiB\""));
    CHECK(Contains(Problems("database_max_size = -1\n"), ":1: database_max_size: must be"));
    CHECK(Contains(Problems("database_max_size = 1.5\n"), ":1: database_max_size: must be"));
    CHECK(Contains(Problems("database_max_size = \"100KiB\"\n"), "at least \"1MiB\""));
  }

  TEST_CASE("database takes a PostgreSQL URI, with its own key file and no password") {
    Config c = MustParse(
        "database = \"postgresql://otp@db.internal/otp?sslmode=verify-full\"\n"
        "key_file = \"/etc/otp-sidecar/master.key\"\n"
        "database_password_file = \"database-password\"\n"
        "database_pool_size = 16\n");
    CHECK(IsPostgresDatabase(c.database));
    CHECK(c.database_password_file == "database-password");
    CHECK(c.database_pool_size == 16);
    CHECK(IsPostgresDatabase("postgres:///otp?host=/run/postgresql"));
    CHECK_FALSE(IsPostgresDatabase("/var/lib/otp-sidecar/postgresql.db"));
    CHECK_FALSE(IsPostgresDatabase("postgresql.db"));

    // No folder to put a key beside: serve and check-config insist on one (commands.cc).
    CHECK(MustParse("database = \"postgresql:///otp\"\n").key_file.empty());
    for (const char* uri :
         {"postgresql://otp:hunter2@db/otp", "postgres://otp:@db/otp",
          "postgresql:///otp?host=/run&password=hunter2", "postgresql:///otp?password=hunter2"}) {
      CAPTURE(uri);
      std::string problems =
          Problems(std::string("database = \"") + uri + "\"\nkey_file = \"k\"\n");
      CHECK(Contains(problems, "database: must not hold a password"));
    }
    // However libpq would read it: percent-encoded keys, a '?' inside the password, the
    // client key's passphrase.
    for (const char* uri : {"postgresql://otp:Q?secret@/otp?host=/run",
                            "postgresql:///otp?host=/run&passw%6Frd=hunter2",
                            "postgresql:///otp?sslpassword=hunter2"}) {
      CAPTURE(uri);
      CHECK(Contains(Problems(std::string("database = \"") + uri + "\"\nkey_file = \"k\"\n"),
                     "database: must not hold a password"));
    }
    CHECK(Contains(Problems("database = \"postgresql:///otp?bogus=1\"\nkey_file = \"k\"\n"),
                   "database: invalid URI query parameter"));
    // A user name alone, or an @ in the path, is no password.
    MustParse("database = \"postgresql://otp@db:5432/otp\"\nkey_file = \"k\"\n");
    MustParse("database = \"postgresql:///otp?user=otp&passfile=/etc/pgpass\"\nkey_file = \"k\"\n");

    CHECK(Contains(Problems("database = \"postgresql:///otp\"\nkey_file = \"k\"\n"
                            "database_max_size = \"1GiB\"\n"),
                   "database_max_size: applies to a SQLite file only"));
    CHECK(Contains(Problems("database = \"mysql://otp@db/otp\"\n"),
                   "database: must be a file path or a postgresql:// (postgres://) URI"));
    CHECK(Contains(Problems("database_pool_size = 0\n"), "database_pool_size"));
    CHECK(Contains(Problems("database_pool_size = 257\n"), "database_pool_size"));
  }

  TEST_CASE("delivery.lease defaults to the longest send plus 30s and must outlast it") {
    CHECK(MustParse("").delivery_lease_ms == 3000 + 2 * 10'000 + 30'000);
    Config c = MustParse("[delivery]\nconnect_timeout = \"1s\"\nrequest_timeout = \"2s\"\n");
    CHECK(c.delivery_lease_ms == 1000 + 2 * 2000 + 30'000);
    CHECK(MustParse("[delivery]\nlease = \"24s\"\n").delivery_lease_ms == 24'000);
    CHECK(Contains(Problems("[delivery]\nlease = \"23s\"\n"),
                   "delivery.lease: must be longer than delivery.connect_timeout plus twice"));
    CHECK(Contains(Problems("[delivery]\nlease = \"500ms\"\n"), "delivery.lease"));
  }

}  // TEST_SUITE
