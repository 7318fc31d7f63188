#include "image/colormap.h"

#include <algorithm>
#include <cmath>
#include <cstddef>

#include "core/limits.h"

namespace flawlens {
namespace {

struct Lut {
  uint8_t rgb[256 * 3];
  Lut() {
    // Turbo polynomial approximation (Mikhailov 2019), public coefficients.
    const double r4[4] = {0.13572138, 4.61539260, -42.66032258, 132.13108234};
    const double g4[4] = {0.09140261, 2.19418839, 4.84296658, -14.18503333};
    const double b4[4] = {0.10667330, 12.64194608, -60.58204836, 110.36276771};
    const double r2[2] = {-152.94239396, 59.28637943};
    const double g2[2] = {4.27729857, 2.82956604};
    const double b2[2] = {-89.90310912, 27.34824973};
    for (int i = 0; i < 256; ++i) {
      const double x = i / 255.0;
      const double v4[4] = {1.0, x, x * x, x * x * x};
      const double v2[2] = {x * x * x * x, x * x * x * x * x};
      const double* c4[3] = {r4, g4, b4};
      const double* c2[3] = {r2, g2, b2};
      for (int c = 0; c < 3; ++c) {
        double v = c2[c][0] * v2[0] + c2[c][1] * v2[1];
        for (int k = 0; k < 4; ++k) v += c4[c][k] * v4[k];
        v = std::clamp(v, 0.0, 1.0);
        rgb[i * 3 + c] = static_cast<uint8_t>(std::lround(v * 255.0));
      }
    }
  }
};

const Lut& GetLut() {
  static const Lut lut;
  return lut;
}

// Map value -> LUT index, or -1 for non-finite.
inline int Index(float v, float lo, float hi, bool ranged, float inv) {
  if (!std::isfinite(v)) return -1;
  if (!ranged) return v >= hi ? 255 : 0;
  const float t = (v - lo) * inv;
  if (!(t > 0.0f)) return 0;
  if (t >= 1.0f) return 255;
  return static_cast<int>(t * 255.0f + 0.5f);
}

}  // namespace

const uint8_t* TurboLut() { return GetLut().rgb; }

void TurboColor(float t, uint8_t rgb[3]) {
  int i = 0;
  if (t >= 1.0f) i = 255;
  else if (t > 0.0f) i = static_cast<int>(t * 255.0f + 0.5f);
  const uint8_t* c = GetLut().rgb + 3 * i;
  rgb[0] = c[0];
  rgb[1] = c[1];
  rgb[2] = c[2];
}

void ColorizeMap(const float* map, int w, int h, float lo, float hi, uint8_t* rgba_out) {
  if (map == nullptr || rgba_out == nullptr || w <= 0 || h <= 0) return;
  const bool ranged = std::isfinite(lo) && std::isfinite(hi) && hi > lo;
  const float inv = ranged ? 1.0f / (hi - lo) : 0.0f;
  const uint8_t* lut = GetLut().rgb;
  const size_t n = static_cast<size_t>(w) * static_cast<size_t>(h);
  for (size_t i = 0; i < n; ++i) {
    const int k = Index(map[i], lo, hi, ranged, inv);
    uint8_t* o = rgba_out + 4 * i;
    if (k < 0) {
      o[0] = o[1] = o[2] = o[3] = 0;
      continue;
    }
    o[0] = lut[3 * k];
    o[1] = lut[3 * k + 1];
    o[2] = lut[3 * k + 2];
    o[3] = 255;
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
  const float a = std::clamp(opacity, 0.0f, 1.0f);
  const bool ranged = std::isfinite(lo) && std::isfinite(hi) && hi > lo;
  const float inv = ranged ? 1.0f / (hi - lo) : 0.0f;
  const uint8_t* lut = GetLut().rgb;
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
        const int k = Index(top + fy * (bot - top), lo, hi, ranged, inv);
        if (k >= 0) {
          r += a * (lut[3 * k] - r);
          g += a * (lut[3 * k + 1] - g);
          b += a * (lut[3 * k + 2] - b);
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

}  // namespace flawlens
