// check-config and serve over broken configurations: every error named with its key and
// where it was set (file and line, variable or flag), the same lines from both commands,
// and both refusing with exit status 2. Also environment overrides and a key given as a
// systemd credential, through the real binary.

#include <sys/stat.h>

#include <filesystem>
#include <regex>
#include <sstream>

#include "config/config.h"
#include "integration/test_helpers.h"
#include "support/postgres_server.h"

namespace sidecar::testing {
namespace {

struct BrokenCase {
  std::string name;
  std::string toml;                   // written to DIR/config.toml
  std::vector<std::string> expected;  // lines (or parts of lines) both commands must print
};

// The lines of `text` that report a problem: "error: ..." and "FILE:LINE: KEY: ..." ones.
std::vector<std::string> ProblemLines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("otp-sidecar:", 0) == 0 || line.rfind("ts=", 0) == 0) continue;
    if (line.rfind("note:", 0) == 0 || line.rfind("warning:", 0) == 0) continue;
    if (line.rfind("configuration ", 0) == 0 || line.empty()) continue;
    lines.push_back(line);
  }
  return lines;
}

// Runs check-config and serve on the same arguments; both must refuse with 2 and print the
// same problem lines, each expected part among them.
void CheckBothRefuse(const TempDir& dir, const std::vector<std::string>& args,
                     const std::vector<std::string>& expected,
                     const std::vector<std::string>& env = {}) {
  std::vector<std::string> check = {"check-config"};
  // No --listen for serve: it would hide a listen error that check-config reports. Every
  // case is refused before serve binds anything.
  std::vector<std::string> serve = {"serve"};
  check.insert(check.end(), args.begin(), args.end());
  serve.insert(serve.end(), args.begin(), args.end());
  ExitResult checked = RunSidecarToExit(check, dir.path(), Millis(10'000), env);
  ExitResult served = RunSidecarToExit(serve, dir.path(), Millis(10'000), env);
  INFO("check-config out: ", checked.out, " err: ", checked.err);
  INFO("serve err: ", served.err);

  CHECK(checked.exit_code == 2);
  CHECK(served.exit_code == 2);
  CHECK(served.err.find("msg=listening") == std::string::npos);
  std::vector<std::string> from_check = ProblemLines(checked.out + checked.err);
  CHECK(from_check == ProblemLines(served.err));
  for (const std::string& part : expected) {
    CAPTURE(part);
    bool found = false;
    for (const std::string& line : from_check)
      found = found || line.find(part) != std::string::npos;
    CHECK(found);
  }
}

TEST_CASE("check-config and serve name every error in a broken file with its key and line") {
  TempDir dir;
  std::string config = dir.File("config.toml");
  std::string where = config + ":";
  std::vector<BrokenCase> cases = {
      {"wrong types",
       "app_name = 7\n[code]\nlength = \"six\"\n[delivery]\nresend_on_unknown = \"no\"\n",
       {where + "1: app_name: must be a string", where + "3: code.length: must be an integer",
        where + "5: delivery.resend_on_unknown: must be true or false"}},
      {"bad durations",
       "[code]\nttl = \"5 minutes\"\n[limits]\nresend_cooldown = 30\n"
       "[http]\nrequest_timeout = \"1y\"\n",
       {where + "2: code.ttl:", where + "4: limits.resend_cooldown: must be a duration",
        where + "6: http.request_timeout:"}},
      {"unknown keys",
       "colour = \"blue\"\n[http]\nthreads = 4\n[limits.pumping]\nflor = 3\n",
       {where + "1: colour: unknown key", where + "3: http.threads: unknown key",
        where + "5: limits.pumping.flor: unknown key"}},
      {"values out of range",
       "listen = \"0.0.0.0:8470\"\n[delivery]\nworkers = 0\n[limits]\n"
       "user_sends = [\"5/fortnight\"]\n[phone]\ndefault_region = \"XX\"\n",
       {where + "1: listen:", where + "3: delivery.workers: must be between 1 and 64",
        where + "5: limits.user_sends:", where + "7: phone.default_region:"}},
      {"a syntax error", "[code\nlength = 6\n", {where + "1"}},
  };
  for (const BrokenCase& broken : cases) {
    CAPTURE(broken.name);
    WriteFileBytes(config, broken.toml);
    CheckBothRefuse(dir, {"--config", config, "--database", dir.File("otp.db")}, broken.expected);
  }
  CHECK_FALSE(std::filesystem::exists(dir.File("otp.db")));
}

TEST_CASE(
    "check-config and serve refuse unreadable files, an open key file and a missing "
    "secret, naming the key and where it was set") {
  TempDir dir;
  std::string config = dir.File("config.toml");
  CheckBothRefuse(dir, {"--config", dir.File("missing.toml")},
                  {dir.File("missing.toml") + ": cannot be read"});

  WriteFileBytes(dir.File("open.key"), std::string(64, 'a') + "\n", 0644);
  WriteFileBytes(config, "database = \"" + dir.File("otp.db") +
                             "\"\n"
                             "key_file = \"" +
                             dir.File("open.key") +
                             "\"\n"
                             "[sms]\nproviders = [\"webhook\"]\n"
                             "[sms.webhook]\nurl = \"https://127.0.0.1:9/send\"\n"
                             "secret_file = \"" +
                             dir.File("no-secret") + "\"\n");
  CheckBothRefuse(dir, {"--config", config},
                  {"error: " + config + ":2: key_file: key file " + dir.File("open.key") +
                       ": is accessible by group or others",
                   "error: " + config +
                       ":7: sms.webhook.secret_file: sms.webhook secret: "
                       "secret file " +
                       dir.File("no-secret") + " cannot be opened"});
  CHECK_FALSE(std::filesystem::exists(dir.File("otp.db")));
}

TEST_CASE("environment variables override the file, and their errors name the variable") {
  TempDir dir;
  std::string config = dir.File("config.toml");
  WriteFileBytes(config, "[code]\nttl = \"5m\"\n");

  CheckBothRefuse(dir, {"--config", config, "--database", dir.File("otp.db")},
                  {"environment OTP_SIDECAR_CODE_TTL: code.ttl:",
                   "environment OTP_SIDECAR_LIMTS_USER_SENDS: unknown variable"},
                  {"OTP_SIDECAR_CODE_TTL=5 minutes", "OTP_SIDECAR_LIMTS_USER_SENDS=[]"});

  SidecarOptions options = WithConfig("[code]\nttl = \"5m\"\nlength = 6\n");
  options.env = {"OTP_SIDECAR_CODE_TTL=10m", "OTP_SIDECAR_CODE_LENGTH=8",
                 "OTP_SIDECAR_LIMITS_USER_SENDS=[\"1/1h\"]"};
  SidecarProcess sidecar(options);
  httplib::Client client = sidecar.client();
  HttpReply created =
      PostJson(client, "/v1/challenges", {{"user", "alice"}, {"phone", kAlicePhone}});
  REQUIRE_MESSAGE(created.status == 202, created.describe());
  CHECK(created.integer("expires_in") == 600);
  CHECK(sidecar.WaitForSms(created.str("challenge_id")).size() == 8);
  HttpReply second =
      PostJson(client, "/v1/challenges", {{"user", "alice"}, {"phone", kAlicePhone}});
  CHECK(second.status == 429);
  CHECK(second.str("code") == "user_sends");
}

TEST_CASE("a key given as a credential is read there and never written") {
  TempDir dir;
  std::string credentials = dir.File("credentials");
  std::filesystem::create_directory(credentials);
  std::string key = std::string(64, 'b') + "\n";
  WriteFileBytes(credentials + "/master.key", key, 0400);
  ::chmod(credentials.c_str(), 0500);

  SidecarOptions options = WithConfig("key_file = \"master.key\"\n");
  options.env = {"CREDENTIALS_DIRECTORY=" + credentials};
  {
    SidecarProcess sidecar(options);
    httplib::Client client = sidecar.client();
    std::string id = CreateChallenge(client, "alice");
    CHECK(VerifyById(client, id, sidecar.WaitForSms(id)).str("status") == "approved");
    CHECK_FALSE(std::filesystem::exists(sidecar.dir().File("master.key")));
  }
  CHECK(ReadFileBytes(credentials + "/master.key") == key);

  // Without the credential the same name is a file in the working folder, made at start
  // (on SQLite: with a shared PostgreSQL database no key is ever made, see lifecycle tests).
  ::chmod(credentials.c_str(), 0700);
  if (TestStoreIsPostgres()) return;
  SidecarProcess plain(WithConfig("key_file = \"master.key\"\n"));
  CHECK(std::filesystem::exists(plain.dir().File("master.key")));
}

TEST_CASE("the example configuration parses and shows every key") {
  std::string path = std::string(OTP_SIDECAR_SOURCE_DIR) + "/etc/otp-sidecar.toml";
  std::string text = ReadFileBytes(path);
  REQUIRE_FALSE(text.empty());
  Result<Config> parsed = ParseConfigText(text, path);
  CHECK_MESSAGE(parsed.ok(), (parsed.ok() ? "" : parsed.error().message));

  // Each key, set or commented out, under its section's header.
  for (const std::string& key : KnownConfigKeys()) {
    CAPTURE(key);
    std::string::size_type dot = key.rfind('.');
    std::string leaf = dot == std::string::npos ? key : key.substr(dot + 1);
    std::string section = dot == std::string::npos ? "" : "[" + key.substr(0, dot) + "]";
    std::string::size_type from = section.empty() ? 0 : text.find("\n" + section + "\n");
    REQUIRE(from != std::string::npos);
    std::regex line("\n(# )?" + leaf + " = ");
    bool shown =
        std::regex_search(text.begin() + static_cast<std::ptrdiff_t>(from), text.end(), line) ||
        text.find("\n[" + key + "]\n") != std::string::npos;
    CHECK(shown);
  }
}

}  // namespace
}  // namespace sidecar::testing
