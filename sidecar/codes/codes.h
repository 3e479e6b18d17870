#pragma once

// Pure code handling: drawing codes, hashing them for storage, sealing them for delivery.
// No I/O happens here; randomness and keys come in as arguments.
//
// A challenge stores two things derived from its code:
//   - a keyed BLAKE2b hash over (challenge id, user, code), compared in constant time;
//   - the code sealed with crypto_secretbox, so the delivery worker can send and re-send
//     it; the store erases the sealed copy as soon as the challenge ends.

#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "codes/random.h"
#include "common/result.h"

namespace sidecar {

inline constexpr std::size_t kMasterKeySize = 32;
inline constexpr int kMinCodeLength = 6;
inline constexpr int kMaxCodeLength = 10;

using Bytes = std::vector<unsigned char>;

// Subkeys derived from the master key with crypto_kdf, one per purpose, so that the hash
// key and the sealing key are never the same bytes.
class CodeKeys {
 public:
  // REQUIRES: master.size() == kMasterKeySize.
  explicit CodeKeys(const std::array<unsigned char, kMasterKeySize>& master);
  ~CodeKeys();
  CodeKeys(const CodeKeys&) = delete;
  CodeKeys& operator=(const CodeKeys&) = delete;

  const unsigned char* hash_key() const { return hash_key_.data(); }
  const unsigned char* seal_key() const { return seal_key_.data(); }

 private:
  std::array<unsigned char, 32> hash_key_{};
  std::array<unsigned char, 32> seal_key_{};
};

// Draws a code of `length` ASCII digits, uniform over the whole range (000000-999999 for
// six), zero-padded. REQUIRES: kMinCodeLength <= length <= kMaxCodeLength.
std::string GenerateCode(int length, RandomSource& random);

// True when `candidate` is exactly `length` ASCII digits and nothing else.
bool IsWellFormedCode(std::string_view candidate, int length);

// Keyed hash over the challenge id, the user and the code. Each part is length-prefixed so
// that ("ab", "c") and ("a", "bc") never collide.
Bytes HashCode(const CodeKeys& keys, std::string_view challenge_id, std::string_view user,
               std::string_view code);

// True when `candidate` hashes to `stored_hash`; the comparison takes the same time
// whatever the bytes. A candidate that is not well-formed never matches.
bool CodeMatches(const CodeKeys& keys, std::string_view challenge_id, std::string_view user,
                 std::string_view candidate, int length, const Bytes& stored_hash);

// Seals `code` with a fresh random nonce: returns nonce || ciphertext.
Bytes SealCode(const CodeKeys& keys, std::string_view code, RandomSource& random);

// Opens a value made by SealCode. Errors with "unseal_failed" when it was tampered with,
// is truncated, or was sealed under another key.
Result<std::string> UnsealCode(const CodeKeys& keys, const Bytes& sealed);

// Random identifier "ch_" followed by 26 base32 characters (130 bits).
std::string GenerateChallengeId(RandomSource& random);

}  // namespace sidecar
