#include "config/cli.h"

#include <map>

namespace sidecar {
namespace {

using Setter = std::string ConfigOverrides::*;
using ListSetter = std::vector<std::string> ConfigOverrides::*;

// Flags that may be repeated, each occurrence adding one value.
const std::map<std::string, ListSetter>& RepeatedServeFlags() {
  static const std::map<std::string, ListSetter> kFlags = {
      {"--listen", &ConfigOverrides::listen},
  };
  return kFlags;
}

const std::map<std::string, Setter>& ServeFlags() {
  static const std::map<std::string, Setter> kFlags = {
      {"--config", &ConfigOverrides::config_file},
      {"--database", &ConfigOverrides::database},
      {"--key-file", &ConfigOverrides::key_file},
      {"--sms-provider", &ConfigOverrides::sms_provider},
      {"--sms-file", &ConfigOverrides::sms_file},
      {"--log-level", &ConfigOverrides::log_level},
  };
  return kFlags;
}

const std::map<std::string, Setter>& MigrateFlags() {
  static const std::map<std::string, Setter> kFlags = {
      {"--config", &ConfigOverrides::config_file},
      {"--database", &ConfigOverrides::database},
  };
  return kFlags;
}

Error Usage(const std::string& what) {
  return MakeError("usage", what + " (see otp-sidecar --help)");
}

Status ParseFlags(const std::vector<std::string>& args, std::size_t first,
                  const std::map<std::string, Setter>& flags,
                  const std::map<std::string, ListSetter>& repeated, CommandLine& out) {
  for (std::size_t i = first; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--help" || arg == "-h") {
      out.help_topic = out.command == Command::kServe         ? "serve"
                       : out.command == Command::kCheckConfig ? "check-config"
                                                              : "migrate";
      out.command = Command::kHelp;
      return OkStatus();
    }

    std::string name = arg;
    std::string value;
    bool has_value = false;
    if (std::size_t eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
      has_value = true;
    }

    auto flag = flags.find(name);
    auto list = repeated.find(name);
    if (flag == flags.end() && list == repeated.end()) {
      return Usage("unknown argument \"" + arg + "\"");
    }
    if (!has_value) {
      if (i + 1 >= args.size()) return Usage(name + " needs a value");
      value = args[++i];
    }
    if (value.empty()) return Usage(name + " needs a non-empty value");
    if (list != repeated.end()) {
      (out.overrides.*(list->second)).push_back(value);
    } else {
      out.overrides.*(flag->second) = value;
    }
  }
  return OkStatus();
}

}  // namespace

Result<CommandLine> ParseCommandLine(const std::vector<std::string>& args) {
  CommandLine out;
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    out.command = Command::kHelp;
    if (args.size() > 1) out.help_topic = args[1];
    return out;
  }

  const std::string& command = args[0];
  if (command == "version" || command == "--version") {
    out.command = Command::kVersion;
    if (args.size() > 1 && (args[1] == "--help" || args[1] == "-h")) {
      out.command = Command::kHelp;
      out.help_topic = "version";
    } else if (args.size() > 1) {
      return Usage("version takes no arguments");
    }
    return out;
  }

  Status parsed = OkStatus();
  if (command == "serve" || command == "check-config") {
    out.command = command == "serve" ? Command::kServe : Command::kCheckConfig;
    parsed = ParseFlags(args, 1, ServeFlags(), RepeatedServeFlags(), out);
  } else if (command == "migrate") {
    out.command = Command::kMigrate;
    parsed = ParseFlags(args, 1, MigrateFlags(), {}, out);
    if (parsed.ok() && out.command == Command::kMigrate && out.overrides.database.empty() &&
        out.overrides.config_file.empty()) {
      return Usage("migrate needs --database PATH or --config FILE");
    }
  } else {
    return Usage("unknown command \"" + command + "\"");
  }
  if (!parsed.ok()) return parsed.error();

  const std::string& provider = out.overrides.sms_provider;
  if (!provider.empty() && provider != "console" && provider != "file" && provider != "twilio" &&
      provider != "webhook") {
    return Usage("--sms-provider must be console, file, twilio or webhook");
  }
  return out;
}

std::string HelpText(const std::string& topic) {
  if (topic == "serve") {
    return "usage: otp-sidecar serve [options]\n"
           "\n"
           "Serves the API until SIGTERM or SIGINT (a clean stop within 3 seconds).\n"
           "SIGHUP reopens log_file and reloads the SMS templates. Creates the database\n"
           "and the key file when they are missing and applies pending migrations first.\n"
           "\n"
           "options (each overrides the configuration file):\n"
           "  --config FILE          TOML configuration file\n"
           "  --listen ADDRESS       HOST:PORT or unix:PATH to serve on; repeat for several\n"
           "                         (default 127.0.0.1:8470)\n"
           "  --database PATH|URI    SQLite file (default ./otp-sidecar.db), or a PostgreSQL\n"
           "                         URI postgresql://USER@HOST/DB shared by several sidecars\n"
           "  --key-file PATH        master key (default: otp-sidecar.key beside a SQLite\n"
           "                         file; required with PostgreSQL)\n"
           "  --sms-provider NAME    console, file, twilio or webhook (default console)\n"
           "  --sms-file PATH        where the file provider appends (default ./sms.jsonl)\n"
           "  --log-level LEVEL      debug, info, warn or error (default info)\n"
           "  --help                 this text\n"
           "\n"
           "Every configuration key can also be set by an environment variable\n"
           "OTP_SIDECAR_<SECTION>_<KEY> (OTP_SIDECAR_CODE_TTL=10m); flags override\n"
           "variables, which override the file. Under systemd (Type=notify) it reports\n"
           "readiness and pings the watchdog while GET /readyz would answer 200.\n";
  }
  if (topic == "check-config") {
    return "usage: otp-sidecar check-config [--config FILE] [serve options]\n"
           "\n"
           "Checks the configuration as serve would, without serving: every error with its\n"
           "file, line and key; the key file's permissions; that provider secrets and\n"
           "caller tokens can be read (never printing them); the socket group and the\n"
           "Unix socket paths; that a PostgreSQL database can be reached and logged into\n"
           "(nothing is written there). Warns when a template renders to more than one SMS\n"
           "segment. Exits 0 when serve would start, 2 when it would refuse; serve refuses\n"
           "with the same lines. OTP_SIDECAR_* variables are checked too.\n";
  }
  if (topic == "migrate") {
    return "usage: otp-sidecar migrate --database PATH|URI | --config FILE\n"
           "\n"
           "Creates the database if needed (a SQLite file), applies pending migrations and\n"
           "prints the schema version. Safe to run while sidecars are serving.\n";
  }
  if (topic == "version") {
    return "usage: otp-sidecar version\n\nPrints the version and the newest schema version.\n";
  }
  return "usage: otp-sidecar COMMAND [options]\n"
         "\n"
         "SMS one-time codes for a login server on the same host.\n"
         "\n"
         "commands:\n"
         "  serve         serve the API (otp-sidecar serve --help)\n"
         "  check-config  check the configuration without serving\n"
         "  migrate       create or upgrade the database\n"
         "  version       print the version\n";
}

}  // namespace sidecar
