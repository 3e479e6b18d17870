#include "http/requests.h"

#include <arpa/inet.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

namespace sidecar {
namespace {

using nlohmann::json;

constexpr std::size_t kMaxLocaleBytes = 35;
constexpr std::size_t kMaxCodeBytes = 64;

Result<json> ParseObject(const std::string& body) {
  if (body.size() > kMaxBodyBytes) {
    return MakeError("payload_too_large", "the body is larger than 16 KiB");
  }
  if (body.find_first_not_of(" \t\r\n") == std::string::npos) {
    return MakeError("invalid_json", "the body is empty; send a JSON object");
  }

  // JSON lets a key repeat and the parser keeps the last one; a body that names two users
  // would then be checked against whichever came last. Repeats are refused instead.
  std::set<std::string> fields;
  std::string repeated;
  json::parser_callback_t watch = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::key && depth == 1 && repeated.empty() &&
        !fields.insert(parsed.get<std::string>()).second) {
      repeated = parsed.get<std::string>();
    }
    return true;
  };
  json value = json::parse(body, watch, /*allow_exceptions=*/false);

  if (value.is_discarded()) return MakeError("invalid_json", "the body is not valid JSON");
  if (!value.is_object()) return MakeError("invalid_body", "the body must be a JSON object");
  if (!repeated.empty()) {
    std::string field = repeated.size() > 64 ? repeated.substr(0, 64) : repeated;
    return MakeError("duplicate_field", "\"" + field + "\" is given more than once", field);
  }
  return value;
}

Status RefuseUnknown(const json& object, const std::set<std::string>& known) {
  for (const auto& [key, value] : object.items()) {
    if (known.count(key) == 0) {
      return MakeError("unknown_field", "\"" + key + "\" is not a field of this request",
                       key.size() > 64 ? key.substr(0, 64) : key);
    }
  }
  return OkStatus();
}

bool HasControlCharacters(const std::string& text) {
  for (unsigned char c : text) {
    if (c < 0x20 || c == 0x7f) return true;
  }
  return false;
}

Result<std::string> RequiredString(const json& object, const char* field, std::size_t max_bytes) {
  auto it = object.find(field);
  if (it == object.end()) {
    return MakeError("missing_field", std::string("\"") + field + "\" is required", field);
  }
  if (!it->is_string()) {
    return MakeError("invalid_field", std::string("\"") + field + "\" must be a string", field);
  }
  const std::string& value = it->get_ref<const std::string&>();
  if (value.empty()) {
    return MakeError("missing_field", std::string("\"") + field + "\" must not be empty", field);
  }
  if (value.size() > max_bytes) {
    return MakeError(
        "invalid_field",
        std::string("\"") + field + "\" is longer than " + std::to_string(max_bytes) + " bytes",
        field);
  }
  return value;
}

// Returns "" for an absent or null field.
Result<std::string> OptionalString(const json& object, const char* field, std::size_t max_bytes) {
  auto it = object.find(field);
  if (it == object.end() || it->is_null()) return std::string();
  return RequiredString(object, field, max_bytes);
}

Result<std::string> ParseUser(const json& object) {
  Result<std::string> user = RequiredString(object, "user", kMaxUserBytes);
  if (!user.ok()) return user;

  // "alice" and "alice " must never be two users with two budgets.
  const std::string& value = *user;
  if (HasControlCharacters(value) || value.front() == ' ' || value.back() == ' ') {
    return MakeError("invalid_field",
                     "\"user\" must not hold control characters or begin or end with a space",
                     "user");
  }
  return user;
}

Result<std::string> ParseClientIp(const json& object) {
  Result<std::string> text = OptionalString(object, "client_ip", 64);
  if (!text.ok() || text->empty()) return text;

  // Stored in canonical form so that one address has one spelling for the per-IP limits:
  // "::FFFF:1.2.3.4" and "::ffff:102:304" are both "1.2.3.4". A NUL would end the text early
  // for inet_pton, so "1.2.3.4\u0000x" is refused rather than read as "1.2.3.4".
  unsigned char address[16];
  char canonical[INET6_ADDRSTRLEN];
  bool has_nul = text->find('\0') != std::string::npos;
  if (!has_nul && inet_pton(AF_INET, text->c_str(), address) == 1) {
    inet_ntop(AF_INET, address, canonical, sizeof canonical);
    return std::string(canonical);
  }
  if (!has_nul && inet_pton(AF_INET6, text->c_str(), address) == 1) {
    static const unsigned char kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    bool mapped = std::equal(kMappedPrefix, kMappedPrefix + 12, address);
    if (mapped) {
      inet_ntop(AF_INET, address + 12, canonical, sizeof canonical);
    } else {
      inet_ntop(AF_INET6, address, canonical, sizeof canonical);
    }
    return std::string(canonical);
  }
  return MakeError("invalid_field", "\"client_ip\" must be an IPv4 or IPv6 address", "client_ip");
}

// A BCP 47-like tag: 2-3 letters, then subtags of 1-8 letters or digits.
bool IsLocaleTag(const std::string& tag) {
  std::size_t start = 0;
  bool first = true;
  while (start <= tag.size()) {
    std::size_t end = tag.find_first_of("-_", start);
    if (end == std::string::npos) end = tag.size();
    std::size_t length = end - start;
    if (first ? (length < 2 || length > 3) : (length < 1 || length > 8)) return false;
    for (std::size_t i = start; i < end; ++i) {
      char c = tag[i];
      bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
      bool digit = c >= '0' && c <= '9';
      if (!(letter || (digit && !first))) return false;
    }
    if (end == tag.size()) return true;
    start = end + 1;
    first = false;
  }
  return false;
}

Result<std::string> ParseLocale(const json& object) {
  Result<std::string> locale = OptionalString(object, "locale", kMaxLocaleBytes);
  if (!locale.ok() || locale->empty()) return locale;
  if (!IsLocaleTag(*locale)) {
    return MakeError("invalid_field", "\"locale\" must be a language tag like \"en\" or \"pt-BR\"",
                     "locale");
  }
  return locale;
}

Result<CodeAttempt> ParseCode(const json& object) {
  auto it = object.find("code");
  if (it == object.end()) return MakeError("missing_field", "\"code\" is required", "code");

  if (it->is_number()) return CodeAttempt{"", false};
  if (!it->is_string()) {
    return MakeError("invalid_field", "\"code\" must be a string of digits", "code");
  }
  const std::string& text = it->get_ref<const std::string&>();
  // An empty code is a field left blank, not a guess: refused like a missing one, at no cost.
  if (text.empty()) return MakeError("missing_field", "\"code\" is required", "code");
  // An over-long code cannot match; it is kept short so the audit trail and hashing stay
  // cheap, but it still counts as an attempt.
  if (text.size() > kMaxCodeBytes) return CodeAttempt{"", false};
  return CodeAttempt{text, true};
}

}  // namespace

Result<CreateRequest> ParseCreateRequest(const std::string& body, const PhoneValidator& phones) {
  Result<json> object = ParseObject(body);
  if (!object.ok()) return object.error();
  Status known = RefuseUnknown(*object, {"user", "phone", "client_ip", "locale"});
  if (!known.ok()) return known.error();

  Result<std::string> user = ParseUser(*object);
  if (!user.ok()) return user.error();

  auto phone_field = object->find("phone");
  if (phone_field == object->end() || phone_field->is_null()) {
    return MakeError("invalid_phone", "\"phone\" is required", "phone");
  }
  if (!phone_field->is_string()) {
    return MakeError("invalid_phone", "\"phone\" must be a string", "phone");
  }
  Result<PhoneNumberInfo> phone = phones.Validate(phone_field->get_ref<const std::string&>());
  if (!phone.ok()) return phone.error();

  Result<std::string> client_ip = ParseClientIp(*object);
  if (!client_ip.ok()) return client_ip.error();
  Result<std::string> locale = ParseLocale(*object);
  if (!locale.ok()) return locale.error();

  return CreateRequest{*user, phone->e164, phone->region, *locale, *client_ip};
}

Result<VerifyRequest> ParseVerifyRequest(const std::string& body, bool with_user) {
  Result<json> object = ParseObject(body);
  if (!object.ok()) return object.error();
  std::set<std::string> fields = {"code", "client_ip"};
  if (with_user) fields.insert("user");
  Status known = RefuseUnknown(*object, fields);
  if (!known.ok()) return known.error();

  VerifyRequest request;
  if (with_user) {
    Result<std::string> user = ParseUser(*object);
    if (!user.ok()) return user.error();
    request.user = *user;
  }
  Result<CodeAttempt> attempt = ParseCode(*object);
  if (!attempt.ok()) return attempt.error();
  request.attempt = *attempt;

  Result<std::string> client_ip = ParseClientIp(*object);
  if (!client_ip.ok()) return client_ip.error();
  request.client_ip = *client_ip;
  return request;
}

Result<std::string> ParseOptionalClientIp(const std::string& body) {
  if (body.find_first_not_of(" \t\r\n") == std::string::npos) return std::string();
  Result<json> object = ParseObject(body);
  if (!object.ok()) return object.error();
  Status known = RefuseUnknown(*object, {"client_ip"});
  if (!known.ok()) return known.error();
  return ParseClientIp(*object);
}

}  // namespace sidecar
