// Phone input: the text of a request's "phone" field through PhoneValidator (libphonenumber
// parsing, E.164 normalisation, type and region checks), with national numbers read in the
// US and in Germany, and MaskPhone, which logs and audit rows apply to stored numbers.
//
// Checks: no crash, leak or undefined behaviour, and
// - an accepted number is E.164, a '+' and at most 15 digits, and it normalises to itself:
//   its E.164 form parses to the same E.164, region and type;
// - Validate accepts only what Parse accepts, with the same result, and refuses only with
//   invalid_phone or region_not_allowed on the field "phone";
// - MaskPhone keeps the length and the last two characters of a number, and of an
//   accepted number it never shows more than the '+', four digits and the last two.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/phone.h"
#include "fuzz_check.h"
#include "phone/phone_validator.h"

namespace {

using namespace sidecar;

void CheckMask(std::string_view number, bool accepted) {
  std::string masked = MaskPhone(number);
  FUZZ_CHECK(masked.size() == number.size());
  if (number.size() > 3)
    FUZZ_CHECK(masked.substr(masked.size() - 2) == number.substr(number.size() - 2));
  if (!accepted) return;

  std::size_t shown = 0;
  for (char c : masked)
    shown += c != '*';
  FUZZ_CHECK(shown <= 7);
}

void CheckValidator(const PhoneValidator& phones, std::string_view input) {
  Result<PhoneNumberInfo> parsed = phones.Parse(input);
  Result<PhoneNumberInfo> validated = phones.Validate(input);
  if (!parsed.ok()) {
    FUZZ_CHECK(!validated.ok() && validated.error().code == "invalid_phone");
    FUZZ_CHECK(parsed.error().code == "invalid_phone" && parsed.error().field == "phone");
    return;
  }

  const std::string& e164 = parsed->e164;
  FUZZ_CHECK(e164.size() >= 2 && e164.size() <= 16 && e164[0] == '+');
  FUZZ_CHECK(e164.find_first_not_of("0123456789", 1) == std::string::npos);

  Result<PhoneNumberInfo> again = phones.Parse(e164);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(again->e164 == e164 && again->region == parsed->region && again->type == parsed->type);
  CheckMask(e164, true);

  if (validated.ok()) {
    FUZZ_CHECK(validated->e164 == parsed->e164 && validated->region == parsed->region);
  } else {
    const Error& error = validated.error();
    FUZZ_CHECK(error.code == "invalid_phone" || error.code == "region_not_allowed");
    FUZZ_CHECK(error.field == "phone");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const PhoneValidator us(PhoneSettings{});
  static const PhoneValidator de(PhoneSettings{"DE", {"DE", "AT", "CH", "US"}, {"premium_rate"}});
  std::string_view input(reinterpret_cast<const char*>(data), size);

  CheckValidator(us, input);
  CheckValidator(de, input);
  CheckMask(input, false);
  return 0;
}
