#include "phone/phone_validator.h"

#include <phonenumbers/phonenumberutil.h>

#include <algorithm>
#include <array>
#include <set>
#include <utility>

namespace sidecar {
namespace {

using i18n::phonenumbers::PhoneNumber;
using i18n::phonenumbers::PhoneNumberUtil;

constexpr std::size_t kMaxInputBytes = 64;
// E.164 allows at most 15 digits after the '+', country code included.
constexpr std::size_t kMaxE164Digits = 15;

constexpr std::array<std::pair<PhoneNumberUtil::PhoneNumberType, const char*>, 12> kTypeNames = {{
    {PhoneNumberUtil::FIXED_LINE, "fixed_line"},
    {PhoneNumberUtil::MOBILE, "mobile"},
    {PhoneNumberUtil::FIXED_LINE_OR_MOBILE, "fixed_line_or_mobile"},
    {PhoneNumberUtil::TOLL_FREE, "toll_free"},
    {PhoneNumberUtil::PREMIUM_RATE, "premium_rate"},
    {PhoneNumberUtil::SHARED_COST, "shared_cost"},
    {PhoneNumberUtil::VOIP, "voip"},
    {PhoneNumberUtil::PERSONAL_NUMBER, "personal_number"},
    {PhoneNumberUtil::PAGER, "pager"},
    {PhoneNumberUtil::UAN, "uan"},
    {PhoneNumberUtil::VOICEMAIL, "voicemail"},
    {PhoneNumberUtil::UNKNOWN, "unknown"},
}};

std::string TypeName(PhoneNumberUtil::PhoneNumberType type) {
  for (const auto& [value, name] : kTypeNames) {
    if (value == type) return name;
  }
  return "unknown";
}

Error Invalid(const std::string& why) {
  return MakeError("invalid_phone", why, "phone");
}

bool Contains(const std::vector<std::string>& list, const std::string& value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

}  // namespace

PhoneValidator::PhoneValidator(PhoneSettings settings) : settings_(std::move(settings)) {
  if (settings_.allowed_regions.empty()) settings_.allowed_regions = {settings_.default_region};
}

Result<PhoneNumberInfo> PhoneValidator::Parse(std::string_view input) const {
  if (input.size() > kMaxInputBytes) return Invalid("the phone number is too long");
  for (unsigned char c : input) {
    if (c < 0x20 && c != ' ' && c != '\t')
      return Invalid("the phone number holds control characters");
  }

  const PhoneNumberUtil& util = *PhoneNumberUtil::GetInstance();
  PhoneNumber number;
  // GetNumberType answers UNKNOWN exactly when the number is invalid, so it is the validity
  // check too: IsValidNumber would match the number against the same patterns again, and
  // that matching is the bulk of a create's parsing cost.
  PhoneNumberUtil::PhoneNumberType type = PhoneNumberUtil::UNKNOWN;
  if (util.Parse(std::string(input), settings_.default_region, &number) ==
      PhoneNumberUtil::NO_PARSING_ERROR) {
    type = util.GetNumberType(number);
  }
  if (type == PhoneNumberUtil::UNKNOWN) {
    return Invalid("not a valid phone number; use international form, like +12065550100");
  }
  if (number.has_extension()) return Invalid("a phone number with an extension cannot get an SMS");

  PhoneNumberInfo info;
  util.Format(number, PhoneNumberUtil::E164, &info.e164);
  // libphonenumber's metadata lets some national numbers run longer than E.164 allows (German
  // fixed lines of up to 15 digits after "+49"), and formats them as "E.164" all the same. No
  // provider can send to such a number, and the rest of the sidecar takes every number for
  // E.164, so it is refused here like any other invalid number.
  if (info.e164.size() > 1 + kMaxE164Digits) {
    return Invalid("not a valid phone number; an international number has at most 15 digits");
  }
  util.GetRegionCodeForNumber(number, &info.region);
  info.type = TypeName(type);
  return info;
}

Result<PhoneNumberInfo> PhoneValidator::Validate(std::string_view input) const {
  Result<PhoneNumberInfo> parsed = Parse(input);
  if (!parsed.ok()) return parsed;

  const PhoneNumberInfo& info = *parsed;
  if (Contains(settings_.blocked_types, info.type)) {
    return Invalid("numbers of type " + info.type + " do not get SMS codes");
  }
  if (!Contains(settings_.allowed_regions, info.region)) {
    return MakeError("region_not_allowed",
                     "numbers of region " + info.region + " are not served here", "phone");
  }
  return info;
}

bool PhoneValidator::IsKnownRegion(const std::string& region) {
  std::set<std::string> regions;
  PhoneNumberUtil::GetInstance()->GetSupportedRegions(&regions);
  return regions.count(region) != 0;
}

bool PhoneValidator::IsKnownType(const std::string& type) {
  for (const auto& [value, name] : kTypeNames) {
    if (type == name) return true;
  }
  return false;
}

std::vector<std::string> PhoneValidator::KnownTypes() {
  std::vector<std::string> names;
  for (const auto& [value, name] : kTypeNames)
    names.emplace_back(name);
  return names;
}

}  // namespace sidecar
