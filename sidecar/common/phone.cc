#include "common/phone.h"

namespace sidecar {

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
