#include "config/config.h"

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "codes/codes.h"
#include "common/time_format.h"
#include "config/environment.h"
#include "config/sms_config.h"
#include "config/toml_reader.h"
#include "delivery/message.h"
#include "limits/rate_rule.h"

namespace sidecar {
namespace {

using config_internal::ApplyEnvironment;
using config_internal::CheckSmsValues;
using config_internal::KeyKind;
using config_internal::Problems;
using config_internal::ReadSmsTable;
using config_internal::TableReader;

constexpr std::int64_t kMinTtlMs = 1000;
constexpr std::int64_t kMaxTtlMs = 24LL * 60 * 60 * 1000;
constexpr std::size_t kMaxAppNameLength = 64;
// sockaddr_un holds 108 bytes, the last for the terminating NUL.
constexpr std::size_t kMaxUnixPathLength = 107;
// A smaller database_max_size is surely a slip (bytes meant as MiB): the schema alone takes
// a good part of it.
constexpr std::int64_t kMinDatabaseMaxSize = 1024 * 1024;

void ReadPhone(const toml::table& table, Config& config, Problems& problems) {
  TableReader phone(table, "phone", problems);
  phone.String("default_region", &config.phone.default_region);
  phone.StringArray("allowed_regions", &config.phone.allowed_regions);
  phone.StringArray("blocked_types", &config.phone.blocked_types);
}

void ReadLimits(const toml::table& table, Config& config, Problems& problems) {
  TableReader limits(table, "limits", problems);
  LimitSettings& out = config.limits;
  limits.Duration("resend_cooldown", 1000, 24LL * 60 * 60 * 1000, "\"1s\" and \"1d\"",
                  &out.resend_cooldown_ms);
  limits.Rates("user_sends", &out.user_sends);
  limits.Rates("phone_sends", &out.phone_sends);
  limits.Rates("ip_sends", &out.ip_sends);
  limits.Rates("region_sends", &out.region_sends);
  limits.Rates("global_sends", &out.global_sends);
  limits.Rates("user_failures", &out.user_failures);
  limits.Rates("ip_failures", &out.ip_failures);
  limits.StringArray("exempt_numbers", &out.exempt_numbers);

  if (const toml::table* pumping = limits.Table("pumping")) {
    TableReader reader(*pumping, "limits.pumping", problems);
    reader.Boolean("enabled", &out.pumping.enabled);
    reader.Integer("floor", 1, 1'000'000, &out.pumping.floor);
    reader.Fraction("min_conversion", &out.pumping.min_conversion);
    reader.Duration("cool_off", 1000, 7LL * 24 * 60 * 60 * 1000, "\"1s\" and \"7d\"",
                    &out.pumping.cool_off_ms);
  }
}

void ReadTables(const toml::table& root, Config& config, Problems& problems) {
  TableReader top(root, "", problems);
  top.StringOrArray("listen", &config.listen);
  top.Boolean("allow_remote", &config.allow_remote);
  top.String("socket_group", &config.socket_group);
  top.String("database", &config.database);
  top.Size("database_max_size", kMinDatabaseMaxSize, "\"1MiB\"", &config.database_max_size_bytes);
  top.String("database_password_file", &config.database_password_file);
  top.String("database_password_env", &config.database_password_env);
  top.Integer("database_pool_size", 1, 256, &config.database_pool_size);
  top.String("key_file", &config.key_file);
  top.String("app_name", &config.app_name);
  top.String("log_file", &config.log_file);

  std::string log_level = "info";
  top.String("log_level", &log_level);
  if (!ParseLogLevel(log_level, &config.log_level)) {
    problems.Add(top.Where("log_level"), "log_level", "must be debug, info, warn or error");
  }

  if (const toml::table* code = top.Table("code")) {
    TableReader reader(*code, "code", problems);
    reader.Integer("length", kMinCodeLength, kMaxCodeLength, &config.code_length);
    reader.Duration("ttl", kMinTtlMs, kMaxTtlMs, "\"1s\" and \"1d\"", &config.code_ttl_ms);
    reader.Integer("max_attempts", 1, 20, &config.max_attempts);
  }

  if (const toml::table* sms = top.Table("sms")) ReadSmsTable(*sms, config, problems);
  if (const toml::table* phone = top.Table("phone")) ReadPhone(*phone, config, problems);
  if (const toml::table* limits = top.Table("limits")) ReadLimits(*limits, config, problems);

  if (const toml::table* auth = top.Table("auth")) {
    TableReader reader(*auth, "auth", problems);
    reader.StringArray("token_files", &config.auth.token_files);
    reader.Boolean("metrics_require_token", &config.auth.metrics_require_token);
  }
  if (const toml::table* retention = top.Table("retention")) {
    TableReader reader(*retention, "retention", problems);
    constexpr std::int64_t kMaxRetentionMs = 3650LL * 24 * 60 * 60 * 1000;
    reader.Duration("challenges", 1000, kMaxRetentionMs, "\"1s\" and \"3650d\"",
                    &config.retention.challenges_ms);
    reader.Duration("audit", 1000, kMaxRetentionMs, "\"1s\" and \"3650d\"",
                    &config.retention.audit_ms);
  }

  if (const toml::table* http = top.Table("http")) {
    TableReader reader(*http, "http", problems);
    reader.Integer("min_threads", 1, 1024, &config.http_min_threads);
    reader.Integer("max_threads", 1, 4096, &config.http_max_threads);
    reader.Duration("keep_alive_timeout", 1000, 300'000, "\"1s\" and \"5m\"",
                    &config.http_keep_alive_timeout_ms);
    reader.Duration("request_timeout", 1000, 300'000, "\"1s\" and \"5m\"",
                    &config.http_request_timeout_ms);
  }

  if (const toml::table* delivery = top.Table("delivery")) {
    TableReader reader(*delivery, "delivery", problems);
    int retries = config.delivery_max_attempts - 1;
    reader.Integer("max_retries", 0, 100, &retries);
    config.delivery_max_attempts = retries + 1;
    reader.Duration("connect_timeout", 100, 60'000, "\"100ms\" and \"1m\"",
                    &config.delivery_connect_timeout_ms);
    reader.Duration("request_timeout", 100, 300'000, "\"100ms\" and \"5m\"",
                    &config.delivery_request_timeout_ms);
    reader.Boolean("resend_on_unknown", &config.delivery_resend_on_unknown);
    reader.Integer("workers", 1, 64, &config.delivery_workers);
    reader.Integer("max_in_flight", 1, 64, &config.delivery_max_in_flight);
    reader.Duration("lease", 1000, 24LL * 60 * 60 * 1000, "\"1s\" and \"1d\"",
                    &config.delivery_lease_ms);
  }
}

bool IsPrintable(const std::string& text) {
  for (unsigned char c : text) {
    if (c < 0x20 || c == 0x7f) return false;
  }
  return true;
}

void CheckPhone(Config& config, Problems& problems) {
  PhoneSettings& phone = config.phone;
  if (!PhoneValidator::IsKnownRegion(phone.default_region)) {
    problems.AddFor("phone.default_region",
                    "\"" + phone.default_region +
                        "\" is not an ISO 3166 region code that libphonenumber knows");
  }
  for (const std::string& region : phone.allowed_regions) {
    if (!PhoneValidator::IsKnownRegion(region)) {
      problems.AddFor("phone.allowed_regions", "\"" + region + "\" is not a known region code");
    }
  }
  for (const std::string& type : phone.blocked_types) {
    if (!PhoneValidator::IsKnownType(type)) {
      std::string known;
      for (const std::string& name : PhoneValidator::KnownTypes()) {
        known += (known.empty() ? "" : ", ") + name;
      }
      problems.AddFor("phone.blocked_types", "unknown type \"" + type + "\"; known are " + known);
    }
  }
  if (phone.allowed_regions.empty()) phone.allowed_regions = {phone.default_region};

  // Exempt numbers are compared in E.164, so they are normalised the same way as requests,
  // but never refused for their region or type: they are the operator's own test numbers.
  PhoneValidator validator(phone);
  for (std::string& number : config.limits.exempt_numbers) {
    Result<PhoneNumberInfo> parsed = validator.Parse(number);
    if (!parsed.ok()) {
      problems.AddFor("limits.exempt_numbers", "\"" + number + "\" is not a valid phone number");
    } else {
      number = parsed->e164;
    }
  }
}

// Every entry parsed, none twice, and a non-loopback TCP address only when the operator
// has said so and callers must authenticate.
void CheckListen(Config& config, Problems& problems) {
  if (config.listen.empty()) problems.AddFor("listen", "must name at least one address");

  std::vector<ListenAddress> addresses;
  std::set<std::string> seen;
  for (const std::string& text : config.listen) {
    Result<ListenAddress> address = ParseListenAddress(text);
    if (!address.ok()) {
      problems.AddFor("listen", address.error().message);
      continue;
    }
    if (!seen.insert(address->ToString()).second) {
      problems.AddFor("listen", "\"" + text + "\" is listed twice");
    }
    bool remote = !address->is_unix() && !IsLoopbackHost(address->host);
    if (remote && !(config.allow_remote && config.auth.enabled())) {
      problems.AddFor("listen", text +
                                    " is not a loopback address; serving other hosts needs "
                                    "allow_remote = true and [auth] token_files");
    }
    addresses.push_back(*address);
  }
  config.listen_addresses = addresses;
}

void CheckAuth(const Config& config, Problems& problems) {
  for (const std::string& file : config.auth.token_files) {
    if (file.empty()) problems.AddFor("auth.token_files", "must not hold an empty file name");
  }
  if (config.socket_group.find('\0') != std::string::npos) {
    problems.AddFor("socket_group", "must be a group name or number");
  }
}

// True when the URI's user part holds a ':' ("otp:@host" too, whose empty password libpq
// drops without a word): a password was meant to go there.
bool UserPartHasPassword(const std::string& uri) {
  std::string::size_type start = uri.find("://") + 3;
  std::string authority = uri.substr(start, uri.find('/', start) - start);
  std::string::size_type at = authority.rfind('@');
  return at != std::string::npos && authority.substr(0, at).find(':') != std::string::npos;
}

// A PostgreSQL URI names its server, never its password: the configuration file and the
// logs that show `database` are not the place for it. libpq's own reading of the URI
// (percent-decoding included) decides, so that no spelling hides one. Errors with libpq's
// message when the URI is malformed.
Result<bool> UriHoldsSecret(const std::string& uri) {
  char* message = nullptr;
  PQconninfoOption* options = PQconninfoParse(uri.c_str(), &message);
  if (options == nullptr) {
    std::string what = message != nullptr ? message : "not a valid PostgreSQL URI";
    PQfreemem(message);
    while (!what.empty() && what.back() == '\n')
      what.pop_back();
    return MakeError("invalid_config", what);
  }
  bool secret = false;
  for (PQconninfoOption* option = options; option->keyword != nullptr; ++option) {
    bool is_secret = std::strcmp(option->keyword, "password") == 0 ||
                     std::strcmp(option->keyword, "sslpassword") == 0;
    if (is_secret && option->val != nullptr) secret = true;
  }
  PQconninfoFree(options);
  return secret;
}

void CheckPostgres(Config& config, Problems& problems) {
  Result<bool> secret = UriHoldsSecret(config.database);
  if (!secret.ok()) {
    problems.AddFor("database", secret.error().message);
  } else if (*secret || UserPartHasPassword(config.database)) {
    problems.AddFor("database",
                    "must not hold a password; put it in a file named by "
                    "database_password_file (or a systemd credential)");
  }
  if (config.database.find_first_of(" \t\r\n") != std::string::npos) {
    problems.AddFor("database", "must not contain white space");
  }
  if (config.database_max_size_bytes > 0) {
    problems.AddFor("database_max_size",
                    "applies to a SQLite file only; limit a PostgreSQL database on its server");
  }
}

// A send still running when its lease ends could be taken over and sent again, so the
// lease must outlast the longest send: the connect timeout plus a request timeout for each
// of sending and reading. Unset, it is that plus half a minute.
void CheckLease(Config& config, Problems& problems) {
  std::int64_t longest_send =
      config.delivery_connect_timeout_ms + 2 * config.delivery_request_timeout_ms;
  if (config.delivery_lease_ms == 0) {
    config.delivery_lease_ms = longest_send + 30'000;
  } else if (config.delivery_lease_ms <= longest_send) {
    problems.AddFor("delivery.lease",
                    "must be longer than delivery.connect_timeout plus twice "
                    "delivery.request_timeout (the longest a send may take)");
  }
}

// Cross-field and value checks that apply whatever the values came from.
void CheckValues(Config& config, Problems& problems) {
  CheckListen(config, problems);
  CheckAuth(config, problems);

  if (config.database.empty()) problems.AddFor("database", "must not be empty");
  if (IsPostgresDatabase(config.database)) {
    CheckPostgres(config, problems);
  } else if (config.database.find("://") != std::string::npos) {
    // Would otherwise be taken as a relative file path, and fail on its folder.
    problems.AddFor("database",
                    "must be a file path or a postgresql:// (postgres://) URI; no other "
                    "database is supported");
  }
  CheckLease(config, problems);
  if (config.app_name.empty() || config.app_name.size() > kMaxAppNameLength ||
      !IsPrintable(config.app_name)) {
    problems.AddFor("app_name", "must be 1 to 64 printable characters");
  }

  CheckSmsValues(config, problems);
  if (config.http_min_threads > config.http_max_threads) {
    problems.AddFor("http.min_threads", "must not exceed http.max_threads");
  }
  CheckPhone(config, problems);
}

void ApplyOverrides(const ConfigOverrides& flags, Config& config, Problems& problems) {
  auto apply = [&](const std::string& value, const char* key, const char* flag, auto&& set) {
    if (value.empty()) return;
    set(value);
    problems.FromFlag(key, flag);
  };
  if (!flags.listen.empty()) {
    config.listen = flags.listen;
    problems.FromFlag("listen", "--listen");
  }
  apply(flags.database, "database", "--database",
        [&](const std::string& v) { config.database = v; });
  apply(flags.key_file, "key_file", "--key-file",
        [&](const std::string& v) { config.key_file = v; });
  apply(flags.sms_provider, "sms.providers", "--sms-provider",
        [&](const std::string& v) { config.sms_providers = {v}; });
  apply(flags.sms_file, "sms.file.path", "--sms-file",
        [&](const std::string& v) { config.sms_file_path = v; });
  if (!flags.log_level.empty() && !ParseLogLevel(flags.log_level, &config.log_level)) {
    problems.AddFlag("--log-level", "must be debug, info, warn or error");
  }
}

// The key file defaults to "otp-sidecar.key" in the database's folder.
// A PostgreSQL database has no folder: there it stays empty, and serve insists on one (see
// StartupProblems).
void DefaultKeyFile(Config& config) {
  if (!config.key_file.empty() || IsPostgresDatabase(config.database)) return;
  std::string::size_type slash = config.database.rfind('/');
  std::string folder = slash == std::string::npos ? "" : config.database.substr(0, slash + 1);
  config.key_file = folder + "otp-sidecar.key";
}

// Every key the readers know, found by running them over an empty configuration.
const std::map<std::string, KeyKind>& KnownKeys() {
  static const std::map<std::string, KeyKind> kKeys = [] {
    Config config;
    Problems problems("");
    problems.StartDiscovery();
    ReadTables(toml::table{}, config, problems);
    return problems.known_keys();
  }();
  return kKeys;
}

Result<Config> Parse(const std::string& text, const std::string& origin,
                     const Environment& environment, const ConfigOverrides* flags) {
  Config config;
  Problems problems(origin);

  toml::table root;
  try {
    root = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    problems.Add(e.source(), "(syntax)", std::string(e.description()));
    return problems.ToError();
  }
  ApplyEnvironment(environment, KnownKeys(), root, problems);
  ReadTables(root, config, problems);

  if (flags != nullptr) {
    ApplyOverrides(*flags, config, problems);
    config.source = *flags;
  }
  CheckValues(config, problems);
  DefaultKeyFile(config);

  if (!problems.empty()) return problems.ToError();
  config.origins = problems.Origins();
  return config;
}

}  // namespace

bool IsPostgresDatabase(const std::string& database) {
  return database.rfind("postgresql://", 0) == 0 || database.rfind("postgres://", 0) == 0;
}

std::string Config::Problem(const std::string& key, const std::string& what) const {
  auto origin = origins.find(key);
  if (origin == origins.end()) return key + ": " + what;
  return origin->second + ": " + key + ": " + what;
}

std::string ListenAddress::ToString() const {
  if (is_unix()) return "unix:" + unix_path;
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

Result<ListenAddress> ParseListenAddress(const std::string& text) {
  auto invalid = [&](const std::string& why) {
    return MakeError("invalid_listen", "\"" + text + "\" " + why);
  };

  static const std::string kUnix = "unix:";
  if (text.compare(0, kUnix.size(), kUnix) == 0) {
    std::string path = text.substr(kUnix.size());
    if (path.empty()) return invalid("names no socket path");
    if (path.find('\0') != std::string::npos) return invalid("has a NUL byte in its path");
    if (path.size() > kMaxUnixPathLength) return invalid("has a path longer than 107 bytes");
    return ListenAddress{"", 0, path};
  }

  std::string::size_type colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) return invalid("is not HOST:PORT");

  std::string host = text.substr(0, colon);
  std::string port_text = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string::npos) {
    return invalid("needs brackets around an IPv6 address, like [::1]:8470");
  }

  int port = -1;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || port < 0 || port > 65535 ||
      port_text.empty()) {
    return invalid("has no valid port (0-65535)");
  }

  unsigned char buffer[16];
  bool literal = inet_pton(AF_INET, host.c_str(), buffer) == 1 ||
                 inet_pton(AF_INET6, host.c_str(), buffer) == 1;
  if (!literal && host != "localhost") return invalid("needs an IP address or localhost");
  return ListenAddress{host, port, ""};
}

bool IsLoopbackHost(const std::string& host) {
  if (host == "localhost" || host == "::1") return true;
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  return false;
}

Environment ProcessEnvironment() {
  Environment environment;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    std::string text = *entry;
    std::string::size_type eq = text.find('=');
    if (text.rfind("OTP_SIDECAR_", 0) != 0 || eq == std::string::npos) continue;
    environment[text.substr(0, eq)] = text.substr(eq + 1);
  }
  return environment;
}

std::vector<std::string> KnownConfigKeys() {
  std::vector<std::string> keys;
  for (const auto& [key, kind] : KnownKeys())
    keys.push_back(key);
  return keys;
}

Result<Config> ParseConfigText(const std::string& text, const std::string& origin,
                               const Environment& environment) {
  return Parse(text, origin, environment, nullptr);
}

Result<Config> LoadConfig(const ConfigOverrides& overrides, const Environment& environment) {
  if (overrides.config_file.empty()) return Parse("", "", environment, &overrides);

  // A folder opens as an empty stream: read as an empty file, it would start the sidecar
  // on every default, auth off included.
  std::error_code error;
  if (!std::filesystem::is_regular_file(overrides.config_file, error)) {
    return MakeError("invalid_config", overrides.config_file + ": cannot be read (not a file)");
  }
  std::ifstream in(overrides.config_file, std::ios::binary);
  if (!in) {
    return MakeError("invalid_config", overrides.config_file + ": cannot be read");
  }
  std::ostringstream text;
  text << in.rdbuf();
  return Parse(text.str(), overrides.config_file, environment, &overrides);
}

}  // namespace sidecar
