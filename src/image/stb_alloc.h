// Allocation cap for stb_image (internal to src/image/).
//
// stb_image sizes some buffers from the data stream, not from the header: a
// PNG's zlib output buffer doubles until the stream ends (up to 4 GiB for a
// 1x1 image whose IDAT is a "zlib bomb"), and an IDAT chunk's declared length
// is allocated before stb notices that the file is shorter. DecodeImage sets
// a cap derived from the (already limit-checked) header size around each stb
// call; stb's allocator (stb_impl.cc) refuses any single allocation above it,
// so stb fails with "outofmem" -> kBadImage instead of exhausting memory.
#pragma once

#include <cstddef>
#include <cstdint>

namespace flawlens {
namespace image_internal {

// Largest single allocation stb needs for a valid w x h image (any format,
// 16-bit PNG, interlacing, JPEG MCU padding and progressive coefficients),
// with generous slack; at least 1 MiB.
inline size_t StbAllocCap(int64_t w, int64_t h) {
  const uint64_t need = 16ull * static_cast<uint64_t>(w + 64) * static_cast<uint64_t>(h + 64);
  return static_cast<size_t>(need < (1ull << 20) ? (1ull << 20) : need);
}

// Sets the cap for the current thread while in scope (no cap otherwise).
class ScopedStbAllocCap {
 public:
  explicit ScopedStbAllocCap(size_t bytes);
  ~ScopedStbAllocCap();
  ScopedStbAllocCap(const ScopedStbAllocCap&) = delete;
  ScopedStbAllocCap& operator=(const ScopedStbAllocCap&) = delete;

 private:
  size_t previous_;
};

void* StbMalloc(size_t bytes);
void* StbRealloc(void* p, size_t bytes);
void StbFree(void* p);

}  // namespace image_internal
}  // namespace flawlens
