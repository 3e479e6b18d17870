#include "app/commands.h"

#include <sodium.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "app/housekeeper.h"
#include "app/reload.h"
#include "app/signals.h"
#include "challenges/challenge_service.h"
#include "codes/random.h"
#include "common/log.h"
#include "common/log_file.h"
#include "config/key_file.h"
#include "config/secrets.h"
#include "delivery/delivery_worker.h"
#include "delivery/encoding.h"
#include "http/server.h"
#include "providers/console_provider.h"
#include "providers/file_provider.h"
#include "providers/twilio_provider.h"
#include "providers/webhook_provider.h"
#include "store/migrations.h"
#include "store/sqlite_store.h"

#ifndef OTP_SIDECAR_VERSION
#define OTP_SIDECAR_VERSION "0.0.0"
#endif

namespace sidecar {
namespace {

std::string JoinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& name : names)
    out += (out.empty() ? "" : ",") + name;
  return out;
}

std::string FolderOf(const std::string& path) {
  std::string::size_type slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// A file serve must create or write: it must be writable if it exists, else its folder.
void CheckWritable(const std::string& key, const std::string& path,
                   std::vector<std::string>& problems) {
  if (::access(path.c_str(), F_OK) == 0) {
    if (::access(path.c_str(), W_OK) != 0)
      problems.push_back(key + ": " + path + " is not writable");
    return;
  }
  std::string folder = FolderOf(path);
  if (::access(folder.c_str(), W_OK) != 0) {
    problems.push_back(key + ": cannot create " + path + ": folder " + folder +
                       " does not exist or is not writable");
  }
}

// What serve would find wrong with the files it needs, before it touches any of them.
std::vector<std::string> PathProblems(const Config& config) {
  std::vector<std::string> problems;
  CheckWritable("database", config.database, problems);
  if (!config.log_file.empty()) CheckWritable("log_file", config.log_file, problems);
  if (::access(config.key_file.c_str(), F_OK) != 0) {
    CheckWritable("key_file", config.key_file, problems);
  }
  for (const std::string& name : config.sms_providers) {
    if (name == "file") CheckWritable("sms.file.path", config.sms_file_path, problems);
  }
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

Result<std::unique_ptr<SmsProvider>> MakeTwilio(const Config& config) {
  const TwilioConfig& twilio = config.twilio;
  Result<std::string> token = ReadSecret(twilio.auth_token_file, twilio.auth_token_env);
  if (!token.ok()) return token.error().WithContext("sms.twilio auth token");

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
  if (!secret.ok()) return secret.error().WithContext("sms.webhook secret");

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

void WarnAboutConsole(const Config& config) {
  for (const std::string& name : config.sms_providers) {
    if (name != "console") continue;
    Log(LogLevel::kWarn, "main",
        "the console provider prints each message, code included, on stdout; use it only in "
        "development");
  }
}

}  // namespace

int RunServe(const Config& config) {
  SignalWatcher::BlockSignals();
  if (sodium_init() < 0) return Fail("libsodium failed to initialise", MakeError("crypto", ""));
  SetLogLevel(config.log_level);

  // A provider that can never write would retry every code until it expires; refuse now.
  std::vector<std::string> path_problems = PathProblems(config);
  if (!path_problems.empty()) {
    return Fail("cannot start", MakeError("invalid_config", path_problems.front()));
  }
  if (!config.log_file.empty()) {
    Status redirected = RedirectStderrTo(config.log_file);
    if (!redirected.ok()) return Fail("cannot start", redirected.error());
  }

  Result<MasterKey> master = LoadOrCreateKeyFile(config.key_file, true);
  if (!master.ok()) return Fail("cannot load the key", master.error());
  CodeKeys keys(*master);
  sodium_memzero(master->data(), master->size());

  Result<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(config.database);
  if (!store.ok()) return Fail("cannot open the database", store.error());

  SystemClock clock;
  SodiumRandom random;
  Result<std::vector<std::unique_ptr<SmsProvider>>> providers = MakeProviders(config, clock);
  if (!providers.ok()) return Fail("cannot set up the SMS providers", providers.error());
  WarnAboutConsole(config);

  DeliverySettings delivery_settings;
  delivery_settings.message = MessageSettingsOf(config, config.code_ttl_ms);
  delivery_settings.max_attempts = config.delivery_max_attempts;
  delivery_settings.workers = config.delivery_workers;
  delivery_settings.max_in_flight = config.delivery_max_in_flight;
  delivery_settings.resend_on_unknown = config.delivery_resend_on_unknown;
  DeliveryWorker worker(**store, keys, clock, random, std::move(*providers), delivery_settings);

  ChallengeSettings challenge_settings{config.code_length, config.code_ttl_ms, config.max_attempts,
                                       config.sms_providers.front()};
  Limiter limiter(config.limits);
  PhoneValidator phones(config.phone);
  ChallengeService challenges(**store, keys, clock, random, limiter, challenge_settings,
                              [&worker] { worker.Wake(); });
  Api api(challenges, phones, clock);
  HttpServer server(
      api, ServerSettings{config.listen_address, config.http_min_threads, config.http_max_threads,
                          config.http_keep_alive_timeout_ms, config.http_request_timeout_ms});

  Result<int> port = server.Bind();
  if (!port.ok()) return Fail("cannot listen", port.error());

  Status started = worker.Start();
  if (!started.ok()) return Fail("cannot start the delivery worker", started.error());

  Retention retention(**store, clock, config.retention);
  std::atomic<std::int64_t> stop_signalled_ms{0};
  {
    Housekeeper housekeeper(challenges, retention);
    SignalWatcher signals(
        SignalHandlers{[&](const std::string& name) {
                         Log(LogLevel::kInfo, "main", "stopping", {{"signal", name}});
                         stop_signalled_ms.store(SteadyNowMs());
                         // Both at once: deliveries stop being claimed while the HTTP server
                         // drains.
                         worker.BeginStop();
                         server.Stop();
                       },
                       [&] { ReloadOnHangup(config, worker); }});
    ListenAddress bound{config.listen_address.host, *port};
    Log(LogLevel::kInfo, "main", "listening",
        {{"address", bound.ToString()},
         {"database", config.database},
         {"schema_version", std::to_string((*store)->schema_version())},
         {"providers", JoinNames(config.sms_providers)},
         {"version", OTP_SIDECAR_VERSION}});
    server.Serve();
  }

  std::int64_t signalled = stop_signalled_ms.load();
  std::int64_t grace = kSendGraceMs - (signalled == 0 ? 0 : SteadyNowMs() - signalled);
  bool finished = worker.StopWithin(grace);
  Status checkpointed = (*store)->Checkpoint();
  if (!checkpointed.ok()) {
    Log(LogLevel::kWarn, "store", "checkpoint failed", {{"error", checkpointed.error().message}});
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
  return 0;
}

int RunCheckConfig(const Config& config) {
  bool ok = true;
  auto problem = [&](const std::string& what) {
    std::printf("error: %s\n", what.c_str());
    ok = false;
  };

  if (::access(config.key_file.c_str(), F_OK) == 0) {
    Result<MasterKey> key = LoadOrCreateKeyFile(config.key_file, false);
    if (!key.ok()) problem("key_file: " + key.error().message);
    if (key.ok()) sodium_memzero(key->data(), key->size());
  } else {
    std::printf("note: key_file %s does not exist yet; serve will create it\n",
                config.key_file.c_str());
  }

  for (const std::string& path_problem : PathProblems(config))
    problem(path_problem);

  SystemClock clock;
  Result<std::vector<std::unique_ptr<SmsProvider>>> providers = MakeProviders(config, clock);
  if (!providers.ok()) problem(providers.error().message);

  for (const std::string& warning : TemplateWarnings(config)) {
    std::printf("warning: %s\n", warning.c_str());
  }
  std::printf(ok ? "configuration ok\n" : "configuration has errors\n");
  return ok ? 0 : 2;
}

int RunMigrate(const Config& config) {
  SetLogLevel(config.log_level);
  Result<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(config.database);
  if (!store.ok()) return Fail("cannot migrate the database", store.error());
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
