#include "app/commands.h"

#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <thread>

#include "app/housekeeper.h"
#include "app/reload.h"
#include "app/service_manager.h"
#include "app/signals.h"
#include "challenges/challenge_service.h"
#include "codes/random.h"
#include "common/log.h"
#include "common/log_file.h"
#include "common/paths.h"
#include "config/key_file.h"
#include "config/secrets.h"
#include "delivery/delivery_worker.h"
#include "delivery/encoding.h"
#include "http/auth.h"
#include "http/listeners.h"
#include "http/server.h"
#include "metrics/sidecar_metrics.h"
#include "providers/console_provider.h"
#include "providers/file_provider.h"
#include "providers/twilio_provider.h"
#include "providers/webhook_provider.h"
#include "store/migrations.h"
#include "store/pg_connection.h"
#include "store/postgres_store.h"
#include "store/sqlite_store.h"

#ifndef OTP_SIDECAR_VERSION
#define OTP_SIDECAR_VERSION "0.0.0"
#endif

namespace sidecar {
namespace {

// How long a readiness probe waits for the database's write lock.
constexpr std::int64_t kReadinessProbeMs = 1000;
// Beyond the provider's own timeouts, how long a delivery thread may go without a sign of
// life before it counts as stuck.
constexpr std::int64_t kStallMarginMs = 30'000;

std::string JoinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& name : names)
    out += (out.empty() ? "" : ",") + name;
  return out;
}

// A file serve must create or write: it must be writable if it exists, else its folder.
void CheckWritable(const Config& config, const std::string& key, const std::string& path,
                   std::vector<std::string>& problems) {
  if (::access(path.c_str(), F_OK) == 0) {
    if (::access(path.c_str(), W_OK) != 0) {
      problems.push_back(config.Problem(key, path + " is not writable"));
    }
    return;
  }
  std::string folder = FolderOf(path);
  if (::access(folder.c_str(), W_OK) != 0) {
    problems.push_back(config.Problem(key, "cannot create " + path + ": folder " + folder +
                                               " does not exist or is not writable"));
  }
}

// A size limit below what the database file already takes cannot be kept: SQLite would hold
// the file at its size and every create would fail. The file never shrinks by itself.
void CheckDatabaseSize(const Config& config, std::vector<std::string>& problems) {
  struct stat file {};
  if (config.database_max_size_bytes <= 0 || ::stat(config.database.c_str(), &file) != 0) return;
  if (file.st_size <= config.database_max_size_bytes) return;
  problems.push_back(config.Problem(
      "database_max_size", std::to_string(config.database_max_size_bytes) + " bytes is less than " +
                               config.database + " already takes (" + std::to_string(file.st_size) +
                               " bytes); raise it, or make the file smaller with VACUUM"));
}

// The key must be readable, private and well formed when it exists (as a credential or a
// file); when it does not, serve must be able to create it.
void CheckKeyFile(const Config& config, std::vector<std::string>& problems) {
  KeyFileLocation key = LocateKeyFile(config.key_file);
  if (!key.credential && ::access(key.path.c_str(), F_OK) != 0) {
    if (IsPostgresDatabase(config.database)) {
      problems.push_back(config.Problem(
          "key_file", key.path + " does not exist; with a PostgreSQL database it is not "
                                 "created: copy the key the other sidecars use"));
      return;
    }
    CheckWritable(config, "key_file", key.path, problems);
    return;
  }
  Result<MasterKey> loaded = LoadOrCreateKeyFile(key.path, false);
  if (loaded.ok()) sodium_memzero(loaded->data(), loaded->size());
  if (!loaded.ok()) problems.push_back(config.Problem("key_file", loaded.error().message));
}

// What would stop serve from listening or checking callers, found without binding: the
// socket group, the Unix sockets' folders and paths, the caller token files.
std::vector<std::string> ListenProblems(const Config& config) {
  std::vector<std::string> problems;
  // Each with where its key was set, like every other configuration problem.
  auto add = [&](const std::string& key, const Error& error) {
    problems.push_back(config.Problem(key, error.message));
  };

  if (!config.socket_group.empty()) {
    Result<gid_t> group = ResolveGroup(config.socket_group);
    if (!group.ok()) add("socket_group", group.error());
  }
  for (const ListenAddress& address : config.listen_addresses) {
    if (!address.is_unix()) continue;
    Status path = CheckUnixSocketPath(address.unix_path);
    if (!path.ok()) add("listen", path.error());
  }
  Result<CallerAuth> auth = MakeCallerAuth(config.auth);
  if (!auth.ok()) add("auth.token_files", auth.error());
  return problems;
}

// Each template rendered with the longest code, measured as the SMS network will count it.
std::vector<std::string> TemplateWarnings(const Config& config) {
  MessageSettings settings = MessageSettingsOf(config, config.code_ttl_ms);
  std::string code(static_cast<std::size_t>(config.code_length), '0');
  std::vector<std::pair<std::string, std::string>> named = {
      {"sms.template", RenderMessage(settings, code)}};
  for (const auto& [locale, text] : config.sms_templates) {
    named.emplace_back("sms.templates." + locale, RenderMessage(settings, code, locale));
  }

  std::vector<std::string> warnings;
  for (const auto& [key, text] : named) {
    MessageEncoding encoding = MeasureMessage(text);
    if (encoding.segments > 1) {
      warnings.push_back(key + ": renders to more than one SMS segment (" + encoding.ToString() +
                         "); each segment is billed");
    }
  }
  return warnings;
}

// SIGTERM must end the process within 3 s. A send already started gets this long from the
// signal to finish and be recorded, which leaves time for the WAL checkpoint; the rest of
// the budget covers in-flight requests, which finish at the same time.
constexpr std::int64_t kSendGraceMs = 2000;

std::int64_t SteadyNowMs() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

int Fail(const std::string& what, const Error& error) {
  Log(LogLevel::kError, "main", what, {{"code", error.code}, {"error", error.message}});
  return 1;
}

// As Fail, but a database that already takes more than database_max_size is a configuration
// error, with the exit status of one.
int FailToOpen(const std::string& what, const Error& error) {
  int status = Fail(what, error);
  return error.code == "invalid_config" || error.code == "invalid_secret" ? 2 : status;
}

// The key that names where a secret comes from: its file, else its variable.
std::string SecretKey(const std::string& section, const std::string& file_key,
                      const std::string& file, const std::string& env_key) {
  return section + "." + (file.empty() ? env_key : file_key);
}

Result<std::unique_ptr<SmsProvider>> MakeTwilio(const Config& config) {
  const TwilioConfig& twilio = config.twilio;
  Result<std::string> token = ReadSecret(twilio.auth_token_file, twilio.auth_token_env);
  if (!token.ok()) {
    Error error = token.error().WithContext("sms.twilio auth token");
    error.field =
        SecretKey("sms.twilio", "auth_token_file", twilio.auth_token_file, "auth_token_env");
    return error;
  }

  TwilioSettings settings{twilio.account_sid,
                          twilio.api_key_sid,
                          *token,
                          twilio.from,
                          twilio.messaging_service_sid,
                          twilio.status_callback,
                          twilio.base_url,
                          twilio.ca_file,
                          config.delivery_connect_timeout_ms,
                          config.delivery_request_timeout_ms};
  return std::unique_ptr<SmsProvider>(std::make_unique<TwilioProvider>(std::move(settings)));
}

Result<std::unique_ptr<SmsProvider>> MakeWebhook(const Config& config, const Clock& clock) {
  const WebhookConfig& webhook = config.webhook;
  Result<std::string> secret = ReadSecret(webhook.secret_file, webhook.secret_env);
  if (!secret.ok()) {
    Error error = secret.error().WithContext("sms.webhook secret");
    error.field = SecretKey("sms.webhook", "secret_file", webhook.secret_file, "secret_env");
    return error;
  }

  WebhookSettings settings{webhook.url, *secret, webhook.ca_file,
                           config.delivery_connect_timeout_ms, config.delivery_request_timeout_ms};
  return std::unique_ptr<SmsProvider>(
      std::make_unique<WebhookProvider>(std::move(settings), clock));
}

Result<std::unique_ptr<SmsProvider>> MakeProvider(const std::string& name, const Config& config,
                                                  const Clock& clock) {
  if (name == "twilio") return MakeTwilio(config);
  if (name == "webhook") return MakeWebhook(config, clock);
  if (name == "file") {
    return std::unique_ptr<SmsProvider>(
        std::make_unique<FileProvider>(config.sms_file_path, clock));
  }
  return std::unique_ptr<SmsProvider>(std::make_unique<ConsoleProvider>(STDOUT_FILENO));
}

// Makes the providers in failover order, reading their secrets. Errors name the provider
// and the file or variable, never the secret.
Result<std::vector<std::unique_ptr<SmsProvider>>> MakeProviders(const Config& config,
                                                                const Clock& clock) {
  std::vector<std::unique_ptr<SmsProvider>> providers;
  for (const std::string& name : config.sms_providers) {
    Result<std::unique_ptr<SmsProvider>> provider = MakeProvider(name, config, clock);
    if (!provider.ok()) return provider.error();
    providers.push_back(std::move(*provider));
  }
  return providers;
}

// The PostgreSQL server to use, with its password read from where the configuration says.
Result<PgSettings> PostgresSettings(const Config& config) {
  PgSettings settings{config.database, ""};
  if (config.database_password_file.empty() && config.database_password_env.empty()) {
    return settings;
  }
  Result<std::string> password =
      ReadSecret(config.database_password_file, config.database_password_env);
  if (!password.ok()) {
    Error error = password.error();
    error.field =
        config.database_password_file.empty() ? "database_password_env" : "database_password_file";
    return error;
  }
  settings.password = std::move(*password);
  return settings;
}

// The store `database` names: a SQLite file, or a PostgreSQL database by URI.
Result<std::unique_ptr<Store>> OpenStore(const Config& config) {
  if (IsPostgresDatabase(config.database)) {
    Result<PgSettings> settings = PostgresSettings(config);
    if (!settings.ok()) return settings.error();
    Result<std::unique_ptr<PostgresStore>> store =
        PostgresStore::Open(*settings, config.database_pool_size);
    if (!store.ok()) return store.error();
    return std::unique_ptr<Store>(std::move(*store));
  }
  Result<std::unique_ptr<SqliteStore>> store =
      SqliteStore::Open(config.database, config.database_max_size_bytes);
  if (!store.ok()) return store.error();
  return std::unique_ptr<Store>(std::move(*store));
}

// Everything serve refuses to start on after the configuration parsed, each as "ORIGIN:
// KEY: what": the key file, the files serve must create or write, the providers' secrets.
// check-config reports the same list, so the two commands always agree.
std::vector<std::string> StartupProblems(const Config& config) {
  std::vector<std::string> problems;
  if (config.key_file.empty()) {
    // Every sidecar sharing the database must hash and seal codes with the same key.
    problems.push_back(config.Problem("key_file",
                                      "must be set when database is a PostgreSQL URI: every "
                                      "sidecar that shares the database needs a copy of the "
                                      "same key file"));
  } else {
    CheckKeyFile(config, problems);
  }
  if (IsPostgresDatabase(config.database)) {
    Result<PgSettings> settings = PostgresSettings(config);
    if (!settings.ok()) {
      problems.push_back(config.Problem(settings.error().field, settings.error().message));
    }
  } else {
    CheckWritable(config, "database", config.database, problems);
    CheckDatabaseSize(config, problems);
  }
  if (!config.log_file.empty()) CheckWritable(config, "log_file", config.log_file, problems);
  for (const std::string& name : config.sms_providers) {
    if (name == "file") CheckWritable(config, "sms.file.path", config.sms_file_path, problems);
  }

  SystemClock clock;
  Result<std::vector<std::unique_ptr<SmsProvider>>> providers = MakeProviders(config, clock);
  if (!providers.ok()) {
    problems.push_back(config.Problem(providers.error().field, providers.error().message));
  }

  for (const std::string& problem : ListenProblems(config))
    problems.push_back(problem);
  return problems;
}

void WarnAboutConsole(const Config& config) {
  for (const std::string& name : config.sms_providers) {
    if (name != "console") continue;
    Log(LogLevel::kWarn, "main",
        "the console provider prints each message, code included, on stdout; use it only in "
        "development");
  }
}

// Ready when the database takes a write and every delivery thread shows life; the same
// check feeds GET /readyz and the systemd watchdog.
Status CheckReadiness(Store& store, const DeliveryWorker& worker) {
  Status writable = store.ProbeWritable(kReadinessProbeMs);
  if (!writable.ok()) {
    bool full = writable.error().code == "storage_full";
    return MakeError(full ? "database_full" : "database_unavailable",
                     "database: " + writable.error().message);
  }
  if (!worker.alive()) {
    return MakeError("delivery_worker_stalled",
                     "a delivery thread has shown no sign of life for too long");
  }
  return OkStatus();
}

DeliverySettings MakeDeliverySettings(const Config& config) {
  DeliverySettings settings;
  settings.message = MessageSettingsOf(config, config.code_ttl_ms);
  settings.max_attempts = config.delivery_max_attempts;
  settings.workers = config.delivery_workers;
  settings.max_in_flight = config.delivery_max_in_flight;
  settings.resend_on_unknown = config.delivery_resend_on_unknown;
  settings.lease_ms = config.delivery_lease_ms;
  // A provider call may take its connect timeout plus a request timeout for each of
  // sending and reading; a thread quiet for longer than that (and a margin) is stuck.
  settings.stall_after_ms =
      config.delivery_connect_timeout_ms + 2 * config.delivery_request_timeout_ms + kStallMarginMs;
  return settings;
}

// One server per listening socket, all sharing the Api; each serves on its own thread.
// When one fails to accept, all stop, so the service manager sees the process end.
class Servers {
 public:
  Servers(ListenerSet& listeners, Api& api, const CallerAuth& auth, const ServerSettings& settings,
          Metrics& metrics) {
    for (std::size_t i = 0; i < listeners.listeners().size(); ++i) {
      Listener listener = listeners.listeners()[i];
      listener.fd = listeners.TakeFd(i);
      servers_.push_back(std::make_unique<HttpServer>(api, auth, settings, listener, metrics));
    }
  }

  void StopAll() {
    for (auto& server : servers_)
      server->Stop();
  }

  // Serves until StopAll(); false when a server stopped because accepting failed.
  bool ServeAll() {
    std::atomic<bool> all_ok{true};
    auto serve = [this, &all_ok](HttpServer& server) {
      if (!server.Serve()) {
        int error = errno;
        all_ok = false;
        Log(LogLevel::kError, "http", "accepting connections failed; stopping",
            {{"address", server.address().ToString()}, {"error", std::strerror(error)}});
        StopAll();
      }
    };
    std::vector<std::thread> threads;
    for (std::size_t i = 1; i < servers_.size(); ++i)
      threads.emplace_back([&serve, this, i] { serve(*servers_[i]); });
    serve(*servers_.front());
    for (std::thread& thread : threads)
      thread.join();
    return all_ok;
  }

 private:
  std::vector<std::unique_ptr<HttpServer>> servers_;
};

// Serving other hosts means tokens and codes cross a network in clear HTTP.
void WarnAboutRemote(const ListenerSet& listeners) {
  for (const Listener& listener : listeners.listeners()) {
    const ListenAddress& address = listener.address;
    if (address.is_unix() || IsLoopbackHost(address.host)) continue;
    Log(LogLevel::kWarn, "main",
        "serving a non-loopback address over plain HTTP; put TLS in front of it",
        {{"address", address.ToString()}});
  }
}

}  // namespace

int RunServe(const Config& config) {
  SignalWatcher::BlockSignals();
  if (sodium_init() < 0) return Fail("libsodium failed to initialise", MakeError("crypto", ""));
  SetLogLevel(config.log_level);

  // A provider that can never write would retry every code until it expires; refuse now,
  // with the lines check-config prints.
  std::vector<std::string> problems = StartupProblems(config);
  if (!problems.empty()) {
    std::string lines;
    for (const std::string& problem : problems)
      lines += "error: " + problem + "\n";
    std::fprintf(stderr, "otp-sidecar: cannot start:\n%s", lines.c_str());
    Log(LogLevel::kError, "main", "cannot start", {{"code", "invalid_config"}});
    return 2;
  }
  if (!config.log_file.empty()) {
    Status redirected = RedirectStderrTo(config.log_file);
    if (!redirected.ok()) return Fail("cannot start", redirected.error());
  }

  Result<CallerAuth> auth = MakeCallerAuth(config.auth);
  if (!auth.ok()) return Fail("cannot read the caller tokens", auth.error());

  KeyFileLocation key_file = LocateKeyFile(config.key_file);
  // Sidecars sharing a PostgreSQL database must share one key: a new one made on one host
  // would deny every code the others made. The key is copied there, never created.
  bool create_key = !key_file.credential && !IsPostgresDatabase(config.database);
  Result<MasterKey> master = LoadOrCreateKeyFile(key_file.path, create_key);
  if (!master.ok()) return Fail("cannot load the key", master.error());
  CodeKeys keys(*master);
  sodium_memzero(master->data(), master->size());

  Result<std::unique_ptr<Store>> store = OpenStore(config);
  if (!store.ok()) return FailToOpen("cannot open the database", store.error());

  SystemClock clock;
  SodiumRandom random;
  Result<std::vector<std::unique_ptr<SmsProvider>>> providers = MakeProviders(config, clock);
  if (!providers.ok()) return Fail("cannot set up the SMS providers", providers.error());
  WarnAboutConsole(config);
  SidecarMetrics metrics(**store, KnownLabels{config.sms_providers, ApiRoutes()},
                         OTP_SIDECAR_VERSION, clock.Now());

  DeliveryWorker worker(**store, keys, clock, random, std::move(*providers),
                        MakeDeliverySettings(config), metrics);

  ChallengeSettings challenge_settings{config.code_length, config.code_ttl_ms, config.max_attempts,
                                       config.sms_providers.front()};
  Limiter limiter(config.limits);
  PhoneValidator phones(config.phone);
  ChallengeService challenges(
      **store, keys, clock, random, limiter, challenge_settings, [&worker] { worker.Wake(); },
      metrics);
  auto readiness = [&store, &worker] { return CheckReadiness(**store, worker); };
  Api api(challenges, phones, clock, readiness, metrics);

  Result<ListenerSet> listeners = ListenerSet::Open(
      config.listen_addresses,
      ListenOptions{config.socket_group, config.allow_remote, config.auth.enabled()});
  if (!listeners.ok()) return Fail("cannot listen", listeners.error());
  WarnAboutRemote(*listeners);
  std::string addresses = listeners->Describe();
  std::size_t activated = 0;
  for (const Listener& listener : listeners->listeners())
    activated += listener.activated ? 1 : 0;
  Servers servers(*listeners, api, *auth,
                  ServerSettings{config.http_min_threads, config.http_max_threads,
                                 config.http_keep_alive_timeout_ms, config.http_request_timeout_ms},
                  metrics);

  Status started = worker.Start();
  if (!started.ok()) return Fail("cannot start the delivery worker", started.error());

  Retention retention(**store, clock, config.retention);
  std::atomic<std::int64_t> stop_signalled_ms{0};
  bool served = true;
  {
    Housekeeper housekeeper(challenges, retention);
    SignalWatcher signals(
        SignalHandlers{[&](const std::string& name) {
                         Log(LogLevel::kInfo, "main", "stopping", {{"signal", name}});
                         NotifyStopping();
                         stop_signalled_ms.store(SteadyNowMs());
                         // Both at once: deliveries stop being claimed while the HTTP
                         // servers drain.
                         worker.BeginStop();
                         servers.StopAll();
                       },
                       [&] { ReloadOnHangup(config, worker); }});
    Log(LogLevel::kInfo, "main", "listening",
        {{"address", addresses},
         {"activated", activated > 0 ? std::to_string(activated) : ""},
         {"auth", config.auth.enabled() ? "bearer" : "off"},
         {"database", config.database},
         {"key", key_file.credential ? "credential" : "file"},
         {"schema_version", std::to_string((*store)->schema_version())},
         {"providers", JoinNames(config.sms_providers)},
         {"version", OTP_SIDECAR_VERSION}});
    NotifyReady("serving on " + addresses);
    std::unique_ptr<Watchdog> watchdog = Watchdog::ForSystemd(readiness);
    served = servers.ServeAll();
  }
  listeners->Close();  // removes the Unix socket files this process made

  std::int64_t signalled = stop_signalled_ms.load();
  std::int64_t grace = kSendGraceMs - (signalled == 0 ? 0 : SteadyNowMs() - signalled);
  bool finished = worker.StopWithin(grace);
  Status tidied = (*store)->PrepareForExit();
  if (!tidied.ok()) {
    Log(LogLevel::kWarn, "store", "checkpoint failed", {{"error", tidied.error().message}});
  }
  if (!finished) {
    Log(LogLevel::kWarn, "delivery",
        "a send outlived the stop grace; the next start treats it as interrupted");
    Log(LogLevel::kInfo, "main", "stopped");
    // The abandoned send's thread still runs and uses the worker, the providers and the
    // keys: ending the process here, without destructors, is what keeps that safe.
    std::_Exit(0);
  }
  Log(LogLevel::kInfo, "main", "stopped");
  return served ? 0 : 1;
}

// check-config reaches a PostgreSQL server as serve would, so that a wrong URI, database or
// password shows now rather than at the start of serve; it changes nothing there.
void CheckPostgresReachable(const Config& config, std::vector<std::string>& problems) {
  Result<PgSettings> settings = PostgresSettings(config);
  if (!settings.ok()) return;  // reported by StartupProblems
  Result<std::unique_ptr<PgConnection>> connection =
      PgConnection::Connect(*settings, std::chrono::steady_clock::now() + std::chrono::seconds(5));
  if (!connection.ok()) problems.push_back(config.Problem("database", connection.error().message));
}

int RunCheckConfig(const Config& config) {
  if (sodium_init() < 0) return Fail("libsodium failed to initialise", MakeError("crypto", ""));
  KeyFileLocation key_file = LocateKeyFile(config.key_file);
  if (config.key_file.empty()) {
    // Reported with the other problems below.
  } else if (key_file.credential) {
    std::printf("note: key_file is the credential %s\n", key_file.path.c_str());
  } else if (::access(key_file.path.c_str(), F_OK) != 0 && !IsPostgresDatabase(config.database)) {
    std::printf("note: key_file %s does not exist yet; serve will create it\n",
                key_file.path.c_str());
  }

  std::vector<std::string> problems = StartupProblems(config);
  if (IsPostgresDatabase(config.database)) CheckPostgresReachable(config, problems);
  for (const std::string& problem : problems)
    std::printf("error: %s\n", problem.c_str());
  for (const std::string& warning : TemplateWarnings(config)) {
    std::printf("warning: %s\n", warning.c_str());
  }
  std::printf(problems.empty() ? "configuration ok\n" : "configuration has errors\n");
  return problems.empty() ? 0 : 2;
}

int RunMigrate(const Config& config) {
  SetLogLevel(config.log_level);
  Result<std::unique_ptr<Store>> store = OpenStore(config);
  if (!store.ok()) return FailToOpen("cannot migrate the database", store.error());
  std::printf("%s: schema version %d\n", config.database.c_str(), (*store)->schema_version());
  return 0;
}

int RunVersion() {
  const auto& migrations = EmbeddedMigrations();
  std::printf("otp-sidecar %s (schema %d)\n", OTP_SIDECAR_VERSION,
              migrations.empty() ? 0 : migrations.back().version);
  return 0;
}

}  // namespace sidecar
