#include "common/phone.h"

namespace sidecar {

Result<std::string> NormalizeE164(std::string_view input) {
  auto invalid = [] {
    return MakeError("invalid_phone",
                     "phone must be an international number in E.164 form, like +12065550100",
                     "phone");
  };
  if (input.size() > 32) return invalid();

  std::string digits;
  bool plus = false;
  for (char c : input) {
    if (c == ' ' || c == '-' || c == '.' || c == '(' || c == ')') continue;
    if (c == '+' && !plus && digits.empty()) {
      plus = true;
    } else if (c >= '0' && c <= '9') {
      digits += c;
    } else {
      return invalid();
    }
  }

  if (!plus || digits.size() < 7 || digits.size() > 15 || digits[0] == '0') return invalid();
  return "+" + digits;
}

std::string MaskPhone(std::string_view e164) {
  constexpr std::size_t kKeepFront = 5;  // '+' and four digits
  constexpr std::size_t kKeepBack = 2;
  std::string masked(e164);
  if (masked.size() <= kKeepBack + 1) return std::string(masked.size(), '*');

  std::size_t front = masked.size() >= kKeepFront + kKeepBack + 3 ? kKeepFront : 1;
  for (std::size_t i = front; i + kKeepBack < masked.size(); ++i)
    masked[i] = '*';
  return masked;
}

}  // namespace sidecar
