#include "codes/codes.h"

#include <sodium.h>

#include <cstdint>

namespace sidecar {
namespace {

// crypto_kdf contexts are exactly 8 bytes.
constexpr char kKdfContext[crypto_kdf_CONTEXTBYTES + 1] = "otpsidec";
constexpr std::uint64_t kHashSubkeyId = 1;
constexpr std::uint64_t kSealSubkeyId = 2;

// randombytes_uniform takes a 32-bit bound, so longer codes are drawn in chunks of at
// most nine digits; each chunk is uniform over its range, so the whole code is too.
constexpr int kDigitsPerChunk = 9;

void AppendLengthPrefixed(crypto_generichash_state& state, std::string_view part) {
  unsigned char length[4];
  auto n = static_cast<std::uint32_t>(part.size());
  for (int i = 0; i < 4; ++i)
    length[i] = static_cast<unsigned char>(n >> (8 * i));
  crypto_generichash_update(&state, length, sizeof length);
  crypto_generichash_update(&state, reinterpret_cast<const unsigned char*>(part.data()),
                            part.size());
}

}  // namespace

CodeKeys::CodeKeys(const std::array<unsigned char, kMasterKeySize>& master) {
  static_assert(kMasterKeySize == crypto_kdf_KEYBYTES);
  crypto_kdf_derive_from_key(hash_key_.data(), hash_key_.size(), kHashSubkeyId, kKdfContext,
                             master.data());
  crypto_kdf_derive_from_key(seal_key_.data(), seal_key_.size(), kSealSubkeyId, kKdfContext,
                             master.data());
}

CodeKeys::~CodeKeys() {
  sodium_memzero(hash_key_.data(), hash_key_.size());
  sodium_memzero(seal_key_.data(), seal_key_.size());
}

std::string GenerateCode(int length, RandomSource& random) {
  std::string code;
  code.reserve(static_cast<std::size_t>(length));

  int remaining = length;
  while (remaining > 0) {
    int digits = remaining < kDigitsPerChunk ? remaining : kDigitsPerChunk;
    std::uint32_t bound = 1;
    for (int i = 0; i < digits; ++i)
      bound *= 10;

    std::uint32_t value = random.Uniform(bound);
    std::string chunk(static_cast<std::size_t>(digits), '0');
    for (int i = digits - 1; i >= 0; --i) {
      chunk[static_cast<std::size_t>(i)] = static_cast<char>('0' + value % 10);
      value /= 10;
    }
    code += chunk;
    remaining -= digits;
  }
  return code;
}

bool IsWellFormedCode(std::string_view candidate, int length) {
  if (candidate.size() != static_cast<std::size_t>(length)) return false;
  for (char c : candidate) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

Bytes HashCode(const CodeKeys& keys, std::string_view challenge_id, std::string_view user,
               std::string_view code) {
  crypto_generichash_state state;
  crypto_generichash_init(&state, keys.hash_key(), 32, crypto_generichash_BYTES);
  AppendLengthPrefixed(state, challenge_id);
  AppendLengthPrefixed(state, user);
  AppendLengthPrefixed(state, code);

  Bytes out(crypto_generichash_BYTES);
  crypto_generichash_final(&state, out.data(), out.size());
  return out;
}

bool CodeMatches(const CodeKeys& keys, std::string_view challenge_id, std::string_view user,
                 std::string_view candidate, int length, const Bytes& stored_hash) {
  // The hash is computed even for malformed input so that a caller cannot tell the two
  // cases apart by timing.
  bool well_formed = IsWellFormedCode(candidate, length);
  Bytes computed = HashCode(keys, challenge_id, user, candidate);
  if (stored_hash.size() != computed.size()) return false;

  bool equal = sodium_memcmp(computed.data(), stored_hash.data(), computed.size()) == 0;
  return equal && well_formed;
}

Bytes SealCode(const CodeKeys& keys, std::string_view code, RandomSource& random) {
  Bytes sealed(crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + code.size());
  random.Fill(sealed.data(), crypto_secretbox_NONCEBYTES);
  crypto_secretbox_easy(sealed.data() + crypto_secretbox_NONCEBYTES,
                        reinterpret_cast<const unsigned char*>(code.data()), code.size(),
                        sealed.data(), keys.seal_key());
  return sealed;
}

Result<std::string> UnsealCode(const CodeKeys& keys, const Bytes& sealed) {
  constexpr std::size_t kOverhead = crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES;
  if (sealed.size() < kOverhead) {
    return MakeError("unseal_failed", "sealed code is truncated");
  }

  std::string code(sealed.size() - kOverhead, '\0');
  int rc = crypto_secretbox_open_easy(
      reinterpret_cast<unsigned char*>(code.data()), sealed.data() + crypto_secretbox_NONCEBYTES,
      sealed.size() - crypto_secretbox_NONCEBYTES, sealed.data(), keys.seal_key());
  if (rc != 0) {
    return MakeError("unseal_failed", "sealed code does not open with this key");
  }
  return code;
}

std::string GenerateChallengeId(RandomSource& random) {
  static const char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
  std::string id = "ch_";
  for (int i = 0; i < 26; ++i)
    id += kAlphabet[random.Uniform(32)];
  return id;
}

}  // namespace sidecar
