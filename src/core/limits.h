// Hard limits, checked before any allocation. Documented in model/FORMAT.md
// and docs of the bad-input table; change both together.
#pragma once

#include <cstddef>
#include <cstdint>

namespace flawlens {

// Model file.
inline constexpr uint64_t kMaxModelBytes = 256ull << 20;         // 256 MiB
inline constexpr uint64_t kMaxHeaderBytes = 16ull << 20;         // 16 MiB JSON header
inline constexpr int kMaxTensors = 4096;
inline constexpr int kMaxTensorRank = 4;
inline constexpr int64_t kMaxTensorElements = 64ll << 20;        // 64 Mi floats = 256 MiB
inline constexpr int kMaxNodes = 1024;                           // layer count
inline constexpr int kMaxGraphDepth = 1024;
inline constexpr int kMaxChannels = 8192;
inline constexpr int kMaxKernel = 31;
inline constexpr int kMaxStride = 16;
inline constexpr int kMaxDilation = 16;
inline constexpr int kMaxPad = 64;
inline constexpr int kMaxModelInputSide = 2048;                  // network input H or W
inline constexpr int64_t kMaxActivationElements = 64ll << 20;    // one activation tensor
inline constexpr int64_t kMaxArenaBytes = 1ll << 30;             // all planned buffers

// Images.
inline constexpr int kMaxImageSide = 16384;
inline constexpr int64_t kMaxImagePixels = 64ll << 20;           // 64 Mpx (e.g. 8192x8192)
inline constexpr uint64_t kMaxImageFileBytes = 256ull << 20;

// Overflow-safe size arithmetic. Return false on overflow.
inline bool CheckedMul(int64_t a, int64_t b, int64_t* out) {
  return !__builtin_mul_overflow(a, b, out);
}
inline bool CheckedAdd(int64_t a, int64_t b, int64_t* out) {
  return !__builtin_add_overflow(a, b, out);
}
inline bool CheckedMul(uint64_t a, uint64_t b, uint64_t* out) {
  return !__builtin_mul_overflow(a, b, out);
}
inline bool CheckedAdd(uint64_t a, uint64_t b, uint64_t* out) {
  return !__builtin_add_overflow(a, b, out);
}

}  // namespace flawlens
