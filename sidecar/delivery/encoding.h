#pragma once

// How an SMS text will travel: GSM-7 (7-bit, with an extension table whose characters
// take two septets) when every character fits, else UCS-2. The counts are of the raw
// text, so an operator can see what one message costs before the first is sent.

#include <string>
#include <string_view>

namespace sidecar {

struct MessageEncoding {
  bool gsm7 = true;
  int units = 0;                 // septets for GSM-7, UTF-16 code units for UCS-2
  int segments = 0;              // 1 up to 160 septets / 70 units; then 153 / 67 per segment
  std::string ToString() const;  // "GSM-7, 92 septets, 1 segment"
};

// REQUIRES: `text` is valid UTF-8 (configuration and request text always are). Invalid
// bytes are counted as UCS-2 replacement characters.
MessageEncoding MeasureMessage(std::string_view text);

}  // namespace sidecar
