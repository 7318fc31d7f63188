#include "cli/colormap.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdio>

#include "core/limits.h"
#include "core/status.h"

namespace flawlens::cli {
namespace {

struct Lut {
  uint8_t rgba[kHeatmapLutSize * 4];
  Lut() {
    // Colour stops sampled from matplotlib's inferno (position, r, g, b),
    // linearly interpolated in doubles and rounded half to even (what a
    // store into a JavaScript Uint8ClampedArray does).
    static constexpr double kStops[][4] = {
        {0.00, 0, 0, 4},      {0.13, 31, 12, 72},   {0.25, 85, 15, 109},
        {0.38, 136, 34, 106}, {0.50, 186, 54, 85},  {0.63, 227, 89, 51},
        {0.75, 249, 140, 10}, {0.88, 249, 201, 50}, {1.00, 252, 255, 164},
    };
    constexpr int kNumStops = sizeof(kStops) / sizeof(kStops[0]);
    for (int i = 0; i < kHeatmapLutSize; ++i) {
      const double t = i / 255.0;
      int k = 0;
      while (k < kNumStops - 2 && t > kStops[k + 1][0]) ++k;
      const double* a = kStops[k];
      const double* b = kStops[k + 1];
      const double u = std::min(1.0, std::max(0.0, (t - a[0]) / (b[0] - a[0])));
      for (int c = 0; c < 3; ++c) {
        const double v = a[c + 1] + (b[c + 1] - a[c + 1]) * u;
        rgba[i * 4 + c] = static_cast<uint8_t>(std::nearbyint(std::clamp(v, 0.0, 255.0)));
      }
      // Alpha rises with the value and stops at 0.8: normal regions stay
      // clear and the defect itself stays visible under the hottest colour.
      const double alpha = 255.0 * std::min(0.8, std::max(0.0, (t - 0.04) * 1.4));
      rgba[i * 4 + 3] = static_cast<uint8_t>(std::floor(alpha + 0.5));
    }
  }
};

const Lut& GetLut() {
  static const Lut lut;
  return lut;
}

}  // namespace

const uint8_t* HeatmapLut() { return GetLut().rgba; }

std::string HeatmapLutHex() {
  std::string s;
  s.reserve(kHeatmapLutSize * 8);
  char buf[3];
  for (int i = 0; i < kHeatmapLutSize * 4; ++i) {
    std::snprintf(buf, sizeof buf, "%02x", GetLut().rgba[i]);
    s += buf;
  }
  return s;
}

int HeatmapIndex(float v, float lo, float hi) {
  // Doubles, like JavaScript numbers: the same index as lutIndex() for the
  // same float map value and range.
  if (!(hi > lo)) return v >= hi ? 255 : 0;
  const double t = (static_cast<double>(v) - lo) / (static_cast<double>(hi) - lo);
  if (!(t > 0.0)) return 0;
  if (t >= 1.0) return 255;
  return static_cast<int>(t * 255.0 + 0.5);
}

void ColorizeMap(const float* map, int w, int h, float lo, float hi, uint8_t* rgba_out) {
  if (map == nullptr || rgba_out == nullptr || w <= 0 || h <= 0) return;
  const uint8_t* lut = GetLut().rgba;
  const size_t n = static_cast<size_t>(w) * static_cast<size_t>(h);
  for (size_t i = 0; i < n; ++i) {
    uint8_t* o = rgba_out + 4 * i;
    if (!std::isfinite(map[i])) {
      o[0] = o[1] = o[2] = o[3] = 0;
      continue;
    }
    const uint8_t* c = lut + 4 * HeatmapIndex(map[i], lo, hi);
    o[0] = c[0];
    o[1] = c[1];
    o[2] = c[2];
    o[3] = c[3];
  }
}

Status OverlayHeatmap(const ImageView& image, const float* map, int map_w, int map_h,
                      const RectF& map_rect, float lo, float hi, float opacity,
                      uint8_t* rgb_out) {
  FLAWLENS_RETURN_IF_ERROR(ValidateImageView(image));
  if (rgb_out == nullptr) return MakeError(ErrorCode::kInvalidArgument, "overlay: null output");
  if (map == nullptr || map_w <= 0 || map_h <= 0 || map_w > kMaxImageSide ||
      map_h > kMaxImageSide) {
    return MakeError(ErrorCode::kInvalidArgument, "overlay: map %dx%d (%s) is not usable", map_w,
                     map_h, map ? "data" : "null");
  }
  if (!std::isfinite(map_rect.x) || !std::isfinite(map_rect.y) || !std::isfinite(map_rect.w) ||
      !std::isfinite(map_rect.h) || !(map_rect.w > 0) || !(map_rect.h > 0)) {
    return MakeError(ErrorCode::kInvalidArgument, "overlay: map_rect (%g, %g, %g x %g) is empty",
                     map_rect.x, map_rect.y, map_rect.w, map_rect.h);
  }
  if (!std::isfinite(opacity)) {
    return MakeError(ErrorCode::kInvalidArgument, "overlay: opacity is not finite");
  }
  const float weight = std::clamp(opacity, 0.0f, 1.0f) / 255.0f;  // times the entry's alpha
  const uint8_t* lut = GetLut().rgba;
  const int bpp = BytesPerPixel(image.format);
  const size_t stride =
      image.stride ? static_cast<size_t>(image.stride) : static_cast<size_t>(image.width) * bpp;
  const double cell_w = static_cast<double>(map_rect.w) / map_w;
  const double cell_h = static_cast<double>(map_rect.h) / map_h;
  const double x_end = static_cast<double>(map_rect.x) + map_rect.w;
  const double y_end = static_cast<double>(map_rect.y) + map_rect.h;
  for (int y = 0; y < image.height; ++y) {
    const uint8_t* src = image.data + static_cast<size_t>(y) * stride;
    uint8_t* dst = rgb_out + static_cast<size_t>(y) * image.width * 3;
    const double py = y + 0.5;
    const bool row_in = py >= map_rect.y && py < y_end;
    double v = (py - map_rect.y) / cell_h - 0.5;
    v = std::clamp(v, 0.0, static_cast<double>(map_h - 1));
    const int y0 = std::min(static_cast<int>(v), map_h - 1);
    const int y1 = std::min(y0 + 1, map_h - 1);
    const float fy = static_cast<float>(v - y0);
    const float* m0 = map + static_cast<size_t>(y0) * map_w;
    const float* m1 = map + static_cast<size_t>(y1) * map_w;
    for (int x = 0; x < image.width; ++x) {
      const uint8_t* p = src + static_cast<size_t>(x) * bpp;
      float r = p[0], g = bpp == 1 ? p[0] : p[1], b = bpp == 1 ? p[0] : p[2];
      const double px = x + 0.5;
      if (row_in && px >= map_rect.x && px < x_end) {
        double u = (px - map_rect.x) / cell_w - 0.5;
        u = std::clamp(u, 0.0, static_cast<double>(map_w - 1));
        const int x0 = std::min(static_cast<int>(u), map_w - 1);
        const int x1 = std::min(x0 + 1, map_w - 1);
        const float fx = static_cast<float>(u - x0);
        const float top = m0[x0] + fx * (m0[x1] - m0[x0]);
        const float bot = m1[x0] + fx * (m1[x1] - m1[x0]);
        const float value = top + fy * (bot - top);
        if (std::isfinite(value)) {
          const uint8_t* c = lut + 4 * HeatmapIndex(value, lo, hi);
          const float a = weight * c[3];
          r += a * (c[0] - r);
          g += a * (c[1] - g);
          b += a * (c[2] - b);
        }
      }
      dst[3 * x] = static_cast<uint8_t>(std::clamp(r + 0.5f, 0.0f, 255.0f));
      dst[3 * x + 1] = static_cast<uint8_t>(std::clamp(g + 0.5f, 0.0f, 255.0f));
      dst[3 * x + 2] = static_cast<uint8_t>(std::clamp(b + 0.5f, 0.0f, 255.0f));
    }
  }
  return Status::Ok();
}

Status OverlayHeatmap(const ImageView& image, const float* map, int map_w, int map_h,
                      const RectF& map_rect, float lo, float hi, float opacity, Image* out) {
  if (out == nullptr) return MakeError(ErrorCode::kInvalidArgument, "overlay: null output");
  FLAWLENS_RETURN_IF_ERROR(ValidateImageView(image));
  out->pixels.resize(static_cast<size_t>(image.width) * image.height * 3);
  out->width = image.width;
  out->height = image.height;
  out->format = PixelFormat::kRGB8;
  return OverlayHeatmap(image, map, map_w, map_h, map_rect, lo, hi, opacity, out->pixels.data());
}

}  // namespace flawlens::cli
