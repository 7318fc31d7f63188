// Shared bits of the libFuzzer targets.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#define STBI_NO_STDIO
#include <stb/stb_image.h>  // declarations only (the implementation is in flawlens_core)

namespace flawlens::fuzz {

// Consumes bytes from the front of the input.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : p_(data), n_(size) {}
  template <class T>
  T Take() {
    T v{};
    const size_t k = n_ < sizeof(T) ? n_ : sizeof(T);
    std::memcpy(&v, p_, k);
    p_ += k;
    n_ -= k;
    return v;
  }
  const uint8_t* data() const { return p_; }
  size_t size() const { return n_; }

 private:
  const uint8_t* p_;
  size_t n_;
};

// Models accepted by the loader may still be legitimately expensive (a valid
// 8192-channel conv on 2048x2048): the harness runs inference only below this
// budget so a fuzz iteration stays in milliseconds.
inline constexpr int64_t kMaxFuzzMacs = 20'000'000;

// A valid image may legitimately be large (a 64 KB PNG of zeros can be
// 8192x8192): decoding and preprocessing 64 Mpx under ASan takes seconds and
// reads as a timeout. Harnesses skip images whose header (stbi_info) is
// larger than this; the limit checks themselves run on the header before
// any decoding and are covered by unit tests (Decode.OversizedHeaders...).
inline constexpr int64_t kMaxFuzzPixels = 1 << 20;

// Pixels the image header announces (stb's header parser, the one
// DecodeImage uses), or 0 if stb cannot read a header.
inline int64_t HeaderPixels(const uint8_t* data, size_t size) {
  if (data == nullptr || size == 0 || size > (1u << 30)) return 0;
  int w = 0, h = 0, c = 0;
  if (!stbi_info_from_memory(data, static_cast<int>(size), &w, &h, &c)) return 0;
  const int64_t aw = w < 0 ? -int64_t{w} : w, ah = h < 0 ? -int64_t{h} : h;
  return aw * ah;
}

}  // namespace flawlens::fuzz
