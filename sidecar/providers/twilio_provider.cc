#include "providers/twilio_provider.h"

#include <httplib.h>
#include <sodium.h>

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>
#include <utility>
#include <vector>

#include "common/result.h"
#include "providers/http_call.h"

namespace sidecar {
namespace {

using providers_internal::HttpAnswer;
using providers_internal::ParsedUrl;

constexpr const char* kApiPath = "/2010-04-01/Accounts/";

struct TwilioError {
  std::int64_t code = 0;
  std::string message;
};

bool IsSidText(const std::string& sid) {
  return !sid.empty() && std::all_of(sid.begin(), sid.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0;
  });
}

const std::string& BasicAuthUser(const TwilioSettings& settings) {
  return settings.api_key_sid.empty() ? settings.account_sid : settings.api_key_sid;
}

httplib::Params Form(const TwilioSettings& settings, const SmsMessage& message) {
  httplib::Params form{{"To", message.to}, {"Body", message.body}};
  if (!settings.from.empty()) form.emplace("From", settings.from);
  if (!settings.messaging_service_sid.empty()) {
    form.emplace("MessagingServiceSid", settings.messaging_service_sid);
  }
  if (!settings.status_callback.empty()) form.emplace("StatusCallback", settings.status_callback);
  return form;
}

HttpAnswer Post(const ParsedUrl& url, const TwilioSettings& settings, const std::string& path,
                const httplib::Params& form) {
  providers_internal::ClientSettings client{settings.ca_file, settings.connect_timeout_ms,
                                            settings.request_timeout_ms};
  return providers_internal::CallOnNewConnection(url, client, [&](httplib::ClientImpl& http) {
    http.set_basic_auth(BasicAuthUser(settings), settings.auth_token);
    return http.Post(path, httplib::Headers{}, form);
  });
}

TwilioError ErrorOf(const nlohmann::json& answer) {
  TwilioError error;
  if (!answer.is_object()) return error;
  auto code = answer.find("code");
  if (code != answer.end() && code->is_number_integer()) error.code = code->get<std::int64_t>();
  auto message = answer.find("message");
  if (message != answer.end() && message->is_string()) error.message = message->get<std::string>();
  return error;
}

SendOutcome Accepted(const nlohmann::json& answer, int status) {
  auto sid = answer.is_object() ? answer.find("sid") : answer.end();
  if (sid != answer.end() && sid->is_string() && !sid->get<std::string>().empty()) {
    return SendOutcome::Sent(sid->get<std::string>());
  }
  // Something answered success without saying which message it made: it may have sent it.
  return SendOutcome::Unknown("HTTP " + std::to_string(status) + " without a message sid");
}

SendOutcome RefusedMessage(const TwilioError& error, const std::string& what) {
  switch (error.code) {
    case 21211:
    case 21614:
      return SendOutcome::Permanent("invalid_number");
    case 21610:
      return SendOutcome::Permanent("recipient_opted_out");
    case 21408:
      return SendOutcome::Permanent("region_blocked");
    default:
      return SendOutcome::Permanent(what);
  }
}

SendOutcome AnswerOutcome(const HttpAnswer& answer) {
  nlohmann::json json = nlohmann::json::parse(answer.body, nullptr, /*allow_exceptions=*/false);
  if (answer.status >= 200 && answer.status < 300) return Accepted(json, answer.status);

  TwilioError error = ErrorOf(json);
  std::string what = "HTTP " + std::to_string(answer.status);
  if (error.code != 0) what += ", Twilio error " + std::to_string(error.code);
  if (!error.message.empty()) what += ": " + error.message;

  if (answer.status == 401 || answer.status == 403) return SendOutcome::Permanent(what, true);
  if (answer.status == 429 || error.code == 20429 || answer.status >= 500) {
    return SendOutcome::Retry(what, providers_internal::ParseRetryAfterMs(answer.retry_after));
  }
  if (answer.status >= 400) return RefusedMessage(error, what);
  // 1xx or 3xx: base_url does not lead to the API (a redirect is not followed).
  return SendOutcome::Permanent("unexpected " + what, true);
}

std::string Base64(const std::string& text) {
  std::string out(sodium_base64_ENCODED_LEN(text.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(&out[0], out.size(), reinterpret_cast<const unsigned char*>(text.data()),
                    text.size(), sodium_base64_VARIANT_ORIGINAL);
  out.pop_back();  // the terminating NUL
  return out;
}

// Besides the message, the token, alone or as sent in the Authorization header, should an
// answer quote them back.
std::vector<std::string> Secrets(const TwilioSettings& settings, const SmsMessage& message) {
  std::vector<std::string> secrets = providers_internal::MessageSecrets(message);
  secrets.push_back(settings.auth_token);
  secrets.push_back(Base64(BasicAuthUser(settings) + ":" + settings.auth_token));
  return secrets;
}

}  // namespace

TwilioProvider::TwilioProvider(TwilioSettings settings) : settings_(std::move(settings)) {}

SendOutcome TwilioProvider::Send(const SmsMessage& message) {
  Result<ParsedUrl> url = ParseTwilioBaseUrl(settings_.base_url);
  if (!url.ok()) return SendOutcome::Permanent("base_url " + url.error().message, true);
  if (!IsSidText(settings_.account_sid)) {
    return SendOutcome::Permanent("account_sid must be letters and digits", true);
  }

  std::string path = url->rest + kApiPath + settings_.account_sid + "/Messages.json";
  HttpAnswer answer = Post(*url, settings_, path, Form(settings_, message));

  return providers_internal::OutcomeOfCall(answer, *url, AnswerOutcome,
                                           Secrets(settings_, message));
}

}  // namespace sidecar
