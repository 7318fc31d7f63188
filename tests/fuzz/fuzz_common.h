// Shared bits of the libFuzzer targets.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

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
// reads as a timeout. Harnesses skip images whose header (HeaderPixels) is
// larger than this; the limit checks themselves run on the header before
// any decoding and are covered by unit tests (Decode.OversizedHeaders...).
inline constexpr int64_t kMaxFuzzPixels = 1 << 20;

// Pixels the image header announces, or 0 if unknown. A small parser of
// its own: stb's stbi_info() must not see unchecked bytes (on a JPEG it
// builds Huffman tables, see decode.cc's CheckJpegHuffmanTables; calling it
// here first was a harness bug found by fuzz_image).
inline int64_t HeaderPixels(const uint8_t* b, size_t n) {
  auto be16 = [&](size_t i) { return int64_t{b[i]} << 8 | b[i + 1]; };
  auto be32 = [&](size_t i) { return be16(i) << 16 | be16(i + 2); };
  auto le32 = [&](size_t i) {
    return int64_t{b[i]} | int64_t{b[i + 1]} << 8 | int64_t{b[i + 2]} << 16 |
           int64_t{b[i + 3]} << 24;
  };
  auto mul = [](int64_t w, int64_t h) {  // w, h in [0, 2^32): saturate, never overflow
    return (w > (int64_t{1} << 31) || h > (int64_t{1} << 31)) ? INT64_MAX : w * h;
  };
  if (b == nullptr) return 0;
  if (n >= 24 && b[0] == 0x89 && b[1] == 'P') return mul(be32(16), be32(20));
  if (n >= 26 && b[0] == 'B' && b[1] == 'M') {
    int64_t w = le32(18), h = le32(22);
    if (le32(14) == 12) {
      w = b[18] | b[19] << 8;
      h = b[20] | b[21] << 8;
    }
    w = static_cast<int32_t>(w);
    h = static_cast<int32_t>(h);
    return mul(w < 0 ? -w : w, h < 0 ? -h : h);
  }
  if (n >= 4 && b[0] == 0xFF && b[1] == 0xD8) {  // first SOFn segment
    size_t pos = 2;
    while (pos + 9 < n) {
      while (pos < n && b[pos] != 0xFF) ++pos;
      while (pos < n && b[pos] == 0xFF) ++pos;
      if (pos + 8 >= n) break;
      const int m = b[pos++];
      if (m == 0xD9 || m == 0xDA) break;
      if (m == 0x00 || m == 0x01 || (m >= 0xD0 && m <= 0xD8)) continue;
      if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) {
        return mul(be16(pos + 3), be16(pos + 5));
      }
      pos += static_cast<size_t>(be16(pos));
    }
  }
  return 0;
}

}  // namespace flawlens::fuzz
