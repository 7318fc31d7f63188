// Preprocess: ROI -> resize -> crop -> channels -> normalise (see preprocess.h).
//
// Resampling is separable and computed only for the cropped output pixels:
// per axis, each output sample has a fixed number of taps (start index +
// weights). Shrinking uses the exact box filter (area averaging with
// fractional pixel coverage); enlarging uses bilinear interpolation with
// half-pixel centres, clamped at the image border. The vertical pass runs
// first, one output row at a time, so the only large temporary is one row.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/limits.h"
#include "image/preprocess.h"
#include "image/gaussian_blur.h"
#include "core/simd128.h"

namespace flawlens {

const char* PixelFormatName(PixelFormat f) {
  switch (f) {
    case PixelFormat::kGray8: return "gray";
    case PixelFormat::kRGB8: return "rgb";
    case PixelFormat::kRGBA8: return "rgba";
  }
  return "unknown";
}

namespace {

constexpr float kMaxLcnSigma = 64.0f;
constexpr float kMaxPixelScale = 64.0f;
constexpr float kLumaR = 0.299f, kLumaG = 0.587f, kLumaB = 0.114f;

bool Finite(float v) { return std::isfinite(v); }

template <class T>
void Grow(std::vector<T>* v, size_t n) {
  if (v->size() < n) v->resize(n);
}

// Taps per output sample on one axis: the ROI span [r0, r0 + rlen) of a
// source with src_n pixels resampled to dst_n samples.
int TapsPerSample(double rlen, int src_n, int dst_n) {
  const double s = rlen / dst_n;
  int k = s >= 1.0 ? static_cast<int>(std::floor(s)) + 2 : 2;
  return std::min(k, src_n);
}

// Fills starts[i] and weights[i * wstride + t] (t < k; zero up to wstride)
// for outputs o0 .. o0 + n - 1.
void BuildTaps(double r0, double rlen, int src_n, int dst_n, int o0, int n, int k, int wstride,
               int* starts, float* weights) {
  const double s = rlen / dst_n;
  for (int i = 0; i < n; ++i) {
    const int o = o0 + i;
    float* w = weights + static_cast<size_t>(i) * wstride;
    std::fill(w, w + wstride, 0.0f);
    if (s >= 1.0) {
      // Box filter: output o covers [a, b) of the source.
      double a = r0 + rlen * o / dst_n;
      double b = r0 + rlen * (o + 1) / dst_n;
      a = std::clamp(a, 0.0, static_cast<double>(src_n));
      b = std::clamp(b, a, static_cast<double>(src_n));
      const int start = std::clamp(static_cast<int>(std::floor(a)), 0, src_n - k);
      starts[i] = start;
      double sum = 0;
      for (int t = 0; t < k; ++t) {
        const double lo = std::max(a, static_cast<double>(start + t));
        const double hi = std::min(b, static_cast<double>(start + t + 1));
        const double v = hi > lo ? hi - lo : 0.0;
        sum += v;
        w[t] = static_cast<float>(v);
      }
      if (!(sum > 0)) {  // degenerate (cannot happen for a clipped ROI); be safe
        w[std::clamp(static_cast<int>(a) - start, 0, k - 1)] = 1.0f;
        continue;
      }
      const double inv = 1.0 / sum;
      for (int t = 0; t < k; ++t) w[t] = static_cast<float>(w[t] * inv);
    } else {
      // Bilinear, half-pixel centres, clamped to the image.
      double u = r0 + (o + 0.5) * s - 0.5;
      u = std::clamp(u, 0.0, static_cast<double>(src_n - 1));
      const int i0 = std::min(static_cast<int>(std::floor(u)), src_n - 1);
      const double f = u - i0;
      const int start = std::clamp(i0, 0, src_n - k);
      starts[i] = start;
      w[i0 - start] += static_cast<float>(1.0 - f);
      if (f > 0 && i0 + 1 < src_n) w[i0 + 1 - start] += static_cast<float>(f);
    }
  }
}

struct Geometry {
  RectF roi;             // clipped, input pixels
  int resize_w, resize_h;  // the ROI is resized to this (pixel_scale: its own scaled size)
  int crop_x, crop_y, out_w, out_h;  // the part of the resized ROI that is computed
  int pad_x = 0, pad_y = 0;  // where that part lies on the network input (pixel_scale)
};

// Scaled size of one ROI side in fixed-scale mode: at least 1, and at most
// what the limits allow (the canvas crop takes the centre anyway).
int ScaledSide(double len, float scale) {
  const double v = std::round(len * scale);
  return static_cast<int>(std::clamp(v, 1.0, static_cast<double>(kMaxImageSide) * 64));
}

Status MakeGeometry(const PreprocessConfig& config, int image_w, int image_h, const RectF& roi,
                    Geometry* g) {
  FLAWLENS_RETURN_IF_ERROR(config.Validate());
  FLAWLENS_ASSIGN_OR_RETURN(g->roi, ClipRoi(image_w, image_h, roi));
  if (config.pixel_scale > 0.0f) {
    g->resize_w = ScaledSide(g->roi.w, config.pixel_scale);
    g->resize_h = ScaledSide(g->roi.h, config.pixel_scale);
    g->out_w = std::min(g->resize_w, config.resize_w);
    g->out_h = std::min(g->resize_h, config.resize_h);
    g->crop_x = (g->resize_w - g->out_w) / 2;
    g->crop_y = (g->resize_h - g->out_h) / 2;
    g->pad_x = (config.resize_w - g->out_w) / 2;
    g->pad_y = (config.resize_h - g->out_h) / 2;
    return Status::Ok();
  }
  if (config.keep_aspect) {
    const double s = std::min(config.resize_w / static_cast<double>(g->roi.w),
                              config.resize_h / static_cast<double>(g->roi.h));
    g->resize_w = std::clamp(static_cast<int>(std::lround(g->roi.w * s)), 1, config.resize_w);
    g->resize_h = std::clamp(static_cast<int>(std::lround(g->roi.h * s)), 1, config.resize_h);
    g->out_w = g->resize_w;
    g->out_h = g->resize_h;
    g->crop_x = g->crop_y = 0;
    g->pad_x = (config.resize_w - g->out_w) / 2;
    g->pad_y = (config.resize_h - g->out_h) / 2;
    return Status::Ok();
  }
  const bool crop = config.crop.w > 0;
  g->resize_w = config.resize_w;
  g->resize_h = config.resize_h;
  g->crop_x = crop ? config.crop.x : 0;
  g->crop_y = crop ? config.crop.y : 0;
  g->out_w = config.out_w();
  g->out_h = config.out_h();
  return Status::Ok();
}

// The network input's rectangle in input pixels (with padding: beyond the image).
RectF CoveredOf(const PreprocessConfig& config, const Geometry& g) {
  const double sx = static_cast<double>(g.roi.w) / g.resize_w;
  const double sy = static_cast<double>(g.roi.h) / g.resize_h;
  RectF c;
  c.x = static_cast<float>(g.roi.x + (g.crop_x - g.pad_x) * sx);
  c.y = static_cast<float>(g.roi.y + (g.crop_y - g.pad_y) * sy);
  c.w = static_cast<float>(config.out_w() * sx);
  c.h = static_cast<float>(config.out_h() * sy);
  return c;
}

// Mirror the oh x ow x c image `src` into the W x H canvas `dst` at (px, py).
void MirrorPad(const float* src, int ow, int oh, int c, int px, int py, int W, int H, float* dst) {
  const size_t row = static_cast<size_t>(ow) * c;
  for (int y = 0; y < H; ++y) {
    const float* s = src + static_cast<size_t>(MirrorIndex(y - py, oh)) * row;
    float* d = dst + static_cast<size_t>(y) * W * c;
    for (int x = 0; x < W;) {
      const int u = MirrorIndex(x - px, ow);
      if (u == x - px) {  // the unmirrored run: one copy
        const int n = std::min(W - x, ow - u);
        std::memcpy(d + static_cast<size_t>(x) * c, s + static_cast<size_t>(u) * c,
                    static_cast<size_t>(n) * c * sizeof(float));
        x += n;
        continue;
      }
      std::memcpy(d + static_cast<size_t>(x) * c, s + static_cast<size_t>(u) * c, c * sizeof(float));
      ++x;
    }
  }
}

// Four floats from four bytes p[0..3], and sixteen from p[0..15].
#if defined(__wasm_simd128__)
// u32 -> f32 by the exponent trick (bits 0x4B000000 | u = 2^23 + u, exact for
// u < 2^23): LLVM 14 scalarises f32x4.convert of zero-extended lanes (extract
// + f32.convert + replace_lane per lane), which made this 10x slower.
inline simd::f32x4 SmallU32ToF32(v128_t u) {
  const v128_t bits = wasm_v128_or(u, wasm_i32x4_splat(0x4B000000));
  return (simd::f32x4)bits - simd::Splat(8388608.0f);
}
inline void U8x16ToF32(const uint8_t* p, simd::f32x4 f[4]) {
  const v128_t v = wasm_v128_load(p);
  const v128_t lo = wasm_u16x8_extend_low_u8x16(v), hi = wasm_u16x8_extend_high_u8x16(v);
  f[0] = SmallU32ToF32(wasm_u32x4_extend_low_u16x8(lo));
  f[1] = SmallU32ToF32(wasm_u32x4_extend_high_u16x8(lo));
  f[2] = SmallU32ToF32(wasm_u32x4_extend_low_u16x8(hi));
  f[3] = SmallU32ToF32(wasm_u32x4_extend_high_u16x8(hi));
}
#else
inline void U8x16ToF32(const uint8_t* p, simd::f32x4 f[4]) {
  const __m128i z = _mm_setzero_si128();
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m128i lo = _mm_unpacklo_epi8(v, z), hi = _mm_unpackhi_epi8(v, z);
  f[0] = (simd::f32x4)_mm_cvtepi32_ps(_mm_unpacklo_epi16(lo, z));
  f[1] = (simd::f32x4)_mm_cvtepi32_ps(_mm_unpackhi_epi16(lo, z));
  f[2] = (simd::f32x4)_mm_cvtepi32_ps(_mm_unpacklo_epi16(hi, z));
  f[3] = (simd::f32x4)_mm_cvtepi32_ps(_mm_unpackhi_epi16(hi, z));
}
#endif

// row[i] = w * src[i] (first) or row[i] += w * src[i], i < n: the vertical
// pass works on the raw interleaved bytes, whatever the pixel format.
void AccumulateRow(const uint8_t* src, int n, float w, bool first, float* row) {
  const simd::f32x4 vw = simd::Splat(w);
  int i = 0;
  simd::f32x4 f[4];
  if (first) {
    for (; i + 16 <= n; i += 16) {
      U8x16ToF32(src + i, f);
      for (int q = 0; q < 4; ++q) simd::Store(row + i + 4 * q, vw * f[q]);
    }
    for (; i < n; ++i) row[i] = w * src[i];
  } else {
    for (; i + 16 <= n; i += 16) {
      U8x16ToF32(src + i, f);
      for (int q = 0; q < 4; ++q) {
        simd::Store(row + i + 4 * q, simd::Load(row + i + 4 * q) + vw * f[q]);
      }
    }
    for (; i < n; ++i) row[i] += w * src[i];
  }
}

// Horizontal pass for colour input: out pixel i = sum_t w[i][t] * pixel(start_i + t)
// with all four lanes of a pixel at once (pixels bpp floats apart; lane 3 is
// alpha or the next pixel's red, never used). wc == 3 writes 4 floats at
// dst + 3 i (one float of slack after the last pixel); wc == 1 writes luma.
template <int BPP, int WC>
void HorizontalColour(const float* row, const int* starts, const float* weights, int k, int n,
                      int x_lo, float* dst) {
  const simd::f32x4 luma = {kLumaR, kLumaG, kLumaB, 0.0f};
  for (int i = 0; i < n; ++i) {
    const float* wi = weights + static_cast<size_t>(i) * k;
    const float* r = row + static_cast<size_t>(starts[i] - x_lo) * BPP;
    simd::f32x4 acc = simd::Splat(wi[0]) * simd::Load(r);
    for (int t = 1; t < k; ++t) acc += simd::Splat(wi[t]) * simd::Load(r + BPP * t);
    if (WC == 3) {
      simd::Store(dst + 3 * i, acc);
    } else {
      const simd::f32x4 l = acc * luma;
      dst[i] = l[0] + l[1] + l[2];
    }
  }
}

// Horizontal pass for gray input: weights padded with zeros to k4 (multiple
// of 4) taps; the row has 3 floats of zero slack.
void HorizontalGray(const float* row, const int* starts, const float* weights, int k4, int n,
                    int x_lo, float* dst) {
  for (int i = 0; i < n; ++i) {
    const float* wi = weights + static_cast<size_t>(i) * k4;
    const float* r = row + (starts[i] - x_lo);
    simd::f32x4 acc = simd::Load(wi) * simd::Load(r);
    for (int t = 4; t < k4; t += 4) acc += simd::Load(wi + t) * simd::Load(r + t);
    dst[i] = simd::HorizontalSum(acc);
  }
}

#if defined(__wasm_simd128__)
inline simd::f32x4 Sqrt(simd::f32x4 v) { return (simd::f32x4)wasm_f32x4_sqrt((v128_t)v); }
#else
inline simd::f32x4 Sqrt(simd::f32x4 v) { return (simd::f32x4)_mm_sqrt_ps((__m128)v); }
#endif

// out[p * oc + c] = (in[p * wc + (wc == 1 ? 0 : c)] * scale - mean[c]) / std[c].
void MeanStd(const PreprocessConfig& config, const float* in, size_t plane, int wc, int oc,
             float* out) {
  const float scale = config.scale;
  if (wc == 1 && oc == 1) {
    const simd::f32x4 vs = simd::Splat(scale), vm = simd::Splat(config.mean[0]),
                      vd = simd::Splat(config.std[0]);
    size_t p = 0;
    for (; p + 4 <= plane; p += 4) simd::Store(out + p, (simd::Load(in + p) * vs - vm) / vd);
    for (; p < plane; ++p) out[p] = (in[p] * scale - config.mean[0]) / config.std[0];
    return;
  }
  if (wc == 3) {  // oc == 3: same layout, channel pattern repeats every 12 floats
    simd::f32x4 vm[3], vd[3];
    for (int q = 0; q < 3; ++q) {
      float m[4], d[4];
      for (int l = 0; l < 4; ++l) m[l] = config.mean[(4 * q + l) % 3], d[l] = config.std[(4 * q + l) % 3];
      vm[q] = simd::Load(m);
      vd[q] = simd::Load(d);
    }
    const simd::f32x4 vs = simd::Splat(scale);
    const size_t n = plane * 3;
    size_t i = 0;
    for (; i + 12 <= n; i += 12) {
      for (int q = 0; q < 3; ++q) {
        simd::Store(out + i + 4 * q, (simd::Load(in + i + 4 * q) * vs - vm[q]) / vd[q]);
      }
    }
    for (; i < n; ++i) out[i] = (in[i] * scale - config.mean[i % 3]) / config.std[i % 3];
    return;
  }
  for (size_t p = 0; p < plane; ++p) {  // gray -> 3 channels
    const float v = in[p] * scale;
    for (int c = 0; c < oc; ++c) out[p * oc + c] = (v - config.mean[c]) / config.std[c];
  }
}

// Per-channel constants as the three vectors of a 12-float period of an
// interleaved layout with wc (1 or 3) channels: lane l of vector q is
// channel (4q + l) % wc.
void Pattern(const float* per_channel, int wc, simd::f32x4 out[3]) {
  for (int q = 0; q < 3; ++q) {
    float v[4];
    for (int l = 0; l < 4; ++l) v[l] = per_channel[(4 * q + l) % wc];
    out[q] = simd::Load(v);
  }
}

// Local contrast normalisation of the resized image `res` (oh x ow x wc,
// interleaved) into `out` (oh x ow x oc), including the final mean/std step,
// all channels at once in the interleaved layout:
//   v = (res - m) * scale   (m = channel mean: blur(v - m) = blur(v) - m, and a
//                            constant image gives exactly 0)
//   v -= blur(v);  out = v / sqrt(blur(v * v) + eps), then (out - mean) / std.
void LocalContrast(const PreprocessConfig& config, const float* res, int ow, int oh, int wc,
                   int oc, PreprocessScratch* s, float* out) {
  const size_t plane = static_cast<size_t>(ow) * oh;
  const size_t n = plane * wc;
  const int row_n = ow * wc;
  const int r = std::max(1, static_cast<int>(std::ceil(3.0f * config.lcn_sigma)));
  const int taps = 2 * r + 1;
  Grow(&s->a, static_cast<size_t>(taps));  // the resize's taps and row are no longer needed
  float* kern = s->a.data();
  double ksum = 0;
  for (int k = 0; k < taps; ++k) {
    const double d = k - r;
    ksum += std::exp(-d * d / (2.0 * config.lcn_sigma * config.lcn_sigma));
  }
  for (int k = 0; k < taps; ++k) {
    const double d = k - r;
    kern[k] = static_cast<float>(
        std::exp(-d * d / (2.0 * config.lcn_sigma * config.lcn_sigma)) / ksum);
  }
  Grow(&s->taps, static_cast<size_t>(taps));
  int* rows = s->taps.data();
  Grow(&s->c, 2 * n + BlurScratchFloats(ow, oh, wc, r));
  float* v = s->c.data();
  float* mu = v + n;
  float* blur_scratch = mu + n;

  // Channel means: float vector sums per row, double across rows.
  double sum[3] = {0, 0, 0};
  for (int y = 0; y < oh; ++y) {
    const float* src = res + static_cast<size_t>(y) * row_n;
    simd::f32x4 acc[3] = {simd::Splat(0.0f), simd::Splat(0.0f), simd::Splat(0.0f)};
    int i = 0;
    for (; i + 12 <= row_n; i += 12) {
      for (int q = 0; q < 3; ++q) acc[q] += simd::Load(src + i + 4 * q);
    }
    for (; i < row_n; ++i) sum[i % wc] += src[i];
    for (int q = 0; q < 3; ++q) {
      for (int l = 0; l < 4; ++l) sum[(4 * q + l) % wc] += acc[q][l];
    }
  }
  float m[3] = {0, 0, 0};
  for (int c = 0; c < wc; ++c) m[c] = static_cast<float>(sum[c] / static_cast<double>(plane));
  simd::f32x4 vm[3];
  Pattern(m, wc, vm);
  const float scale = config.scale;
  const simd::f32x4 vs = simd::Splat(scale);
  size_t i = 0;
  for (; i + 12 <= n; i += 12) {
    for (int q = 0; q < 3; ++q) {
      simd::Store(v + i + 4 * q, (simd::Load(res + i + 4 * q) - vm[q]) * vs);
    }
  }
  for (; i < n; ++i) v[i] = (res[i] - m[i % wc]) * scale;

  GaussianBlurPlane(v, mu, ow, oh, wc, kern, r, BlurBorder::kReflect, blur_scratch, rows);
  for (size_t e = 0; e < n; ++e) {
    v[e] -= mu[e];
    mu[e] = v[e] * v[e];
  }
  GaussianBlurPlane(mu, mu, ow, oh, wc, kern, r, BlurBorder::kReflect, blur_scratch, rows);

  const simd::f32x4 eps = simd::Splat(config.lcn_eps), zero = simd::Splat(0.0f);
  if (wc == oc) {
    simd::f32x4 vmean[3], vstd[3];
    Pattern(config.mean, wc, vmean);
    Pattern(config.std, wc, vstd);
    for (i = 0; i + 12 <= n; i += 12) {
      for (int q = 0; q < 3; ++q) {
        const simd::f32x4 x = simd::Load(v + i + 4 * q) /
                              Sqrt(simd::Max(simd::Load(mu + i + 4 * q), zero) + eps);
        simd::Store(out + i + 4 * q, (x - vmean[q]) / vstd[q]);
      }
    }
    for (; i < n; ++i) {
      const float x = v[i] / std::sqrt(std::max(mu[i], 0.0f) + config.lcn_eps);
      out[i] = (x - config.mean[i % wc]) / config.std[i % wc];
    }
    return;
  }
  for (size_t p = 0; p < plane; ++p) {  // gray -> 3 channels
    const float x = v[p] / std::sqrt(std::max(mu[p], 0.0f) + config.lcn_eps);
    for (int c = 0; c < oc; ++c) out[p * oc + c] = (x - config.mean[c]) / config.std[c];
  }
}

}  // namespace

Status PreprocessConfig::Validate() const {
  if (resize_w < 1 || resize_h < 1 || resize_w > kMaxModelInputSide ||
      resize_h > kMaxModelInputSide) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "preprocess: resize %dx%d out of range 1..%d (0 must be filled in from the "
                     "network input size first)",
                     resize_w, resize_h, kMaxModelInputSide);
  }
  if (crop.w != 0 || crop.h != 0 || crop.x != 0 || crop.y != 0) {
    if (crop.w <= 0 || crop.h <= 0 || crop.x < 0 || crop.y < 0 ||
        int64_t(crop.x) + crop.w > resize_w || int64_t(crop.y) + crop.h > resize_h) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "preprocess: crop {x=%d, y=%d, w=%d, h=%d} is not inside the resized "
                       "%dx%d image",
                       crop.x, crop.y, crop.w, crop.h, resize_w, resize_h);
    }
  }
  if (!Finite(pixel_scale) || pixel_scale < 0.0f || pixel_scale > kMaxPixelScale) {
    return MakeError(ErrorCode::kInvalidArgument, "preprocess: pixel_scale %g out of range [0, %g]",
                     pixel_scale, kMaxPixelScale);
  }
  if (pixel_scale > 0.0f && (crop.w != 0 || crop.h != 0 || crop.x != 0 || crop.y != 0)) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "preprocess: pixel_scale and crop cannot be combined (the canvas is the "
                     "network input)");
  }
  if (keep_aspect && (pixel_scale > 0.0f || crop.w != 0 || crop.h != 0 || crop.x != 0 ||
                      crop.y != 0)) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "preprocess: geometry keep_aspect cannot be combined with pixel_scale or a "
                     "crop (the image is fitted inside the whole canvas)");
  }
  if (channels != 1 && channels != 3) {
    return MakeError(ErrorCode::kInvalidArgument, "preprocess: channels is %d, must be 1 or 3",
                     channels);
  }
  if (!Finite(scale) || scale == 0.0f) {
    return MakeError(ErrorCode::kInvalidArgument, "preprocess: scale %g must be finite and non-zero",
                     scale);
  }
  for (int c = 0; c < channels; ++c) {
    if (!Finite(mean[c]) || !Finite(std[c]) || std[c] == 0.0f) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "preprocess: channel %d mean %g / std %g must be finite, std non-zero", c,
                       mean[c], std[c]);
    }
  }
  if (norm != NormMode::kMeanStd && norm != NormMode::kLocalContrast) {
    return MakeError(ErrorCode::kInvalidArgument, "preprocess: unknown norm mode %d",
                     static_cast<int>(norm));
  }
  if (norm == NormMode::kLocalContrast) {
    if (!Finite(lcn_sigma) || !(lcn_sigma > 0.0f) || lcn_sigma > kMaxLcnSigma) {
      return MakeError(ErrorCode::kInvalidArgument, "preprocess: lcn_sigma %g out of range (0, %g]",
                       lcn_sigma, kMaxLcnSigma);
    }
    if (!Finite(lcn_eps) || !(lcn_eps > 0.0f)) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "preprocess: lcn_eps %g must be finite and > 0", lcn_eps);
    }
  }
  return Status::Ok();
}

Status ValidateImageView(const ImageView& image) {
  if (image.data == nullptr) {
    return MakeError(ErrorCode::kInvalidArgument, "image: null pixel pointer");
  }
  if (image.format != PixelFormat::kGray8 && image.format != PixelFormat::kRGB8 &&
      image.format != PixelFormat::kRGBA8) {
    return MakeError(ErrorCode::kInvalidArgument, "image: unknown pixel format %d",
                     static_cast<int>(image.format));
  }
  if (image.width <= 0 || image.height <= 0) {
    return MakeError(ErrorCode::kInvalidArgument, "image: size %dx%d is empty", image.width,
                     image.height);
  }
  if (image.width > kMaxImageSide || image.height > kMaxImageSide ||
      int64_t(image.width) * image.height > kMaxImagePixels) {
    return MakeError(ErrorCode::kLimitExceeded,
                     "image: %dx%d exceeds the limit (%d per side, %lld pixels)", image.width,
                     image.height, kMaxImageSide, static_cast<long long>(kMaxImagePixels));
  }
  const int min_stride = image.width * BytesPerPixel(image.format);
  if (image.stride != 0 && image.stride < min_stride) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "image: stride %d is less than width %d x %d bytes per pixel", image.stride,
                     image.width, BytesPerPixel(image.format));
  }
  return Status::Ok();
}

Result<RectF> ClipRoi(int image_w, int image_h, const RectF& roi) {
  if (image_w <= 0 || image_h <= 0) {
    return MakeError(ErrorCode::kInvalidArgument, "roi: image size %dx%d is empty", image_w,
                     image_h);
  }
  if (!Finite(roi.x) || !Finite(roi.y) || !Finite(roi.w) || !Finite(roi.h)) {
    return MakeError(ErrorCode::kInvalidArgument, "roi: not finite (%g, %g, %g, %g)", roi.x, roi.y,
                     roi.w, roi.h);
  }
  if (roi.w == 0) return RectF{0, 0, static_cast<float>(image_w), static_cast<float>(image_h)};
  const double x0 = std::max(0.0, static_cast<double>(roi.x));
  const double y0 = std::max(0.0, static_cast<double>(roi.y));
  const double x1 = std::min(static_cast<double>(image_w), double(roi.x) + double(roi.w));
  const double y1 = std::min(static_cast<double>(image_h), double(roi.y) + double(roi.h));
  // Require at least 1/1024 pixel so the resampling weights are meaningful.
  if (!(x1 - x0 >= 1.0 / 1024) || !(y1 - y0 >= 1.0 / 1024)) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "roi: (%g, %g, %g x %g) is empty after clipping to the %dx%d image", roi.x,
                     roi.y, roi.w, roi.h, image_w, image_h);
  }
  return RectF{static_cast<float>(x0), static_cast<float>(y0), static_cast<float>(x1 - x0),
               static_cast<float>(y1 - y0)};
}

Result<RectF> PreprocessCovered(const PreprocessConfig& config, int image_w, int image_h,
                                const RectF& roi) {
  Geometry g;
  FLAWLENS_RETURN_IF_ERROR(MakeGeometry(config, image_w, image_h, roi, &g));
  return CoveredOf(config, g);
}

Result<RectI> PreprocessContent(const PreprocessConfig& config, int image_w, int image_h,
                                const RectF& roi) {
  Geometry g;
  FLAWLENS_RETURN_IF_ERROR(MakeGeometry(config, image_w, image_h, roi, &g));
  return RectI{g.pad_x, g.pad_y, g.out_w, g.out_h};
}

RectI ContentCells(const RectI& content, int net_w, int net_h, int map_w, int map_h) {
  // Cell j is kept when its centre (j + 0.5) * net / map lies in [c0, c0 + len).
  auto axis = [](int c0, int len, int net, int map, int* j0, int* n) {
    const double step = static_cast<double>(net) / map;
    int a = static_cast<int>(std::ceil((c0) / step - 0.5));
    int b = static_cast<int>(std::ceil((static_cast<double>(c0) + len) / step - 0.5));  // exclusive
    a = std::clamp(a, 0, map);
    b = std::clamp(b, 0, map);
    if (b <= a) {  // no centre on the content: the cell under its centre
      a = std::clamp(static_cast<int>((c0 + 0.5 * len) / step), 0, map - 1);
      b = a + 1;
    }
    *j0 = a;
    *n = b - a;
  };
  RectI r;
  axis(content.x, content.w, net_w, map_w, &r.x, &r.w);
  axis(content.y, content.h, net_h, map_h, &r.y, &r.h);
  return r;
}

Status Preprocess(const ImageView& image, const PreprocessConfig& config, const RectF& roi,
                  float* out, PreprocessScratch* scratch, RectF* covered) {
  FLAWLENS_RETURN_IF_ERROR(ValidateImageView(image));
  if (out == nullptr) return MakeError(ErrorCode::kInvalidArgument, "preprocess: null output");
  Geometry g;
  FLAWLENS_RETURN_IF_ERROR(MakeGeometry(config, image.width, image.height, roi, &g));
  PreprocessScratch local;
  PreprocessScratch& s = scratch ? *scratch : local;

  const int bpp = BytesPerPixel(image.format);
  const size_t stride = image.stride ? static_cast<size_t>(image.stride)
                                     : static_cast<size_t>(image.width) * bpp;
  const bool gray_in = image.format == PixelFormat::kGray8;
  const int oc = config.channels;
  const int wc = (gray_in || oc == 1) ? 1 : 3;  // working channels
  const int ow = g.out_w, oh = g.out_h;

  // ---- taps ----
  const int kx = TapsPerSample(g.roi.w, image.width, g.resize_w);
  const int ky = TapsPerSample(g.roi.h, image.height, g.resize_h);
  const int kx_stride = gray_in ? (kx + 3) / 4 * 4 : kx;
  const size_t wx_n = static_cast<size_t>(ow) * kx_stride, wy_n = static_cast<size_t>(oh) * ky;
  Grow(&s.taps, static_cast<size_t>(ow) + oh);
  int* sx = s.taps.data();
  int* sy = sx + ow;
  // The row buffer holds one resized-vertically source row (the columns the
  // crop needs, all bytes of each pixel) plus 4 floats of zero slack.
  const size_t row_max = static_cast<size_t>(image.width) * bpp + 4;
  Grow(&s.a, wx_n + wy_n + row_max);
  float* wx = s.a.data();
  float* wy = wx + wx_n;
  float* row = wy + wy_n;
  BuildTaps(g.roi.x, g.roi.w, image.width, g.resize_w, g.crop_x, ow, kx, kx_stride, sx, wx);
  BuildTaps(g.roi.y, g.roi.h, image.height, g.resize_h, g.crop_y, oh, ky, ky, sy, wy);
  const int x_lo = sx[0];
  const int x_hi = std::min(image.width, sx[ow - 1] + kx);
  const int xn = x_hi - x_lo;
  const int row_n = xn * bpp;
  std::fill(row + row_n, row + row_n + 4, 0.0f);

  // ---- resize + crop + channel reduction into b (oh x ow x wc) ----
  const size_t plane = static_cast<size_t>(ow) * oh;
  Grow(&s.b, plane * wc + 4);  // + slack for the 4-float stores of HorizontalColour
  float* res = s.b.data();
  for (int j = 0; j < oh; ++j) {
    const float* wj = wy + static_cast<size_t>(j) * ky;
    bool first = true;
    for (int t = 0; t < ky; ++t) {
      const float w = wj[t];
      if (w == 0.0f) continue;
      const uint8_t* src = image.data + static_cast<size_t>(sy[j] + t) * stride +
                           static_cast<size_t>(x_lo) * bpp;
      AccumulateRow(src, row_n, w, first, row);
      first = false;
    }
    if (first) std::fill(row, row + row_n, 0.0f);  // all weights zero (degenerate)
    float* dst = res + static_cast<size_t>(j) * ow * wc;
    if (gray_in) {
      HorizontalGray(row, sx, wx, kx_stride, ow, x_lo, dst);
    } else if (bpp == 3) {
      if (wc == 1) HorizontalColour<3, 1>(row, sx, wx, kx, ow, x_lo, dst);
      else HorizontalColour<3, 3>(row, sx, wx, kx, ow, x_lo, dst);
    } else {
      if (wc == 1) HorizontalColour<4, 1>(row, sx, wx, kx, ow, x_lo, dst);
      else HorizontalColour<4, 3>(row, sx, wx, kx, ow, x_lo, dst);
    }
  }

  // ---- normalisation (of the image part), then mirror padding ----
  const bool pad = ow != config.out_w() || oh != config.out_h();
  float* norm_out = out;
  if (pad) {
    Grow(&s.d, plane * oc);
    norm_out = s.d.data();
  }
  if (config.norm == NormMode::kLocalContrast) {
    LocalContrast(config, res, ow, oh, wc, oc, &s, norm_out);
  } else {
    MeanStd(config, res, plane, wc, oc, norm_out);
  }
  if (pad) MirrorPad(norm_out, ow, oh, oc, g.pad_x, g.pad_y, config.out_w(), config.out_h(), out);
  if (covered) *covered = CoveredOf(config, g);
  return Status::Ok();
}

}  // namespace flawlens
