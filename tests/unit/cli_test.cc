#include "config/cli.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace sidecar;

namespace {

CommandLine MustParse(const std::vector<std::string>& args) {
  Result<CommandLine> line = ParseCommandLine(args);
  REQUIRE_MESSAGE(line.ok(), (line.ok() ? "" : line.error().message));
  return *line;
}

// The usage error for `args`; its message must name `culprit`.
void CheckUsage(const std::vector<std::string>& args, const std::string& culprit) {
  Result<CommandLine> line = ParseCommandLine(args);
  REQUIRE_FALSE(line.ok());
  CHECK(line.error().code == "usage");
  CHECK_MESSAGE(line.error().message.find(culprit) != std::string::npos, line.error().message);
}

}  // namespace

TEST_SUITE("cli") {
  TEST_CASE("no arguments asks for the general help") {
    CommandLine line = MustParse({});
    CHECK(line.command == Command::kHelp);
    CHECK(line.help_topic.empty());
  }

  TEST_CASE("serve without flags leaves every override empty") {
    CommandLine line = MustParse({"serve"});
    CHECK(line.command == Command::kServe);
    CHECK(line.overrides.config_file.empty());
    CHECK(line.overrides.listen.empty());
    CHECK(line.overrides.database.empty());
    CHECK(line.overrides.key_file.empty());
    CHECK(line.overrides.sms_provider.empty());
    CHECK(line.overrides.sms_file.empty());
    CHECK(line.overrides.log_level.empty());
  }

  TEST_CASE("serve reads every flag in the --name value form") {
    CommandLine line =
        MustParse({"serve", "--config", "/etc/o.toml", "--listen", "[::1]:9000", "--database",
                   "/srv/o.db", "--key-file", "/srv/o.key", "--sms-provider", "file", "--sms-file",
                   "/srv/sms.jsonl", "--log-level", "debug"});
    CHECK(line.command == Command::kServe);
    CHECK(line.overrides.config_file == "/etc/o.toml");
    CHECK(line.overrides.listen == std::vector<std::string>{"[::1]:9000"});
    CHECK(line.overrides.database == "/srv/o.db");
    CHECK(line.overrides.key_file == "/srv/o.key");
    CHECK(line.overrides.sms_provider == "file");
    CHECK(line.overrides.sms_file == "/srv/sms.jsonl");
    CHECK(line.overrides.log_level == "debug");
  }

  TEST_CASE("serve reads every flag in the --name=value form") {
    CommandLine line =
        MustParse({"serve", "--config=/etc/o.toml", "--listen=127.0.0.1:9000",
                   "--database=/srv/o.db", "--key-file=/srv/o.key", "--sms-provider=console",
                   "--sms-file=/srv/a=b.jsonl", "--log-level=warn"});
    CHECK(line.overrides.config_file == "/etc/o.toml");
    CHECK(line.overrides.listen == std::vector<std::string>{"127.0.0.1:9000"});
    CHECK(line.overrides.database == "/srv/o.db");
    CHECK(line.overrides.key_file == "/srv/o.key");
    CHECK(line.overrides.sms_provider == "console");
    CHECK(line.overrides.sms_file == "/srv/a=b.jsonl");  // only the first '=' splits
    CHECK(line.overrides.log_level == "warn");
  }

  TEST_CASE("the two flag forms mix") {
    CommandLine line = MustParse({"serve", "--database=/a.db", "--listen", "127.0.0.1:1"});
    CHECK(line.overrides.database == "/a.db");
    CHECK(line.overrides.listen == std::vector<std::string>{"127.0.0.1:1"});
  }

  TEST_CASE("--listen may be repeated, each adding an address in order") {
    CommandLine line = MustParse(
        {"serve", "--listen", "127.0.0.1:1", "--listen=unix:/run/o.sock", "--listen", "[::1]:2"});
    CHECK(line.overrides.listen ==
          std::vector<std::string>{"127.0.0.1:1", "unix:/run/o.sock", "[::1]:2"});
    CheckUsage({"serve", "--listen", "127.0.0.1:1", "--listen="}, "--listen");
  }

  TEST_CASE("unknown flags and commands are usage errors naming them") {
    CheckUsage({"serve", "--port", "8470"}, "--port");
    CheckUsage({"serve", "--port=8470"}, "--port");
    CheckUsage({"serve", "extra"}, "extra");
    CheckUsage({"serve", "-l", "127.0.0.1:1"}, "-l");
    CheckUsage({"start"}, "start");
    CheckUsage({"migrate", "--database", "x.db", "--listen", "127.0.0.1:1"}, "--listen");
    CheckUsage({"version", "--verbose"}, "version");
  }

  TEST_CASE("flags without a value are usage errors") {
    CheckUsage({"serve", "--listen"}, "--listen");
    CheckUsage({"serve", "--listen="}, "--listen");
    CheckUsage({"serve", "--database", ""}, "--database");
  }

  TEST_CASE("--sms-provider takes console, file, twilio or webhook only") {
    for (const char* provider : {"console", "file", "twilio", "webhook"}) {
      CAPTURE(provider);
      CHECK(MustParse({"serve", "--sms-provider", provider}).overrides.sms_provider == provider);
    }
    CheckUsage({"serve", "--sms-provider", "sns"}, "--sms-provider");
    CheckUsage({"serve", "--sms-provider", "Twilio"}, "--sms-provider");
    CheckUsage({"check-config", "--sms-provider", "sns"}, "--sms-provider");
  }

  TEST_CASE("check-config takes the serve flags") {
    CommandLine line = MustParse({"check-config", "--config", "/etc/otp.toml", "--listen",
                                  "127.0.0.1:9", "--sms-provider", "file"});
    CHECK(line.command == Command::kCheckConfig);
    CHECK(line.overrides.config_file == "/etc/otp.toml");
    CHECK(line.overrides.listen == std::vector<std::string>{"127.0.0.1:9"});
    CHECK(line.overrides.sms_provider == "file");
    CHECK(MustParse({"check-config"}).command == Command::kCheckConfig);
    CheckUsage({"check-config", "--bogus"}, "--bogus");
  }

  TEST_CASE("--help works everywhere and names its topic") {
    for (const auto& args : std::vector<std::vector<std::string>>{{"--help"}, {"-h"}, {"help"}}) {
      CommandLine line = MustParse(args);
      CHECK(line.command == Command::kHelp);
      CHECK(line.help_topic.empty());
    }

    CommandLine serve = MustParse({"serve", "--listen", "127.0.0.1:1", "--help"});
    CHECK(serve.command == Command::kHelp);
    CHECK(serve.help_topic == "serve");

    CommandLine migrate = MustParse({"migrate", "--help"});
    CHECK(migrate.command == Command::kHelp);
    CHECK(migrate.help_topic == "migrate");

    CommandLine version = MustParse({"version", "--help"});
    CHECK(version.command == Command::kHelp);
    CHECK(version.help_topic == "version");

    CommandLine topic = MustParse({"help", "serve"});
    CHECK(topic.command == Command::kHelp);
    CHECK(topic.help_topic == "serve");

    CHECK(MustParse({"serve", "-h"}).help_topic == "serve");
  }

  TEST_CASE("migrate needs --database or --config") {
    CheckUsage({"migrate"}, "migrate");

    CommandLine by_database = MustParse({"migrate", "--database", "/srv/o.db"});
    CHECK(by_database.command == Command::kMigrate);
    CHECK(by_database.overrides.database == "/srv/o.db");

    CommandLine by_config = MustParse({"migrate", "--config=/etc/o.toml"});
    CHECK(by_config.command == Command::kMigrate);
    CHECK(by_config.overrides.config_file == "/etc/o.toml");
  }

  TEST_CASE("version takes no arguments") {
    CHECK(MustParse({"version"}).command == Command::kVersion);
    CHECK(MustParse({"--version"}).command == Command::kVersion);
  }

  TEST_CASE("HelpText documents each command's flags") {
    std::string serve = HelpText("serve");
    for (const char* flag : {"--config", "--listen", "--database", "--key-file", "--sms-provider",
                             "--sms-file", "--log-level", "--help"}) {
      CAPTURE(flag);
      CHECK(serve.find(flag) != std::string::npos);
    }

    std::string migrate = HelpText("migrate");
    CHECK(migrate.find("--database") != std::string::npos);
    CHECK(migrate.find("--config") != std::string::npos);

    std::string general = HelpText("");
    for (const char* command : {"serve", "migrate", "version"}) {
      CAPTURE(command);
      CHECK(general.find(command) != std::string::npos);
    }
    CHECK(HelpText("version").find("version") != std::string::npos);
  }

}  // TEST_SUITE
