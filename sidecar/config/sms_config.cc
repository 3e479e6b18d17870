#include "config/sms_config.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <set>

#include "common/url.h"
#include "delivery/message.h"

namespace sidecar::config_internal {
namespace {

const std::set<std::string> kProviderNames = {"console", "file", "twilio", "webhook"};

bool IsLocaleKey(const std::string& tag) {
  // A language (2-3 letters), optionally "-" and a region or script (1-8 letters or digits).
  std::size_t dash = tag.find('-');
  std::string language = tag.substr(0, dash);
  if (language.size() < 2 || language.size() > 3) return false;
  for (char c : language) {
    if (c < 'a' || c > 'z') return false;
  }
  if (dash == std::string::npos) return true;
  std::string rest = tag.substr(dash + 1);
  if (rest.empty() || rest.size() > 8) return false;
  for (char c : rest) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) return false;
  }
  return true;
}

std::string Lower(std::string text) {
  for (char& c : text)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (char& c : text) {
    if (c == '_') c = '-';
  }
  return text;
}

void ReadTemplates(const toml::table& table, Config& config, Problems& problems) {
  for (const auto& [key, node] : table) {
    std::string name = "sms.templates." + std::string(key.str());
    problems.Seen(name, node.source());
    if (!node.is_string()) {
      problems.Add(node.source(), name, "must be a string");
      continue;
    }
    std::string locale = Lower(std::string(key.str()));
    if (!IsLocaleKey(locale)) {
      problems.Add(key.source(), name, "is not a language tag like \"en\" or \"pt-BR\"");
      continue;
    }
    // "pt-BR", "pt-br" and "pt_BR" are one language: two of them would silently shadow one.
    if (config.sms_templates.count(locale) != 0) {
      problems.Add(key.source(), name, "names the same language as another key (" + locale + ")");
      continue;
    }
    config.sms_templates[locale] = node.as_string()->get();
    problems.Seen("sms.templates." + locale, node.source());
  }
}

void ReadTwilio(const toml::table& table, TwilioConfig& twilio, Problems& problems) {
  TableReader reader(table, "sms.twilio", problems);
  reader.String("account_sid", &twilio.account_sid);
  reader.String("api_key_sid", &twilio.api_key_sid);
  reader.String("auth_token_file", &twilio.auth_token_file);
  reader.String("auth_token_env", &twilio.auth_token_env);
  reader.String("from", &twilio.from);
  reader.String("messaging_service_sid", &twilio.messaging_service_sid);
  reader.String("status_callback", &twilio.status_callback);
  reader.String("base_url", &twilio.base_url);
  reader.String("ca_file", &twilio.ca_file);
}

void ReadWebhook(const toml::table& table, WebhookConfig& webhook, Problems& problems) {
  TableReader reader(table, "sms.webhook", problems);
  reader.String("url", &webhook.url);
  reader.String("secret_file", &webhook.secret_file);
  reader.String("secret_env", &webhook.secret_env);
  reader.String("ca_file", &webhook.ca_file);
}

// A SID is a two-letter prefix and 32 hex digits.
bool IsSid(const std::string& sid, const char* prefix) {
  if (sid.size() != 34 || sid.compare(0, 2, prefix) != 0) return false;
  for (std::size_t i = 2; i < sid.size(); ++i) {
    if (!std::isxdigit(static_cast<unsigned char>(sid[i]))) return false;
  }
  return true;
}

// A CA file that cannot be read would make every send fail the same way; it is cheaper to
// say so at start than to retry until the codes expire.
void CheckCaFile(const std::string& key, const std::string& path, Problems& problems) {
  if (path.empty()) return;
  if (::access(path.c_str(), R_OK) != 0) problems.AddFor(key, path + " cannot be read");
}

// Checked with the providers' own parsers, so that a URL accepted here is one they can call.
void CheckUrl(const std::string& key, const Result<ParsedUrl>& url, Problems& problems) {
  if (!url.ok()) problems.AddFor(key, url.error().message);
}

// What Twilio takes as a sender: an E.164 number, a short code, or an alphanumeric sender id
// (1-11 letters, digits and spaces, at least one letter).
bool IsTwilioSender(const std::string& from) {
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  auto alnum_or_space = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == ' ';
  };
  bool e164 = from.size() >= 8 && from.size() <= 16 && from[0] == '+' && from[1] != '0' &&
              std::all_of(from.begin() + 1, from.end(), digit);
  bool short_code =
      from.size() >= 3 && from.size() <= 8 && std::all_of(from.begin(), from.end(), digit);
  bool alphanumeric = !from.empty() && from.size() <= 11 && from.front() != ' ' &&
                      from.back() != ' ' && std::all_of(from.begin(), from.end(), alnum_or_space) &&
                      std::any_of(from.begin(), from.end(), [](char c) {
                        return std::isalpha(static_cast<unsigned char>(c));
                      });
  return e164 || short_code || alphanumeric;
}

void CheckSecretSource(const std::string& section, const std::string& file_key,
                       const std::string& file, const std::string& env_key, const std::string& env,
                       Problems& problems) {
  if (file.empty() == env.empty()) {
    problems.AddFor(section + "." + file_key, "set exactly one of " + file_key + " and " + env_key);
  }
}

void CheckTwilio(const TwilioConfig& twilio, Problems& problems) {
  if (!IsSid(twilio.account_sid, "AC")) {
    problems.AddFor("sms.twilio.account_sid", "must be an account SID, \"AC\" and 32 hex digits");
  }
  if (!twilio.api_key_sid.empty() && !IsSid(twilio.api_key_sid, "SK")) {
    problems.AddFor("sms.twilio.api_key_sid", "must be an API key SID, \"SK\" and 32 hex digits");
  }
  CheckSecretSource("sms.twilio", "auth_token_file", twilio.auth_token_file, "auth_token_env",
                    twilio.auth_token_env, problems);
  if (twilio.from.empty() == twilio.messaging_service_sid.empty()) {
    problems.AddFor("sms.twilio.from", "set exactly one of from and messaging_service_sid");
  } else if (!twilio.messaging_service_sid.empty() && !IsSid(twilio.messaging_service_sid, "MG")) {
    problems.AddFor("sms.twilio.messaging_service_sid", "must be \"MG\" and 32 hex digits");
  } else if (!twilio.from.empty() && !IsTwilioSender(twilio.from)) {
    problems.AddFor("sms.twilio.from",
                    "must be an E.164 number (\"+12065550199\"), a short code or an "
                    "alphanumeric sender id of at most 11 characters");
  }
  CheckUrl("sms.twilio.base_url", ParseTwilioBaseUrl(twilio.base_url), problems);
  if (!twilio.status_callback.empty()) {
    CheckUrl("sms.twilio.status_callback", ParseWebhookUrl(twilio.status_callback), problems);
  }
  CheckCaFile("sms.twilio.ca_file", twilio.ca_file, problems);
}

void CheckWebhook(const WebhookConfig& webhook, Problems& problems) {
  CheckUrl("sms.webhook.url", ParseWebhookUrl(webhook.url), problems);
  CheckSecretSource("sms.webhook", "secret_file", webhook.secret_file, "secret_env",
                    webhook.secret_env, problems);
  CheckCaFile("sms.webhook.ca_file", webhook.ca_file, problems);
}

}  // namespace

void ReadSmsTable(const toml::table& table, Config& config, Problems& problems) {
  TableReader sms(table, "sms", problems);
  sms.StringArray("providers", &config.sms_providers);
  sms.String("template", &config.sms_template);
  sms.String("webotp_domain", &config.webotp_domain);

  if (const toml::table* file = sms.Table("file")) {
    TableReader reader(*file, "sms.file", problems);
    reader.String("path", &config.sms_file_path);
  }
  if (const toml::table* templates = sms.Table("templates", KeyKind::kMap)) {
    ReadTemplates(*templates, config, problems);
  }
  if (const toml::table* twilio = sms.Table("twilio")) ReadTwilio(*twilio, config.twilio, problems);
  if (const toml::table* webhook = sms.Table("webhook")) {
    ReadWebhook(*webhook, config.webhook, problems);
  }
}

void CheckSmsValues(Config& config, Problems& problems) {
  if (config.sms_providers.empty()) problems.AddFor("sms.providers", "must name a provider");
  std::set<std::string> seen;
  for (const auto& name : config.sms_providers) {
    if (kProviderNames.count(name) == 0) {
      problems.AddFor("sms.providers", "unknown provider \"" + name +
                                           "\"; known are console, file, twilio and webhook");
    } else if (!seen.insert(name).second) {
      problems.AddFor("sms.providers", "\"" + name + "\" is listed twice");
    }
  }

  // Only the providers in use must be complete; a half-filled [sms.twilio] kept for later is
  // not an error.
  if (seen.count("file") != 0 && config.sms_file_path.empty()) {
    problems.AddFor("sms.file.path", "must not be empty when the file provider is used");
  }
  if (seen.count("twilio") != 0) CheckTwilio(config.twilio, problems);
  if (seen.count("webhook") != 0) CheckWebhook(config.webhook, problems);

  if (Status ok = ValidateTemplate(config.sms_template); !ok.ok()) {
    problems.AddFor("sms.template", ok.error().message);
  }
  for (const auto& [locale, text] : config.sms_templates) {
    if (Status ok = ValidateTemplate(text); !ok.ok()) {
      problems.AddFor("sms.templates." + locale, ok.error().message);
    }
  }
  if (!config.webotp_domain.empty()) {
    if (Status ok = ValidateWebOtpDomain(config.webotp_domain); !ok.ok()) {
      problems.AddFor("sms.webotp_domain", ok.error().message);
    }
  }
}

}  // namespace sidecar::config_internal
