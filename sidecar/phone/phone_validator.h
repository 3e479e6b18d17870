#pragma once

// Phone numbers, parsed and classified with libphonenumber before anything else happens:
// "+1 206 555 0100", "+1-206-555-0100", "(206) 555-0100" (default region US) and
// "+12065550100 " are one number, +12065550100, so they share every limit and every
// message goes to the same place. Numbers that should never get an SMS are refused.

#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace sidecar {

struct PhoneSettings {
  std::string default_region = "US";              // for numbers written without "+"
  std::vector<std::string> allowed_regions = {};  // empty: the default region only
  // libphonenumber number types that are refused, in lower case.
  std::vector<std::string> blocked_types = {"premium_rate", "shared_cost", "uan", "pager",
                                            "unknown"};
};

struct PhoneNumberInfo {
  std::string e164;    // "+12065550100"
  std::string region;  // ISO 3166-1 alpha-2, "US"
  std::string type;    // "mobile", "fixed_line_or_mobile", ...
};

class PhoneValidator {
 public:
  explicit PhoneValidator(PhoneSettings settings);

  // Errors: "invalid_phone" (unparsable, invalid, with an extension, or of a blocked type)
  // and "region_not_allowed" (a valid number of a country not in allowed_regions), both
  // with field "phone". Thread-safe.
  Result<PhoneNumberInfo> Validate(std::string_view input) const;

  // Parses and normalises without the type and region checks. Errors: "invalid_phone".
  Result<PhoneNumberInfo> Parse(std::string_view input) const;

  // For configuration checks.
  static bool IsKnownRegion(const std::string& region);
  static bool IsKnownType(const std::string& type);
  static std::vector<std::string> KnownTypes();

 private:
  PhoneSettings settings_;
};

}  // namespace sidecar
