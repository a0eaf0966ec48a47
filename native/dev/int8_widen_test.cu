// CPU check of linear_int8.cu's widen_int8 (int8 weights to float through the float bits of 2^23 + byte, session 18)
// against static_cast<float>(static_cast<int8_t>(byte)): every byte value in every one of a chunk's 16 positions,
// the others random, bit for bit. Runs on the host (no GPU), where byte_perm is the host emulation of __byte_perm
// with the kernel's selectors; check_ops group int8 checks the device path.
//   nvcc -std=c++17 -Xcompiler=-Wall,-Wextra --Werror=all-warnings -I native/include -I native/src
//     native/dev/int8_widen_test.cu native/src/launch.cu -o target/int8_widen_test
//   target/int8_widen_test          (exit 0 and "PASS" when every value matches)
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>

#include "linear_int8.cu"

int main() {
  std::mt19937 rng(18);
  long long values = 0, wrong = 0;
  for (int pos = 0; pos < 16; ++pos) {
    for (int byte = 0; byte < 256; ++byte) {
      unsigned char bytes[16];
      for (unsigned char& b : bytes) b = static_cast<unsigned char>(rng());
      bytes[pos] = static_cast<unsigned char>(byte);
      uint4 v;
      std::memcpy(&v, bytes, sizeof v);
      float out[16];
      widen_int8(v, out);
      for (int e = 0; e < 16; ++e) {
        ++values;
        const float want = static_cast<float>(static_cast<int8_t>(bytes[e]));
        if (std::memcmp(&out[e], &want, sizeof want) != 0 && wrong++ < 10) {
          std::printf("FAIL byte 0x%02x at position %d: %g, want %g\n", bytes[e], e, out[e], want);
        }
      }
    }
  }
  std::printf("%s: %lld of %lld widened values differ\n", wrong == 0 ? "PASS" : "FAIL", wrong, values);
  return wrong == 0 ? 0 : 1;
}
