#pragma once

#include <string>
#include <string_view>

#include "common/result.h"

namespace sidecar {

// Normalises a phone number given in international form to E.164: spaces, dots, hyphens
// and parentheses are dropped, the rest must be '+' followed by 7 to 15 digits, the first
// not 0. Errors with "invalid_phone" otherwise.
Result<std::string> NormalizeE164(std::string_view input);

// Masks an E.164 number for logs and audit rows: the '+', the first four digits and the
// last two stay, the rest become '*' ("+12065550100" -> "+1206*****00"). Numbers too short
// to keep that much show only their '+' and last two digits.
std::string MaskPhone(std::string_view e164);

}  // namespace sidecar
