// Tests of DecodeImage: formats and channel layouts round-trip, corrupt and
// truncated files fail cleanly, oversized headers are rejected up front, and
// the real photos in the shared data folder (../shared/data next to the
// repository, or $FLAWLENS_DATA) decode.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "core/limits.h"
#include "image/preprocess.h"

// stb_image_write makes the test files. Its JPEG writer left-shifts a
// negative int (stbiw__jpg_writeBits: `bitBuf <<= 8`), which UBSan (built with
// -fno-sanitize-recover in FLAWLENS_SANITIZE builds) turns into an abort. That
// is the test's file *writer*, not the decoder under test, so its internal
// (all `static`) functions get no_sanitize("undefined"), by giving the
// keyword a temporary meaning around the include. The libc headers it needs
// are included first so their include guards keep them out of the macro.
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
#define STBIW_ASSERT(x) ((void)0)
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wattributes"
#endif
#if defined(__clang__)
#pragma clang attribute push(__attribute__((no_sanitize("undefined"))), apply_to = function)
#include <stb/stb_image_write.h>
#pragma clang attribute pop
#else  // GCC has no attribute pragma; its attributes are ignored on variables
#define static static __attribute__((no_sanitize("undefined")))
#include <stb/stb_image_write.h>
#undef static
#endif
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

namespace flawlens {
namespace {

using Bytes = std::vector<uint8_t>;

void Append(void* ctx, void* data, int size) {
  auto* v = static_cast<Bytes*>(ctx);
  const auto* p = static_cast<const uint8_t*>(data);
  v->insert(v->end(), p, p + size);
}

std::vector<uint8_t> Pattern(int w, int h, int comp, uint32_t seed) {
  std::vector<uint8_t> px(static_cast<size_t>(w) * h * comp);
  std::mt19937 rng(seed);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < comp; ++c)
        // smooth + a little noise, so JPEG round-trips closely
        px[(static_cast<size_t>(y) * w + x) * comp + c] =
            static_cast<uint8_t>((x * 3 + y * 2 + c * 60) % 200 + rng() % 4);
  return px;
}

Bytes Png(const std::vector<uint8_t>& px, int w, int h, int comp) {
  Bytes out;
  EXPECT_TRUE(stbi_write_png_to_func(Append, &out, w, h, comp, px.data(), w * comp));
  return out;
}
Bytes Jpg(const std::vector<uint8_t>& px, int w, int h, int comp, int q = 95) {
  Bytes out;
  EXPECT_TRUE(stbi_write_jpg_to_func(Append, &out, w, h, comp, px.data(), q));
  return out;
}
Bytes Bmp(const std::vector<uint8_t>& px, int w, int h, int comp) {
  Bytes out;
  EXPECT_TRUE(stbi_write_bmp_to_func(Append, &out, w, h, comp, px.data()));
  return out;
}

Result<Image> Decode(const Bytes& b) { return DecodeImage(b.data(), b.size()); }

PixelFormat Expected(int comp) {
  return comp <= 2 ? PixelFormat::kGray8 : comp == 3 ? PixelFormat::kRGB8 : PixelFormat::kRGBA8;
}

// The decoded pixels in the file's own channel order, alpha dropped for gray+alpha.
std::vector<uint8_t> DropGrayAlpha(const std::vector<uint8_t>& px, int comp) {
  if (comp != 2) return px;
  std::vector<uint8_t> g(px.size() / 2);
  for (size_t i = 0; i < g.size(); ++i) g[i] = px[2 * i];
  return g;
}

TEST(Decode, PngAllChannelLayoutsExact) {
  for (int comp = 1; comp <= 4; ++comp) {
    const int w = 37, h = 23;
    std::vector<uint8_t> px = Pattern(w, h, comp, comp);
    Result<Image> img = Decode(Png(px, w, h, comp));
    ASSERT_TRUE(img.ok()) << img.status().ToString();
    EXPECT_EQ(img->width, w);
    EXPECT_EQ(img->height, h);
    EXPECT_EQ(img->format, Expected(comp)) << "comp " << comp;
    EXPECT_EQ(img->pixels, DropGrayAlpha(px, comp)) << "comp " << comp;
    ImageView v = img->view();
    EXPECT_EQ(v.data, img->pixels.data());
    EXPECT_EQ(v.width, w);
  }
}

TEST(Decode, BmpRgbAndRgba) {
  const int w = 13, h = 9;  // odd width: row padding
  std::vector<uint8_t> rgb = Pattern(w, h, 3, 5);
  Result<Image> img = Decode(Bmp(rgb, w, h, 3));
  ASSERT_TRUE(img.ok()) << img.status().ToString();
  EXPECT_EQ(img->format, PixelFormat::kRGB8);
  EXPECT_EQ(img->pixels, rgb);
  std::vector<uint8_t> rgba = Pattern(w, h, 4, 6);
  img = Decode(Bmp(rgba, w, h, 4));
  ASSERT_TRUE(img.ok()) << img.status().ToString();
  EXPECT_EQ(img->format, PixelFormat::kRGBA8);
  EXPECT_EQ(img->pixels, rgba);
  // Gray in -> stb_image_write expands to 24-bit; decodes as RGB with equal channels.
  std::vector<uint8_t> gray = Pattern(w, h, 1, 7);
  img = Decode(Bmp(gray, w, h, 1));
  ASSERT_TRUE(img.ok()) << img.status().ToString();
  ASSERT_EQ(img->pixels.size(), gray.size() * BytesPerPixel(img->format));
  for (size_t i = 0; i < gray.size(); ++i)
    EXPECT_EQ(img->pixels[i * BytesPerPixel(img->format)], gray[i]);
}

TEST(Decode, JpegRgbClose) {
  // stb_image_write always writes 3-component JPEGs (a gray input becomes
  // YCbCr with flat chroma); real gray JPEGs are covered by RealPhotosDecode.
  for (int comp : {1, 3}) {
    const int w = 64, h = 48;
    std::vector<uint8_t> px = Pattern(w, h, comp, 9);
    Result<Image> img = Decode(Jpg(px, w, h, comp));
    ASSERT_TRUE(img.ok()) << img.status().ToString();
    EXPECT_EQ(img->format, PixelFormat::kRGB8);
    ASSERT_EQ(img->pixels.size(), size_t(w) * h * 3);
    double err = 0;
    for (size_t i = 0; i < size_t(w) * h * 3; ++i) {
      const uint8_t want = comp == 3 ? px[i] : px[i / 3];
      err += std::fabs(double(img->pixels[i]) - want);
    }
    EXPECT_LT(err / (size_t(w) * h * 3), 6.0) << "comp " << comp;  // lossy, close at q=95
  }
}

TEST(Decode, TopDownBmp) {
  // Same pixels stored bottom-up (stb's writer) and top-down (negative height).
  const int w = 6, h = 4;
  std::vector<uint8_t> px = Pattern(w, h, 3, 12);
  Bytes up = Bmp(px, w, h, 3);
  const int row = (w * 3 + 3) / 4 * 4;
  const uint32_t off = up[10] | up[11] << 8 | up[12] << 16 | uint32_t(up[13]) << 24;
  Bytes down(up.begin(), up.begin() + off);
  for (int y = h - 1; y >= 0; --y)
    down.insert(down.end(), up.begin() + off + y * row, up.begin() + off + (y + 1) * row);
  const int32_t neg = -h;
  std::memcpy(&down[22], &neg, 4);  // little-endian host (x86, wasm)
  Result<Image> a = Decode(up), b = Decode(down);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(b->height, h);
  EXPECT_EQ(a->pixels, px);
  EXPECT_EQ(b->pixels, px);
}

TEST(Decode, EmptyNullAndHugeSize) {
  uint8_t b[8] = {0};
  EXPECT_EQ(DecodeImage(nullptr, 10).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(DecodeImage(b, 0).status().code(), ErrorCode::kInvalidArgument);
  // Size is checked before any byte is read.
  EXPECT_EQ(DecodeImage(b, kMaxImageFileBytes + 1).status().code(), ErrorCode::kLimitExceeded);
}

TEST(Decode, CorruptBytesAreBadImage) {
  std::mt19937 rng(3);
  for (int i = 0; i < 50; ++i) {
    Bytes b(1 + rng() % 2000);
    for (auto& x : b) x = rng() % 256;
    Result<Image> r = Decode(b);
    EXPECT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), ErrorCode::kBadImage) << r.status().ToString();
  }
  const char* gif = "GIF89a\x01\x00\x01\x00\x00\x00\x00";
  Result<Image> r = DecodeImage(reinterpret_cast<const uint8_t*>(gif), 13);
  EXPECT_EQ(r.status().code(), ErrorCode::kBadImage);
  EXPECT_NE(r.status().message().find("GIF"), std::string::npos) << r.status().message();

  // A valid PNG whose compressed data is garbled: kBadImage with stb's reason.
  const int w = 40, h = 30;
  Bytes png = Png(Pattern(w, h, 3, 1), w, h, 3);
  for (size_t i = 60; i < png.size() - 20; ++i) png[i] ^= 0x5A;
  r = Decode(png);
  EXPECT_EQ(r.status().code(), ErrorCode::kBadImage) << r.status().ToString();
}

TEST(Decode, RandomBitFlipsNeverCrash) {
  const int w = 31, h = 17;
  std::vector<Bytes> files = {Png(Pattern(w, h, 3, 1), w, h, 3), Png(Pattern(w, h, 2, 1), w, h, 2),
                              Jpg(Pattern(w, h, 3, 2), w, h, 3), Jpg(Pattern(w, h, 1, 2), w, h, 1),
                              Bmp(Pattern(w, h, 3, 4), w, h, 3), Bmp(Pattern(w, h, 4, 4), w, h, 4)};
  std::mt19937 rng(11);
  int ok = 0, bad = 0;
  for (const Bytes& f : files) {
    for (int iter = 0; iter < 150; ++iter) {
      Bytes b = f;
      const int flips = 1 + rng() % 8;
      for (int k = 0; k < flips; ++k) b[rng() % b.size()] ^= static_cast<uint8_t>(1u << (rng() % 8));
      Result<Image> r = Decode(b);
      if (r.ok()) {
        ++ok;
        ASSERT_GT(r->width, 0);
        ASSERT_EQ(r->pixels.size(),
                  size_t(r->width) * r->height * BytesPerPixel(r->format));
      } else {
        ++bad;
        ASSERT_NE(r.status().code(), ErrorCode::kOk);
        ASSERT_FALSE(r.status().message().empty());
      }
    }
  }
  EXPECT_GT(ok + bad, 0);
}

TEST(Decode, TruncatedFiles) {
  const int w = 50, h = 40;
  Bytes png = Png(Pattern(w, h, 3, 1), w, h, 3);
  Bytes bmp = Bmp(Pattern(w, h, 3, 2), w, h, 3);
  Bytes jpg = Jpg(Pattern(w, h, 3, 3), w, h, 3);
  for (const Bytes* f : {&png, &bmp, &jpg}) {
    const size_t n = f->size();
    for (size_t cut : {size_t(1), size_t(2), size_t(8), size_t(16), size_t(30), size_t(60), n / 4,
                       n / 2, n - n / 8, n - 13, n - 1}) {
      if (cut == 0 || cut >= n) continue;
      Bytes t(f->begin(), f->begin() + cut);
      Result<Image> r = Decode(t);
      if (f == &png && cut >= n - 12) {
        // Only (part of) the empty IEND chunk is missing: all pixel data is
        // there and stb does not check CRCs, so this may decode, exactly.
        if (r.ok()) {
          EXPECT_EQ(r->width, w);
        }
        continue;
      }
      if (f == &jpg && cut > n / 3) {
        // stb (like browsers) shows a JPEG whose entropy data ends early with
        // the rest gray; it must not crash and must have the right size.
        if (r.ok()) {
          EXPECT_EQ(r->width, w);
          EXPECT_EQ(r->pixels.size(), size_t(w) * h * 3);
        } else {
          EXPECT_EQ(r.status().code(), ErrorCode::kBadImage);
        }
        continue;
      }
      EXPECT_FALSE(r.ok()) << "cut " << cut << " of " << n;
      EXPECT_EQ(r.status().code(), ErrorCode::kBadImage) << r.status().ToString();
    }
  }
}

TEST(Decode, JpegOverlongHuffmanTableRejected) {
  // stb_image 2.27 overflows its Huffman table when a DHT's code counts sum
  // to more than 256; DecodeImage must refuse such files before stb runs.
  const int w = 24, h = 16;
  Bytes good = Jpg(Pattern(w, h, 3, 21), w, h, 3);
  ASSERT_TRUE(Decode(good).ok());
  size_t dht = 0;
  for (size_t i = 2; i + 1 < good.size(); ++i)
    if (good[i] == 0xFF && good[i + 1] == 0xC4) {
      dht = i;
      break;
    }
  ASSERT_GT(dht, 0u);
  Bytes bad = good;
  for (int k = 0; k < 16; ++k) bad[dht + 5 + k] = 0xFF;  // first table: 16 x 255 codes
  Result<Image> r = Decode(bad);
  EXPECT_EQ(r.status().code(), ErrorCode::kBadImage) << r.status().ToString();
  // The same table hidden after the scan data, just before EOI.
  Bytes late(good.begin(), good.end() - 2);
  const uint8_t seg[] = {0xFF, 0xC4, 0x00, 0x13, 0x00};
  late.insert(late.end(), seg, seg + 5);
  for (int k = 0; k < 16; ++k) late.push_back(0x20);  // 512 codes
  late.push_back(0xFF);
  late.push_back(0xD9);
  r = Decode(late);
  EXPECT_EQ(r.status().code(), ErrorCode::kBadImage) << r.status().ToString();
  // Padding bytes before the bad segment do not hide it.
  Bytes padded(good.begin(), good.begin() + dht);
  padded.insert(padded.end(), {0x00, 0x12, 0x34});
  padded.insert(padded.end(), bad.begin() + dht, bad.end());
  r = Decode(padded);
  EXPECT_EQ(r.status().code(), ErrorCode::kBadImage) << r.status().ToString();
}

// ---- oversized headers ------------------------------------------------------------

void Be32(Bytes* b, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b->push_back(static_cast<uint8_t>(v >> s));
}
void Le32(Bytes* b, uint32_t v) {
  for (int s = 0; s < 32; s += 8) b->push_back(static_cast<uint8_t>(v >> s));
}
void Le16(Bytes* b, uint16_t v) {
  b->push_back(v & 0xFF);
  b->push_back(v >> 8);
}

Bytes PngHeader(uint32_t w, uint32_t h) {
  Bytes b = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  Be32(&b, 13);
  const size_t type_at = b.size();
  b.insert(b.end(), {'I', 'H', 'D', 'R'});
  Be32(&b, w);
  Be32(&b, h);
  b.insert(b.end(), {8, 2, 0, 0, 0});  // 8-bit RGB
  Be32(&b, 0);                         // CRC (stb does not check it)
  (void)type_at;
  // A tiny IDAT + IEND so a decoder that ignored the limit would try to allocate.
  Be32(&b, 0);
  b.insert(b.end(), {'I', 'D', 'A', 'T'});
  Be32(&b, 0);
  Be32(&b, 0);
  b.insert(b.end(), {'I', 'E', 'N', 'D'});
  Be32(&b, 0);
  return b;
}

Bytes BmpHeader(int32_t w, int32_t h) {
  Bytes b = {'B', 'M'};
  Le32(&b, 54);  // file size (lies)
  Le32(&b, 0);
  Le32(&b, 54);  // pixel offset
  Le32(&b, 40);  // BITMAPINFOHEADER
  Le32(&b, static_cast<uint32_t>(w));
  Le32(&b, static_cast<uint32_t>(h));
  Le16(&b, 1);
  Le16(&b, 24);
  Le32(&b, 0);  // BI_RGB
  for (int i = 0; i < 5; ++i) Le32(&b, 0);
  b.resize(b.size() + 64, 0);
  return b;
}

Bytes JpegHeader(uint16_t w, uint16_t h) {
  Bytes b = {0xFF, 0xD8};
  // SOF0, 8-bit, 3 components
  b.insert(b.end(), {0xFF, 0xC0, 0x00, 0x11, 0x08});
  b.push_back(h >> 8);
  b.push_back(h & 0xFF);
  b.push_back(w >> 8);
  b.push_back(w & 0xFF);
  b.insert(b.end(), {0x03, 0x01, 0x11, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01});
  b.insert(b.end(), {0xFF, 0xD9});
  return b;
}

TEST(Decode, OversizedHeadersRejectedBeforeDecoding) {
  struct Case {
    const char* name;
    Bytes bytes;
  };
  const Case cases[] = {
      {"png 50000x50000", PngHeader(50000, 50000)},
      {"png 16384x16385", PngHeader(16384, 16385)},
      {"png 10000x10000 (pixels)", PngHeader(10000, 10000)},
      {"png 2^31-1 wide", PngHeader(0x7FFFFFFF, 1)},
      {"bmp 50000x50000", BmpHeader(50000, 50000)},
      {"bmp 50000x-50000 (top-down)", BmpHeader(50000, -50000)},
      {"bmp 9000x9000 (pixels)", BmpHeader(9000, 9000)},
      {"bmp 2^31-1 wide", BmpHeader(0x7FFFFFFF, 1)},
      {"jpeg 50000x50000", JpegHeader(50000, 50000)},
      {"jpeg 65535x2", JpegHeader(65535, 2)},
  };
  for (const Case& c : cases) {
    const auto t0 = std::chrono::steady_clock::now();
    Result<Image> r = Decode(c.bytes);
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    ASSERT_FALSE(r.ok()) << c.name;
    EXPECT_EQ(r.status().code(), ErrorCode::kLimitExceeded) << c.name << ": "
                                                            << r.status().ToString();
    std::printf("  %-28s -> %s (%.3f ms)\n", c.name, r.status().ToString().c_str(), ms);
  }
}

TEST(Decode, SmallValidHeaderWithMissingDataIsBadImage) {
  // 100x100 PNG with an empty IDAT: header passes the limits, decoding fails.
  Result<Image> r = Decode(PngHeader(100, 100));
  EXPECT_EQ(r.status().code(), ErrorCode::kBadImage) << r.status().ToString();
  Result<Image> b = Decode(BmpHeader(100, 100));  // announces 30000 bytes of pixels, has 64
  EXPECT_EQ(b.status().code(), ErrorCode::kBadImage) << b.status().ToString();
}

// ---- real photos -------------------------------------------------------------------------

std::string DataDir() {
  if (const char* e = std::getenv("FLAWLENS_DATA")) return e;
  return std::string(FLAWLENS_SOURCE_DIR) + "/../shared/data";
}

Bytes ReadFile(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  return Bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

TEST(Decode, RealPhotosDecode) {
  namespace fs = std::filesystem;
  const fs::path root = DataDir();
  std::error_code ec;
  if (!fs::is_directory(root, ec)) GTEST_SKIP() << "no data at " << root;
  int n = 0, gray = 0, rgb = 0, rgba = 0;
  const int step = std::getenv("FLAWLENS_DECODE_ALL") ? 1 : 4;
  PreprocessScratch scratch;
  std::vector<float> out(64 * 64 * 3);
  PreprocessConfig cfg;
  cfg.resize_w = cfg.resize_h = 64;
  for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (!it->is_regular_file()) continue;
    const std::string ext = it->path().extension().string();
    if (ext != ".png" && ext != ".jpg" && ext != ".jpeg" && ext != ".bmp") continue;
    // Every 4th file keeps the wasm run short (FLAWLENS_DECODE_ALL=1: all).
    if (n++ % step != 0) continue;
    Bytes b = ReadFile(it->path());
    Result<Image> img = Decode(b);
    ASSERT_TRUE(img.ok()) << it->path() << ": " << img.status().ToString();
    ASSERT_GT(img->width, 0);
    // The magnetic-tile photos are grayscale JPEGs, the bottle photos RGB PNGs.
    const std::string path = it->path().string();
    if (path.find("magnetic-tile") != std::string::npos && ext == ".jpg") {
      EXPECT_EQ(img->format, PixelFormat::kGray8) << path;
    }
    if (path.find("mvtec-bottle") != std::string::npos) {
      EXPECT_EQ(img->format, PixelFormat::kRGB8) << path;
    }
    if (img->format == PixelFormat::kGray8) ++gray;
    if (img->format == PixelFormat::kRGB8) ++rgb;
    if (img->format == PixelFormat::kRGBA8) ++rgba;
    Status st = Preprocess(img->view(), cfg, {}, out.data(), &scratch, nullptr);
    ASSERT_TRUE(st.ok()) << it->path() << ": " << st.ToString();
  }
  if (n == 0) GTEST_SKIP() << "no images under " << root;
  std::printf("  decoded %d of %d files: %d gray, %d rgb, %d rgba\n", gray + rgb + rgba, n, gray,
              rgb, rgba);
  EXPECT_GT(gray + rgb + rgba, 0);
}

}  // namespace
}  // namespace flawlens
