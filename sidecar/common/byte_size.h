#pragma once

#include <cstdint>
#include <string_view>

#include "common/result.h"

namespace sidecar {

// Parses a size such as "512MiB", "2GB" or "1048576" into bytes: a whole number, then
// nothing (bytes) or one unit: B; kB (or KB), MB, GB, TB in powers of 1000; KiB, MiB, GiB,
// TiB in powers of 1024. Units are case-sensitive and nothing else is allowed around them
// (no spaces, signs or fractions). Zero is a valid size. Errors with "invalid_size".
Result<std::int64_t> ParseByteSize(std::string_view text);

}  // namespace sidecar
