#include "codes/random.h"

#include <sodium.h>

namespace sidecar {

std::uint32_t SodiumRandom::Uniform(std::uint32_t upper_bound) {
  return randombytes_uniform(upper_bound);
}

void SodiumRandom::Fill(unsigned char* out, std::size_t size) {
  randombytes_buf(out, size);
}

}  // namespace sidecar
