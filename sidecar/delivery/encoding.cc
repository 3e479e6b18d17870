#include "delivery/encoding.h"

#include <algorithm>
#include <array>
#include <cstdint>

namespace sidecar {
namespace {

// The GSM 03.38 default alphabet outside ASCII letters, digits and most punctuation.
constexpr std::array<char32_t, 44> kGsmBasicExtra = {
    U'@', U'£', U'$', U'¥', U'è', U'é', U'ù', U'ì', U'ò', U'Ç', U'\n', U'Ø', U'ø', U'\r', U'Å',
    U'å', U'Δ', U'_', U'Φ', U'Γ', U'Λ', U'Ω', U'Π', U'Ψ', U'Σ', U'Θ',  U'Ξ', U'Æ', U'æ',  U'ß',
    U'É', U'¤', U'¡', U'Ä', U'Ö', U'Ñ', U'Ü', U'§', U'¿', U'ä', U'ö',  U'ñ', U'ü', U'à',
};
constexpr std::array<char32_t, 10> kGsmExtension = {
    U'\f', U'^', U'{', U'}', U'\\', U'[', U'~', U']', U'|', U'€',
};

constexpr int kGsmSingle = 160;
constexpr int kGsmPart = 153;
constexpr int kUcsSingle = 70;
constexpr int kUcsPart = 67;

template <std::size_t N>
bool In(const std::array<char32_t, N>& set, char32_t c) {
  return std::find(set.begin(), set.end(), c) != set.end();
}

// Septets the character takes in GSM-7, or 0 when it has no GSM-7 form.
int GsmSeptets(char32_t c) {
  bool ascii_plain = (c >= U' ' && c <= U'#') || (c >= U'%' && c <= U'?') ||
                     (c >= U'A' && c <= U'Z') || (c >= U'a' && c <= U'z');
  if (ascii_plain || In(kGsmBasicExtra, c)) return 1;
  if (In(kGsmExtension, c)) return 2;
  return 0;
}

// Decodes one UTF-8 character at `pos`, advancing it; U+FFFD for invalid bytes.
char32_t NextCodePoint(std::string_view text, std::size_t& pos) {
  auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  unsigned char lead = byte(pos);
  int extra = -1;
  if (lead < 0x80) {
    extra = 0;
  } else if ((lead >> 5) == 0x6) {
    extra = 1;
  } else if ((lead >> 4) == 0xe) {
    extra = 2;
  } else if ((lead >> 3) == 0x1e) {
    extra = 3;
  }
  if (extra < 0 || pos + static_cast<std::size_t>(extra) >= text.size()) {
    ++pos;
    return U'\uFFFD';
  }

  char32_t c = extra == 0 ? lead : lead & (0x3f >> extra);
  for (int i = 1; i <= extra; ++i) {
    unsigned char next = byte(pos + static_cast<std::size_t>(i));
    if ((next & 0xc0) != 0x80) {
      ++pos;
      return U'\uFFFD';
    }
    c = (c << 6) | (next & 0x3f);
  }
  pos += static_cast<std::size_t>(extra) + 1;
  return c;
}

int Segments(int units, int single, int part) {
  if (units <= single) return 1;
  return (units + part - 1) / part;
}

}  // namespace

std::string MessageEncoding::ToString() const {
  std::string out = gsm7 ? "GSM-7, " : "UCS-2, ";
  out += std::to_string(units) + (gsm7 ? " septets, " : " characters, ");
  out += std::to_string(segments) + (segments == 1 ? " segment" : " segments");
  return out;
}

MessageEncoding MeasureMessage(std::string_view text) {
  int septets = 0;
  int utf16_units = 0;
  bool gsm7 = true;

  std::size_t pos = 0;
  while (pos < text.size()) {
    char32_t c = NextCodePoint(text, pos);
    int in_gsm = GsmSeptets(c);
    gsm7 = gsm7 && in_gsm > 0;
    septets += in_gsm;
    utf16_units += c > 0xFFFF ? 2 : 1;
  }

  MessageEncoding encoding;
  encoding.gsm7 = gsm7;
  encoding.units = gsm7 ? septets : utf16_units;
  encoding.segments =
      gsm7 ? Segments(septets, kGsmSingle, kGsmPart) : Segments(utf16_units, kUcsSingle, kUcsPart);
  return encoding;
}

}  // namespace sidecar
