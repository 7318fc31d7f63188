// flawlens public API: images handed to the detector, and the decoder for
// image files.
//
//   flawlens::ImageView v{rgba, width, height, flawlens::PixelFormat::kRGBA8};
//   auto img = flawlens::DecodeImage(bytes, size);  // Result<Image>: PNG / JPEG / BMP
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "flawlens/status.h"

namespace flawlens {

// The value is the number of bytes per pixel.
enum class PixelFormat { kGray8 = 1, kRGB8 = 3, kRGBA8 = 4 };
inline int BytesPerPixel(PixelFormat f) { return static_cast<int>(f); }
const char* PixelFormatName(PixelFormat f);  // "gray", "rgb", "rgba"

// 8-bit pixels the caller owns; the detector only reads them during a call.
struct ImageView {
  const uint8_t* data = nullptr;
  int width = 0, height = 0;
  PixelFormat format = PixelFormat::kRGBA8;
  int stride = 0;  // bytes per row; 0 = width * BytesPerPixel(format)
};

// An owned 8-bit image (decoded file).
struct Image {
  std::vector<uint8_t> pixels;
  int width = 0, height = 0;
  PixelFormat format = PixelFormat::kRGB8;
  ImageView view() const { return {pixels.data(), width, height, format, 0}; }
};

// A rectangle in pixels of some image, x/y top-left (regions of interest,
// the part of an image an anomaly map covers).
struct RectF {
  float x = 0, y = 0, w = 0, h = 0;
};

// The checks Detect() makes: kInvalidArgument for null data, an unknown
// format, an empty size or a stride below width * bytes per pixel;
// kLimitExceeded above 16384 pixels per side or 64 Mi pixels.
Status ValidateImageView(const ImageView& image);

// Decode PNG / JPEG / BMP (and whatever else stb_image reads) from bytes.
// Checks the header's dimensions against the image limits before decoding
// (kLimitExceeded); undecodable bytes are kBadImage.
// Gray and gray+alpha decode to kGray8, RGB to kRGB8, RGBA to kRGBA8.
Result<Image> DecodeImage(const uint8_t* bytes, size_t size);

}  // namespace flawlens
