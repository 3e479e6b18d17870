#pragma once

// Configuration is read and checked once at start-up, from embedded defaults, then the
// TOML file, then OTP_SIDECAR_* environment variables, then command-line flags (each
// overriding the one before). The rest of the program receives this plain struct and never
// sees TOML.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/log.h"
#include "common/result.h"
#include "limits/limiter.h"
#include "phone/phone_validator.h"
#include "retention/retention.h"

namespace sidecar {

// One address to serve on: "HOST:PORT" on TCP, or "unix:/path" for a Unix socket.
struct ListenAddress {
  std::string host;       // TCP: an IP literal or "localhost"; IPv6 without brackets
  int port = 0;           // TCP: 0 asks the kernel for a free port
  std::string unix_path;  // not empty for a Unix socket (then host and port are unused)

  bool is_unix() const { return !unix_path.empty(); }
  // "127.0.0.1:8470", "[::1]:8470" or "unix:/run/otp-sidecar/otp-sidecar.sock".
  std::string ToString() const;
};

// [auth]: callers must send "Authorization: Bearer TOKEN" with one of the tokens read from
// these files (several files: several accepted tokens, for rotation). The tokens are read
// when serving starts, never kept in the configuration.
struct AuthConfig {
  std::vector<std::string> token_files;
  bool metrics_require_token = true;

  bool enabled() const { return !token_files.empty(); }
};

// [sms.twilio]. The auth token is named here (a file or an environment variable) and read
// when providers are made, never kept in the configuration.
struct TwilioConfig {
  std::string account_sid;
  std::string api_key_sid;
  std::string auth_token_file;
  std::string auth_token_env;
  std::string from;
  std::string messaging_service_sid;
  std::string status_callback;
  std::string base_url = "https://api.twilio.com";
  std::string ca_file;
};

// [sms.webhook].
struct WebhookConfig {
  std::string url;
  std::string secret_file;
  std::string secret_env;
  std::string ca_file;
};

// Command-line values that override the file. Empty means "not given".
struct ConfigOverrides {
  std::string config_file;
  std::vector<std::string> listen;  // --listen may be repeated; replaces the file's list
  std::string database;
  std::string key_file;
  std::string sms_provider;
  std::string sms_file;
  std::string log_level;
};

struct Config {
  std::vector<std::string> listen = {"127.0.0.1:8470"};
  std::vector<ListenAddress> listen_addresses = {{"127.0.0.1", 8470, ""}};  // parsed `listen`
  bool allow_remote = false;  // non-loopback TCP addresses, only with [auth] on
  std::string socket_group;   // group of the Unix sockets; empty: the one they are made with
  AuthConfig auth;
  // A SQLite file, or a PostgreSQL URI (postgresql://... or postgres://..., without a
  // password) for a database shared by several sidecars.
  std::string database = "otp-sidecar.db";
  // The most the database file may grow to, in bytes (rounded down to whole pages when
  // applied); 0: no limit but the disk's. Writes that need more room fail as storage_full.
  // SQLite only.
  std::int64_t database_max_size_bytes = 0;
  // PostgreSQL: where the password is read from when serving starts (see ReadSecret); both
  // empty: none, or libpq's own sources. Never kept in the configuration.
  std::string database_password_file;
  std::string database_password_env;
  // PostgreSQL: the most connections this sidecar opens.
  int database_pool_size = 8;
  std::string key_file;  // empty until Finalize(): then beside the database
  std::string app_name = "Example";
  LogLevel log_level = LogLevel::kInfo;
  std::string log_file;  // empty: logs go to stderr; else appended here, reopened on SIGHUP

  int code_length = 6;
  std::int64_t code_ttl_ms = 5 * 60 * 1000;
  int max_attempts = 5;

  std::vector<std::string> sms_providers = {"console"};
  std::string sms_template =
      "{code} is your {app} verification code. It expires in {minutes} minutes.";
  std::map<std::string, std::string> sms_templates;  // lower-case locale -> template
  std::string webotp_domain;
  std::string sms_file_path = "sms.jsonl";
  TwilioConfig twilio;
  WebhookConfig webhook;

  // HTTP serving. Each open keep-alive connection holds one thread, so the pool grows on
  // demand up to http_max_threads; idle connections are closed after keep_alive_timeout.
  int http_min_threads = 8;
  int http_max_threads = 512;
  // Short, because a stop waits for idle keep-alive connections to time out (see SIGTERM).
  std::int64_t http_keep_alive_timeout_ms = 2000;
  std::int64_t http_request_timeout_ms = 5000;

  // Delivery: sends tried per provider (1 + delivery.max_retries), provider timeouts, the
  // worker pool and how many sends one provider may have in flight at once.
  int delivery_max_attempts = 6;
  std::int64_t delivery_connect_timeout_ms = 3000;
  std::int64_t delivery_request_timeout_ms = 10'000;
  bool delivery_resend_on_unknown = false;
  int delivery_workers = 4;
  int delivery_max_in_flight = 2;  // per provider
  // How long a claimed delivery stays this sidecar's before another sidecar sharing the
  // database may take it over (PostgreSQL). Longer than a send may take; 0 until checked,
  // then the longest send plus 30 s unless set.
  std::int64_t delivery_lease_ms = 0;

  PhoneSettings phone;  // allowed_regions filled in (default region) after loading
  LimitSettings limits;
  RetentionSettings retention;

  // Where this configuration came from, so that SIGHUP can read the same file again.
  ConfigOverrides source;

  // Where each key that was set came from ("FILE:LINE", "environment VARIABLE", "--flag"),
  // so that problems found later (an unreadable key file) point at the setting.
  std::map<std::string, std::string> origins;

  // "ORIGIN: KEY: what" (or "KEY: what" for a default), as configuration errors read.
  std::string Problem(const std::string& key, const std::string& what) const;
};

// True when `database` names a PostgreSQL database rather than a SQLite file.
bool IsPostgresDatabase(const std::string& database);

// Environment variables by name. Only OTP_SIDECAR_* ones matter to the configuration.
using Environment = std::map<std::string, std::string>;

// The OTP_SIDECAR_* variables of this process.
Environment ProcessEnvironment();

// The variable that overrides `key`: "code.ttl" -> OTP_SIDECAR_CODE_TTL, "database" ->
// OTP_SIDECAR_DATABASE, "limits.pumping.floor" -> OTP_SIDECAR_LIMITS_PUMPING_FLOOR.
std::string VariableForKey(const std::string& key);

// Every key a configuration file may hold, sections and sms.templates as a whole included.
std::vector<std::string> KnownConfigKeys();

// Builds the configuration from the defaults, the file named in `overrides` (if any), the
// OTP_SIDECAR_* variables of `environment` and the flags. A variable's value is read as
// the file's would be: strings and durations as they are (or TOML-quoted), numbers,
// booleans and arrays as TOML (OTP_SIDECAR_LIMITS_USER_SENDS='["5/15m"]'), sms.templates
// as an inline table. Variables that name no key are errors, except those the
// configuration names as a secret's *_env source; secrets themselves never come from
// overrides. On failure the error's message lists every problem found, one per line, as
// "FILE:LINE: KEY: what is wrong", "environment VARIABLE: KEY: what is wrong" or
// "--flag: what is wrong".
Result<Config> LoadConfig(const ConfigOverrides& overrides, const Environment& environment = {});

// Parses TOML text as if read from `origin` (used by LoadConfig and by tests).
Result<Config> ParseConfigText(const std::string& text, const std::string& origin,
                               const Environment& environment = {});

// Checks one `listen` entry. Accepts "127.0.0.1:8470", "localhost:8470", "[::1]:8470" and
// "unix:PATH" (PATH at most 107 bytes, the limit of a socket address).
Result<ListenAddress> ParseListenAddress(const std::string& text);

// True for 127.0.0.0/8, ::1 and "localhost".
bool IsLoopbackHost(const std::string& host);

}  // namespace sidecar
