#include "app/reload.h"

#include "common/log.h"
#include "common/log_file.h"

namespace sidecar {
namespace {

std::string Join(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& name : names)
    out += (out.empty() ? "" : ",") + name;
  return out;
}

bool SameRules(const std::vector<RateRule>& a, const std::vector<RateRule>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].count != b[i].count || a[i].window_ms != b[i].window_ms) return false;
  }
  return true;
}

bool SameLimits(const LimitSettings& a, const LimitSettings& b) {
  return a.resend_cooldown_ms == b.resend_cooldown_ms && SameRules(a.user_sends, b.user_sends) &&
         SameRules(a.phone_sends, b.phone_sends) && SameRules(a.ip_sends, b.ip_sends) &&
         SameRules(a.region_sends, b.region_sends) && SameRules(a.global_sends, b.global_sends) &&
         SameRules(a.user_failures, b.user_failures) && SameRules(a.ip_failures, b.ip_failures) &&
         a.exempt_numbers == b.exempt_numbers && a.pumping.enabled == b.pumping.enabled &&
         a.pumping.floor == b.pumping.floor &&
         a.pumping.min_conversion == b.pumping.min_conversion &&
         a.pumping.cool_off_ms == b.pumping.cool_off_ms;
}

bool SameTwilio(const TwilioConfig& a, const TwilioConfig& b) {
  return a.account_sid == b.account_sid && a.api_key_sid == b.api_key_sid &&
         a.auth_token_file == b.auth_token_file && a.auth_token_env == b.auth_token_env &&
         a.from == b.from && a.messaging_service_sid == b.messaging_service_sid &&
         a.status_callback == b.status_callback && a.base_url == b.base_url &&
         a.ca_file == b.ca_file;
}

bool SameWebhook(const WebhookConfig& a, const WebhookConfig& b) {
  return a.url == b.url && a.secret_file == b.secret_file && a.secret_env == b.secret_env &&
         a.ca_file == b.ca_file;
}

}  // namespace

MessageSettings MessageSettingsOf(const Config& config, std::int64_t ttl_ms) {
  return MessageSettings{config.sms_template, config.app_name, config.webotp_domain, ttl_ms,
                         config.sms_templates};
}

std::vector<std::string> KeysNeedingRestart(const Config& running, const Config& loaded) {
  const Config& a = running;
  const Config& b = loaded;
  std::vector<std::pair<const char*, bool>> keys = {
      {"listen", a.listen == b.listen},
      {"socket_group", a.socket_group == b.socket_group},
      {"allow_remote", a.allow_remote == b.allow_remote},
      {"auth", a.auth.token_files == b.auth.token_files &&
                   a.auth.metrics_require_token == b.auth.metrics_require_token},
      {"database", a.database == b.database},
      {"database_max_size", a.database_max_size_bytes == b.database_max_size_bytes},
      {"database_password", a.database_password_file == b.database_password_file &&
                                a.database_password_env == b.database_password_env},
      {"database_pool_size", a.database_pool_size == b.database_pool_size},
      {"key_file", a.key_file == b.key_file},
      {"log_level", a.log_level == b.log_level},
      {"log_file", a.log_file == b.log_file},
      {"code", a.code_length == b.code_length && a.code_ttl_ms == b.code_ttl_ms &&
                   a.max_attempts == b.max_attempts},
      {"sms.providers", a.sms_providers == b.sms_providers},
      {"sms.file", a.sms_file_path == b.sms_file_path},
      {"sms.twilio", SameTwilio(a.twilio, b.twilio)},
      {"sms.webhook", SameWebhook(a.webhook, b.webhook)},
      {"http", a.http_min_threads == b.http_min_threads &&
                   a.http_max_threads == b.http_max_threads &&
                   a.http_keep_alive_timeout_ms == b.http_keep_alive_timeout_ms &&
                   a.http_request_timeout_ms == b.http_request_timeout_ms},
      {"delivery", a.delivery_max_attempts == b.delivery_max_attempts &&
                       a.delivery_connect_timeout_ms == b.delivery_connect_timeout_ms &&
                       a.delivery_request_timeout_ms == b.delivery_request_timeout_ms &&
                       a.delivery_resend_on_unknown == b.delivery_resend_on_unknown &&
                       a.delivery_workers == b.delivery_workers &&
                       a.delivery_max_in_flight == b.delivery_max_in_flight &&
                       a.delivery_lease_ms == b.delivery_lease_ms},
      {"phone", a.phone.default_region == b.phone.default_region &&
                    a.phone.allowed_regions == b.phone.allowed_regions &&
                    a.phone.blocked_types == b.phone.blocked_types},
      {"limits", SameLimits(a.limits, b.limits)},
      {"retention", a.retention.challenges_ms == b.retention.challenges_ms &&
                        a.retention.audit_ms == b.retention.audit_ms},
  };
  std::vector<std::string> changed;
  for (const auto& [key, same] : keys) {
    if (!same) changed.push_back(key);
  }
  return changed;
}

bool ReloadOnHangup(const Config& running, DeliveryWorker& worker) {
  // The log file first, so that what follows lands in the new one.
  if (!running.log_file.empty()) {
    Status reopened = RedirectStderrTo(running.log_file);
    if (!reopened.ok()) {
      Log(LogLevel::kError, "main", "cannot reopen the log file",
          {{"error", reopened.error().message}});
    }
  }
  Log(LogLevel::kInfo, "main", "SIGHUP received; reloading templates",
      {{"config", running.source.config_file}});

  // The same environment as at start: OTP_SIDECAR_* variables override the file again.
  Result<Config> loaded = LoadConfig(running.source, ProcessEnvironment());
  if (!loaded.ok()) {
    Log(LogLevel::kError, "main", "configuration not reloaded; the templates in use stay",
        {{"error", loaded.error().message}});
    return false;
  }
  worker.SetMessageSettings(MessageSettingsOf(*loaded, running.code_ttl_ms));

  std::vector<std::string> restart = KeysNeedingRestart(running, *loaded);
  Log(LogLevel::kInfo, "main", "templates reloaded",
      {{"templates", std::to_string(loaded->sms_templates.size() + 1)}});
  if (!restart.empty()) {
    Log(LogLevel::kWarn, "main", "changed keys take effect only after a restart",
        {{"keys", Join(restart)}});
  }
  return true;
}

}  // namespace sidecar
