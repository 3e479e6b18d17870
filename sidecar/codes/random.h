#pragma once

// Randomness comes in through RandomSource so that tests can fix it. The production
// source is libsodium's CSPRNG.

#include <cstddef>
#include <cstdint>

namespace sidecar {

class RandomSource {
 public:
  virtual ~RandomSource() = default;

  // Returns a uniformly distributed value in [0, upper_bound). REQUIRES: upper_bound > 0.
  // Thread-safe.
  virtual std::uint32_t Uniform(std::uint32_t upper_bound) = 0;

  // Fills `size` bytes at `out` with random bytes. Thread-safe.
  virtual void Fill(unsigned char* out, std::size_t size) = 0;
};

// libsodium's randombytes_uniform / randombytes_buf.
// REQUIRES: sodium_init() succeeded before the first call.
class SodiumRandom final : public RandomSource {
 public:
  std::uint32_t Uniform(std::uint32_t upper_bound) override;
  void Fill(unsigned char* out, std::size_t size) override;
};

}  // namespace sidecar
