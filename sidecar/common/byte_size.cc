#include "common/byte_size.h"

#include <charconv>
#include <limits>
#include <string>

namespace sidecar {
namespace {

struct SizeUnit {
  const char* name;
  std::int64_t bytes;
};

constexpr std::int64_t kKilo = 1000;
constexpr std::int64_t kKibi = 1024;

// "M" alone is left out on purpose: it means MiB to systemd and MB to others, and a size
// that is off by 5 % is worse than a refused one.
constexpr SizeUnit kUnits[] = {
    {"", 1},
    {"B", 1},
    {"kB", kKilo},
    {"KB", kKilo},
    {"MB", kKilo* kKilo},
    {"GB", kKilo* kKilo* kKilo},
    {"TB", kKilo* kKilo* kKilo* kKilo},
    {"KiB", kKibi},
    {"MiB", kKibi* kKibi},
    {"GiB", kKibi* kKibi* kKibi},
    {"TiB", kKibi* kKibi* kKibi* kKibi},
};

}  // namespace

Result<std::int64_t> ParseByteSize(std::string_view text) {
  auto invalid = [&] {
    return MakeError("invalid_size", "\"" + std::string(text) +
                                         "\" is not a size; use a whole number of bytes, or "
                                         "one and a unit, like \"512MiB\" or \"2GB\"");
  };

  std::int64_t amount = 0;
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  auto [rest, ec] = std::from_chars(begin, end, amount);
  if (ec != std::errc() || rest == begin || amount < 0) return invalid();

  std::string_view unit(rest, static_cast<std::size_t>(end - rest));
  for (const SizeUnit& known : kUnits) {
    if (unit != known.name) continue;
    if (amount > std::numeric_limits<std::int64_t>::max() / known.bytes) return invalid();
    return amount * known.bytes;
  }
  return invalid();
}

}  // namespace sidecar
