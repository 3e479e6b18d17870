#pragma once

#include <string>
#include <string_view>

namespace sidecar {

// Masks an E.164 number for logs and audit rows: the '+', the first four digits and the
// last two stay, the rest become '*' ("+12065550100" -> "+1206*****00"). Numbers too short
// to keep that much show only their '+' and last two digits.
std::string MaskPhone(std::string_view e164);

}  // namespace sidecar
