// DecodeImage: PNG / JPEG / BMP bytes -> 8-bit Image, via stb_image
// (configured in stb_impl.cc). Every limit of core/limits.h is checked on the
// header, before stb allocates anything for the pixels.
#include <cstdint>
#include <climits>
#include <cstring>

#include "core/limits.h"
#include "image/preprocess.h"
#include "image/stb_alloc.h"

#define STBI_NO_STDIO
#include <stb/stb_image.h>

namespace flawlens {
namespace {

const char* SniffFormat(const uint8_t* b, size_t n) {
  if (n >= 8 && std::memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0) return "PNG";
  if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return "JPEG";
  if (n >= 2 && b[0] == 'B' && b[1] == 'M') return "BMP";
  if (n >= 6 && (std::memcmp(b, "GIF87a", 6) == 0 || std::memcmp(b, "GIF89a", 6) == 0))
    return "GIF";
  if (n >= 12 && std::memcmp(b, "RIFF", 4) == 0 && std::memcmp(b + 8, "WEBP", 4) == 0)
    return "WebP";
  return nullptr;
}

const char* Reason() {
  const char* r = stbi_failure_reason();
  return r ? r : "unknown error";
}

uint32_t Le32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

uint32_t Be32(const uint8_t* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | uint32_t(p[3]);
}

// Size straight from a PNG IHDR / BMP info header (fixed offsets), so sizes
// stb's header parser refuses outright (> 2^24) still come back as
// kLimitExceeded. Returns false if the header is too short to tell.
bool RawHeaderSize(const char* format, const uint8_t* b, size_t n, int64_t* w, int64_t* h) {
  if (std::strcmp(format, "PNG") == 0) {
    if (n < 24 || std::memcmp(b + 12, "IHDR", 4) != 0) return false;
    *w = Be32(b + 16);
    *h = Be32(b + 20);
    return true;
  }
  if (std::strcmp(format, "BMP") == 0) {
    if (n < 26) return false;
    const uint32_t hsize = Le32(b + 14);
    if (hsize == 12) {
      *w = b[18] | b[19] << 8;
      *h = b[20] | b[21] << 8;
    } else {
      *w = static_cast<int32_t>(Le32(b + 18));
      const int64_t hh = static_cast<int32_t>(Le32(b + 22));
      *h = hh < 0 ? -hh : hh;  // negative height = top-down rows
    }
    return true;
  }
  return false;
}

Status CheckSize(const char* format, int64_t w, int64_t h) {
  if (w > kMaxImageSide || h > kMaxImageSide) {
    return MakeError(ErrorCode::kLimitExceeded, "image: %s is %lldx%lld, limit is %d per side",
                     format, static_cast<long long>(w), static_cast<long long>(h),
                     kMaxImageSide);
  }
  const int64_t pixels = w * h;
  if (pixels > kMaxImagePixels) {
    return MakeError(ErrorCode::kLimitExceeded,
                     "image: %s is %lldx%lld = %lld pixels, limit is %lld", format,
                     static_cast<long long>(w), static_cast<long long>(h),
                     static_cast<long long>(pixels), static_cast<long long>(kMaxImagePixels));
  }
  return Status::Ok();
}

// stb reads past the end of a BMP as zeros and "succeeds". For uncompressed
// BMPs check that the pixel array the header announces is all there.
Status CheckBmpComplete(const uint8_t* b, size_t n, int w, int h) {
  if (n < 34) return MakeError(ErrorCode::kBadImage, "BMP: truncated header (%zu bytes)", n);
  const uint32_t offset = Le32(b + 10);
  const uint32_t hsize = Le32(b + 14);
  int bpp = 0;
  uint32_t compression = 0;
  if (hsize == 12) {
    bpp = b[24] | b[25] << 8;
  } else {
    bpp = b[28] | b[29] << 8;
    compression = Le32(b + 30);
  }
  // 0 = BI_RGB, 3 = BI_BITFIELDS: plain pixel arrays, the only kinds stb
  // reads. stb rejects 1, 2 (RLE) and 4..2^31-1 itself, but reads it as a
  // signed int: a "negative" compression (>= 2^31) slipped through and a
  // 64-byte file decoded to millions of zero pixels. Reject every other value.
  if (compression != 0 && compression != 3) {
    return MakeError(ErrorCode::kBadImage,
                     "BMP: compression type %u is not supported (only uncompressed/bitfields)",
                     compression);
  }
  if (bpp != 1 && bpp != 4 && bpp != 8 && bpp != 16 && bpp != 24 && bpp != 32) {
    return MakeError(ErrorCode::kBadImage, "BMP: %d bits per pixel is not supported", bpp);
  }
  const uint64_t row = ((uint64_t(w) * uint64_t(bpp) + 31) / 32) * 4;
  const uint64_t need = uint64_t(offset) + row * uint64_t(h);
  if (need > n) {
    return MakeError(ErrorCode::kBadImage,
                     "BMP: truncated: %dx%d at %d bits needs %llu bytes, file has %zu", w, h,
                     bpp, static_cast<unsigned long long>(need), n);
  }
  return Status::Ok();
}

// stb_image 2.27 (Debian's libstb) builds a Huffman table from a DHT segment
// without checking that the 16 code counts sum to <= 256: a hostile JPEG
// writes up to 4 KiB past stbi__huffman::size / ::values (fixed upstream in
// 2.28). Walk the marker structure the way stb reads it -- padding before a
// marker skipped, 0xFF fill bytes, entropy-coded data up to the first marker
// that is not a stuffed 0xFF00 or an RSTn -- and check every table of every
// DHT segment stb could reach, before stb sees the bytes. The walk visits a
// superset of the segments stb processes, so any table stb builds was checked.
Status CheckJpegHuffmanTables(const uint8_t* b, size_t n) {
  auto at = [&](size_t i) -> int { return i < n ? b[i] : 0; };  // stb reads 0 past the end
  size_t pos = 2;  // after SOI
  while (pos < n) {
    // Next marker: skip anything up to 0xFF, then 0xFF fill bytes.
    while (pos < n && b[pos] != 0xFF) ++pos;
    while (pos < n && b[pos] == 0xFF) ++pos;
    if (pos >= n) break;
    const int m = b[pos++];
    if (m == 0xD9) break;                               // EOI
    if (m == 0x00 || m == 0x01 || (m >= 0xD0 && m <= 0xD8)) continue;  // no length
    if (pos + 2 > n) break;
    const size_t len = size_t(b[pos]) << 8 | b[pos + 1];
    if (m == 0xC4) {  // DHT: mirror stb's `while (L > 0)` table loop
      long left = static_cast<long>(len) - 2;
      size_t q = pos + 2;
      while (left > 0) {
        int count = 0;
        for (int i = 0; i < 16; ++i) count += at(q + 1 + i);
        if (count > 256) {
          return MakeError(ErrorCode::kBadImage,
                           "JPEG: corrupt Huffman table at byte %zu (%d codes, max 256)", q,
                           count);
        }
        q += 17 + count;
        left -= 17 + count;
      }
    }
    pos += len;  // len counts its own 2 bytes
    if (m == 0xDA) {
      // Entropy-coded data: stop at 0xFF followed by a real marker.
      while (pos < n) {
        if (b[pos] != 0xFF) {
          ++pos;
          continue;
        }
        size_t k = pos + 1;
        while (k < n && b[k] == 0xFF) ++k;
        if (k >= n) {
          pos = n;
          break;
        }
        if (b[k] == 0x00 || (b[k] >= 0xD0 && b[k] <= 0xD7)) {
          pos = k + 1;
          continue;
        }
        break;  // pos at the 0xFF of the marker
      }
    }
  }
  return Status::Ok();
}

}  // namespace

Result<Image> DecodeImage(const uint8_t* bytes, size_t size) {
  if (bytes == nullptr || size == 0) {
    return MakeError(ErrorCode::kInvalidArgument, "image: no bytes (%s)",
                     bytes == nullptr ? "null pointer" : "size 0");
  }
  if (size > kMaxImageFileBytes) {
    return MakeError(ErrorCode::kLimitExceeded, "image: file is %zu bytes, limit is %llu", size,
                     static_cast<unsigned long long>(kMaxImageFileBytes));
  }
  const char* format = SniffFormat(bytes, size);
  if (format == nullptr) {
    return MakeError(ErrorCode::kBadImage, "image: not a PNG, JPEG or BMP file (%zu bytes)",
                     size);
  }
  if (std::strcmp(format, "GIF") == 0 || std::strcmp(format, "WebP") == 0) {
    return MakeError(ErrorCode::kBadImage, "image: %s is not supported (use PNG, JPEG or BMP)",
                     format);
  }
  if (std::strcmp(format, "JPEG") == 0) FLAWLENS_RETURN_IF_ERROR(CheckJpegHuffmanTables(bytes, size));
  int64_t raw_w = 0, raw_h = 0;
  if (RawHeaderSize(format, bytes, size, &raw_w, &raw_h)) {
    FLAWLENS_RETURN_IF_ERROR(CheckSize(format, raw_w, raw_h));
  }
  const int len = static_cast<int>(size);  // size <= kMaxImageFileBytes < INT_MAX
  int w = 0, h = 0, comp = 0;
  if (!stbi_info_from_memory(bytes, len, &w, &h, &comp)) {
    return MakeError(ErrorCode::kBadImage, "image: cannot read %s header: %s", format, Reason());
  }
  // stb reports a top-down BMP's height as negative.
  if (h < 0 && h != INT32_MIN && std::strcmp(format, "BMP") == 0) h = -h;
  if (w <= 0 || h <= 0) {
    return MakeError(ErrorCode::kBadImage, "image: %s header has size %dx%d", format, w, h);
  }
  FLAWLENS_RETURN_IF_ERROR(CheckSize(format, w, h));
  const int64_t pixels = int64_t(w) * int64_t(h);
  if (std::strcmp(format, "BMP") == 0) FLAWLENS_RETURN_IF_ERROR(CheckBmpComplete(bytes, size, w, h));

  int dw = 0, dh = 0, channels = 0;
  stbi_uc* px = nullptr;
  {
    // No stb allocation may exceed what a valid w x h file needs (zlib bombs,
    // lying chunk lengths): see stb_alloc.h.
    image_internal::ScopedStbAllocCap cap(image_internal::StbAllocCap(w, h));
    px = stbi_load_from_memory(bytes, len, &dw, &dh, &channels, 0);
  }
  if (px == nullptr) {
    return MakeError(ErrorCode::kBadImage, "image: cannot decode %s (%dx%d): %s", format, w, h,
                     Reason());
  }
  if (dw != w || dh != h || channels < 1 || channels > 4) {
    stbi_image_free(px);
    return MakeError(ErrorCode::kBadImage,
                     "image: %s decoded to %dx%dx%d, header said %dx%d", format, dw, dh,
                     channels, w, h);
  }

  Image img;
  img.width = w;
  img.height = h;
  const size_t n = static_cast<size_t>(pixels);
  switch (channels) {
    case 1:
      img.format = PixelFormat::kGray8;
      img.pixels.assign(px, px + n);
      break;
    case 2:  // gray + alpha: drop alpha
      img.format = PixelFormat::kGray8;
      img.pixels.resize(n);
      for (size_t i = 0; i < n; ++i) img.pixels[i] = px[2 * i];
      break;
    case 3:
      img.format = PixelFormat::kRGB8;
      img.pixels.assign(px, px + 3 * n);
      break;
    default:
      img.format = PixelFormat::kRGBA8;
      img.pixels.assign(px, px + 4 * n);
      break;
  }
  stbi_image_free(px);
  return img;
}

}  // namespace flawlens
