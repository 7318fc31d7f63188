// Tests of image/preprocess: geometry, resampling exactness, channels,
// normalisation, validation, and allocation-free steady state.
#include "image/preprocess.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <random>
#include <vector>

#include "core/limits.h"

// ---- allocation counter (whole binary) ------------------------------------
static std::atomic<long> g_allocs{0};
#if defined(__GNUC__) && !defined(__clang__)
// GCC flags free() of memory from this very operator new as a mismatch.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
void* operator new(std::size_t n) {
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  std::abort();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void* operator new[](std::size_t n) { return ::operator new(n); }
void operator delete[](void* p) noexcept { ::operator delete(p); }
void operator delete[](void* p, std::size_t) noexcept { ::operator delete(p); }

namespace flawlens {
namespace {

struct TestImage {
  std::vector<uint8_t> px;
  int w = 0, h = 0;
  PixelFormat f = PixelFormat::kGray8;
  int stride = 0;
  ImageView view() const { return {px.data(), w, h, f, stride}; }
  uint8_t& at(int x, int y, int c) {
    const int s = stride ? stride : w * BytesPerPixel(f);
    return px[static_cast<size_t>(y) * s + x * BytesPerPixel(f) + c];
  }
};

TestImage Make(int w, int h, PixelFormat f, int stride = 0) {
  TestImage t;
  t.w = w;
  t.h = h;
  t.f = f;
  t.stride = stride;
  const int s = stride ? stride : w * BytesPerPixel(f);
  t.px.assign(static_cast<size_t>(s) * h, 0);
  return t;
}

PreprocessConfig Cfg(int rw, int rh, int channels, RectI crop = {}) {
  PreprocessConfig c;
  c.resize_w = rw;
  c.resize_h = rh;
  c.crop = crop;
  c.channels = channels;
  c.scale = 1.0f;
  return c;
}

std::vector<float> RunPre(const TestImage& img, const PreprocessConfig& cfg, RectF roi = {},
                       RectF* covered = nullptr) {
  std::vector<float> out(static_cast<size_t>(cfg.out_w()) * cfg.out_h() * cfg.channels, -999.f);
  PreprocessScratch s;
  RectF cov;
  Status st = Preprocess(img.view(), cfg, roi, out.data(), &s, &cov);
  EXPECT_TRUE(st.ok()) << st.ToString();
  if (covered) *covered = cov;
  return out;
}

// Reference: direct 2-D box integration (shrink) / bilinear (enlarge) in
// double, per axis independently, for a gray image.
double RefAxisWeight(double r0, double rlen, int src_n, int dst_n, int o, int k) {
  const double s = rlen / dst_n;
  if (s >= 1.0) {
    const double a = r0 + rlen * o / dst_n, b = r0 + rlen * (o + 1) / dst_n;
    const double lo = std::max(a, double(k)), hi = std::min(b, double(k + 1));
    return hi > lo ? (hi - lo) / (b - a) : 0.0;
  }
  double u = std::clamp(r0 + (o + 0.5) * s - 0.5, 0.0, double(src_n - 1));
  const int i0 = int(std::floor(u));
  const double f = u - i0;
  if (k == i0) return 1.0 - f;
  if (k == i0 + 1) return f;
  return 0.0;
}

std::vector<double> RefResizeGray(const TestImage& img, RectF roi, int rw, int rh) {
  std::vector<double> out(static_cast<size_t>(rw) * rh, 0.0);
  for (int oy = 0; oy < rh; ++oy)
    for (int ox = 0; ox < rw; ++ox) {
      double acc = 0;
      for (int y = 0; y < img.h; ++y) {
        const double wy = RefAxisWeight(roi.y, roi.h, img.h, rh, oy, y);
        if (wy == 0) continue;
        for (int x = 0; x < img.w; ++x) {
          const double wx = RefAxisWeight(roi.x, roi.w, img.w, rw, ox, x);
          acc += wx * wy * const_cast<TestImage&>(img).at(x, y, 0);
        }
      }
      out[static_cast<size_t>(oy) * rw + ox] = acc;
    }
  return out;
}

// ---- the seed's preprocessing ----------------------------------------------

TEST(Preprocess, SeedConfigExactValues) {
  // resize 128 -> 64 (2x2 area average), crop {16,16,32,32}, /255.
  TestImage img = Make(128, 128, PixelFormat::kRGB8);
  for (int y = 0; y < 128; ++y)
    for (int x = 0; x < 128; ++x) {
      img.at(x, y, 0) = static_cast<uint8_t>(x + y);
      img.at(x, y, 1) = static_cast<uint8_t>(255 - x);
      img.at(x, y, 2) = static_cast<uint8_t>(y);
    }
  PreprocessConfig cfg;
  cfg.resize_w = cfg.resize_h = 64;
  cfg.crop = {16, 16, 32, 32};
  cfg.channels = 3;
  cfg.scale = 1.0f / 255.0f;
  ASSERT_EQ(cfg.out_w(), 32);
  ASSERT_EQ(cfg.out_h(), 32);
  RectF cov;
  std::vector<float> out = RunPre(img, cfg, {}, &cov);
  for (int j = 0; j < 32; ++j)
    for (int i = 0; i < 32; ++i) {
      const int ci = 16 + i, cj = 16 + j;  // resized pixel = source 2ci..2ci+1
      const float* p = &out[(static_cast<size_t>(j) * 32 + i) * 3];
      EXPECT_NEAR(p[0], (2.0 * ci + 2.0 * cj + 1.0) / 255.0, 1e-6) << i << "," << j;
      EXPECT_NEAR(p[1], (255.0 - (2.0 * ci + 0.5)) / 255.0, 1e-6);
      EXPECT_NEAR(p[2], (2.0 * cj + 0.5) / 255.0, 1e-6);
    }
  EXPECT_FLOAT_EQ(cov.x, 32);
  EXPECT_FLOAT_EQ(cov.y, 32);
  EXPECT_FLOAT_EQ(cov.w, 64);
  EXPECT_FLOAT_EQ(cov.h, 64);
}

// ---- resampling ----------------------------------------------------------------

TEST(Preprocess, ConstantStaysConstant) {
  const int sizes[][4] = {{100, 70, 64, 64}, {7, 5, 64, 48}, {640, 480, 33, 17},
                          {1, 1, 5, 5},      {3, 200, 9, 2}, {50, 50, 50, 50}};
  for (auto& sz : sizes) {
    for (PixelFormat f : {PixelFormat::kGray8, PixelFormat::kRGB8, PixelFormat::kRGBA8}) {
      TestImage img = Make(sz[0], sz[1], f);
      std::fill(img.px.begin(), img.px.end(), 173);
      for (int ch : {1, 3}) {
        std::vector<float> out = RunPre(img, Cfg(sz[2], sz[3], ch));
        for (float v : out) ASSERT_NEAR(v, 173.0f, 173.0f * 2e-6f) << sz[0] << "x" << sz[1];
        // Fractional ROI too.
        out = RunPre(img, Cfg(sz[2], sz[3], ch), {0.3f, 0.2f, sz[0] * 0.55f, sz[1] * 0.7f});
        for (float v : out) ASSERT_NEAR(v, 173.0f, 173.0f * 2e-6f);
      }
    }
  }
}

TEST(Preprocess, CheckerboardShrunk2xIsExactMidGray) {
  for (int cell : {1, 3}) {
    // cell 1: 1-pixel checkerboard shrunk 2x; cell 3: 3-pixel cells shrunk 6x.
    const int n = 96;
    TestImage img = Make(n, n, PixelFormat::kGray8);
    for (int y = 0; y < n; ++y)
      for (int x = 0; x < n; ++x) img.at(x, y, 0) = ((x / cell + y / cell) % 2) ? 255 : 0;
    const int out_n = n / (2 * cell);
    std::vector<float> out = RunPre(img, Cfg(out_n, out_n, 1));
    for (float v : out) ASSERT_EQ(v, 127.5f);
  }
}

TEST(Preprocess, MatchesDirect2DReference) {
  std::mt19937 rng(1234);
  for (int iter = 0; iter < 60; ++iter) {
    const int w = 1 + rng() % 40, h = 1 + rng() % 40;
    TestImage img = Make(w, h, PixelFormat::kGray8);
    for (auto& p : img.px) p = rng() % 256;
    const int rw = 1 + rng() % 50, rh = 1 + rng() % 50;
    std::uniform_real_distribution<float> u(0.0f, 1.0f);
    RectF roi{u(rng) * w * 0.5f, u(rng) * h * 0.5f, 0, 0};
    roi.w = std::max(0.01f, u(rng) * (w - roi.x));
    roi.h = std::max(0.01f, u(rng) * (h - roi.y));
    if (iter % 3 == 0) roi = {};
    RectF clipped = ClipRoi(w, h, roi).value();
    std::vector<double> ref = RefResizeGray(img, clipped, rw, rh);
    std::vector<float> out = RunPre(img, Cfg(rw, rh, 1), roi);
    for (size_t i = 0; i < ref.size(); ++i)
      ASSERT_NEAR(out[i], ref[i], 1e-3) << "iter " << iter << " " << w << "x" << h << " -> " << rw
                                        << "x" << rh << " i=" << i;
  }
}

TEST(Preprocess, OneByNAndNByOne) {
  TestImage row = Make(16, 1, PixelFormat::kGray8);
  for (int x = 0; x < 16; ++x) row.at(x, 0, 0) = x * 10;
  std::vector<float> out = RunPre(row, Cfg(4, 3, 1));  // shrink x 4x, enlarge y 3x
  for (int j = 0; j < 3; ++j)
    for (int i = 0; i < 4; ++i) EXPECT_FLOAT_EQ(out[j * 4 + i], 10.0f * (4 * i + 1.5f));
  TestImage col = Make(1, 16, PixelFormat::kGray8);
  for (int y = 0; y < 16; ++y) col.at(0, y, 0) = y * 10;
  out = RunPre(col, Cfg(2, 8, 1));
  for (int j = 0; j < 8; ++j)
    for (int i = 0; i < 2; ++i) EXPECT_FLOAT_EQ(out[j * 2 + i], 10.0f * (2 * j + 0.5f));
  TestImage one = Make(1, 1, PixelFormat::kRGB8);
  one.at(0, 0, 0) = 9;
  one.at(0, 0, 1) = 99;
  one.at(0, 0, 2) = 199;
  out = RunPre(one, Cfg(3, 2, 3));
  for (int p = 0; p < 6; ++p) {
    EXPECT_FLOAT_EQ(out[3 * p], 9);
    EXPECT_FLOAT_EQ(out[3 * p + 1], 99);
    EXPECT_FLOAT_EQ(out[3 * p + 2], 199);
  }
}

TEST(Preprocess, BilinearUpscaleHalfPixelCentres) {
  TestImage img = Make(2, 1, PixelFormat::kGray8);
  img.at(0, 0, 0) = 0;
  img.at(1, 0, 0) = 255;
  std::vector<float> out = RunPre(img, Cfg(4, 1, 1));
  EXPECT_FLOAT_EQ(out[0], 0.0f);
  EXPECT_FLOAT_EQ(out[1], 63.75f);
  EXPECT_FLOAT_EQ(out[2], 191.25f);
  EXPECT_FLOAT_EQ(out[3], 255.0f);
  // A linear ramp stays linear in the interior when enlarged.
  TestImage ramp = Make(10, 1, PixelFormat::kGray8);
  for (int x = 0; x < 10; ++x) ramp.at(x, 0, 0) = 20 * x;
  out = RunPre(ramp, Cfg(40, 1, 1));
  for (int o = 2; o < 38; ++o) EXPECT_NEAR(out[o], 20.0 * ((o + 0.5) / 4.0 - 0.5), 1e-4);
}

// ---- ROI, crop, covered -------------------------------------------------------------

TEST(Preprocess, RoiCropAndCovered) {
  TestImage img = Make(80, 60, PixelFormat::kGray8);
  for (int y = 0; y < 60; ++y)
    for (int x = 0; x < 80; ++x) img.at(x, y, 0) = x;
  RectF cov;
  std::vector<float> out = RunPre(img, Cfg(4, 3, 1), {10, 20, 40, 30}, &cov);
  for (int j = 0; j < 3; ++j)
    for (int i = 0; i < 4; ++i) EXPECT_FLOAT_EQ(out[j * 4 + i], 14.5f + 10 * i);
  EXPECT_FLOAT_EQ(cov.x, 10);
  EXPECT_FLOAT_EQ(cov.y, 20);
  EXPECT_FLOAT_EQ(cov.w, 40);
  EXPECT_FLOAT_EQ(cov.h, 30);
  // With a crop {1,1,2,2}: pixels 1..2 of the 4x3 resize, covered = 20..40 x 30..50.
  out = RunPre(img, Cfg(4, 3, 1, {1, 1, 2, 2}), {10, 20, 40, 30}, &cov);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_FLOAT_EQ(out[0], 24.5f);
  EXPECT_FLOAT_EQ(out[1], 34.5f);
  EXPECT_FLOAT_EQ(cov.x, 20);
  EXPECT_FLOAT_EQ(cov.y, 30);
  EXPECT_FLOAT_EQ(cov.w, 20);
  EXPECT_FLOAT_EQ(cov.h, 20);
  Result<RectF> c2 = PreprocessCovered(Cfg(4, 3, 1, {1, 1, 2, 2}), 80, 60, {10, 20, 40, 30});
  ASSERT_TRUE(c2.ok());
  EXPECT_FLOAT_EQ(c2->x, cov.x);
  EXPECT_FLOAT_EQ(c2->w, cov.w);
}

TEST(Preprocess, FractionalRoiCoverage) {
  TestImage img = Make(4, 1, PixelFormat::kGray8);
  for (int x = 0; x < 4; ++x) img.at(x, 0, 0) = 10 * x;
  // [0.5, 2.5): 0.5 * 0 + 1 * 10 + 0.5 * 20 over 2 = 10.
  std::vector<float> out = RunPre(img, Cfg(1, 1, 1), {0.5f, 0, 2, 1});
  EXPECT_FLOAT_EQ(out[0], 10.0f);
  // [0.25, 3.0) -> 0.75 * 0 + 10 + 20 over 2.75
  out = RunPre(img, Cfg(1, 1, 1), {0.25f, 0, 2.75f, 1});
  EXPECT_NEAR(out[0], 30.0f / 2.75f, 1e-5);
}

TEST(Preprocess, RoiClippingAndEmpty) {
  TestImage img = Make(10, 10, PixelFormat::kGray8);
  std::fill(img.px.begin(), img.px.end(), 50);
  RectF cov;
  RunPre(img, Cfg(2, 2, 1), {-5, -5, 10, 10}, &cov);  // clipped to {0,0,5,5}
  EXPECT_FLOAT_EQ(cov.x, 0);
  EXPECT_FLOAT_EQ(cov.w, 5);
  EXPECT_FLOAT_EQ(cov.h, 5);
  float out[4];
  PreprocessScratch s;
  const RectF bad[] = {{20, 20, 5, 5}, {-10, 0, 5, 5}, {0, 0, 5, -5}, {0, 0, -1, 3},
                       {NAN, 0, 5, 5}, {0, 0, INFINITY, 5}, {3, 3, 1e-6f, 5}};
  for (const RectF& r : bad) {
    Status st = Preprocess(img.view(), Cfg(2, 2, 1), r, out, &s, &cov);
    EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument) << r.x << " " << r.w;
  }
}

// ---- channels ---------------------------------------------------------------------

TEST(Preprocess, ChannelConversion) {
  TestImage rgb = Make(6, 4, PixelFormat::kRGB8);
  TestImage rgba = Make(6, 4, PixelFormat::kRGBA8);
  TestImage gray = Make(6, 4, PixelFormat::kGray8);
  std::mt19937 rng(7);
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 6; ++x) {
      for (int c = 0; c < 3; ++c) rgba.at(x, y, c) = rgb.at(x, y, c) = rng() % 256;
      rgba.at(x, y, 3) = rng() % 256;  // alpha must be ignored
      gray.at(x, y, 0) = rng() % 256;
    }
  // RGB -> 1: luma.
  std::vector<float> out = RunPre(rgb, Cfg(6, 4, 1));
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 6; ++x)
      EXPECT_NEAR(out[y * 6 + x],
                  0.299 * rgb.at(x, y, 0) + 0.587 * rgb.at(x, y, 1) + 0.114 * rgb.at(x, y, 2),
                  1e-3);
  // RGBA == RGB for both channel counts.
  for (int ch : {1, 3}) EXPECT_EQ(RunPre(rgb, Cfg(5, 3, ch)), RunPre(rgba, Cfg(5, 3, ch)));
  // Gray -> 3 replicates.
  out = RunPre(gray, Cfg(6, 4, 3));
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 6; ++x)
      for (int c = 0; c < 3; ++c) EXPECT_EQ(out[(y * 6 + x) * 3 + c], gray.at(x, y, 0));
}

TEST(Preprocess, StrideIsHonoured) {
  TestImage padded = Make(5, 3, PixelFormat::kRGB8, 5 * 3 + 7);
  TestImage tight = Make(5, 3, PixelFormat::kRGB8);
  std::fill(padded.px.begin(), padded.px.end(), 0xEE);  // padding garbage
  for (int y = 0; y < 3; ++y)
    for (int x = 0; x < 5; ++x)
      for (int c = 0; c < 3; ++c) padded.at(x, y, c) = tight.at(x, y, c) = 10 * x + y + c;
  EXPECT_EQ(RunPre(padded, Cfg(7, 2, 3)), RunPre(tight, Cfg(7, 2, 3)));
}

// ---- normalisation ----------------------------------------------------------------------

TEST(Preprocess, MeanStd) {
  TestImage img = Make(2, 2, PixelFormat::kRGB8);
  for (int y = 0; y < 2; ++y)
    for (int x = 0; x < 2; ++x)
      for (int c = 0; c < 3; ++c) img.at(x, y, c) = 51 * (c + 1);
  PreprocessConfig cfg = Cfg(2, 2, 3);
  cfg.scale = 1.0f / 255.0f;
  const float mean[3] = {0.485f, 0.456f, 0.406f}, sd[3] = {0.229f, 0.224f, 0.225f};
  for (int c = 0; c < 3; ++c) {
    cfg.mean[c] = mean[c];
    cfg.std[c] = sd[c];
  }
  std::vector<float> out = RunPre(img, cfg);
  for (int p = 0; p < 4; ++p)
    for (int c = 0; c < 3; ++c)
      EXPECT_NEAR(out[p * 3 + c], (51.0 * (c + 1) / 255.0 - mean[c]) / sd[c], 1e-5);
}

TEST(Preprocess, LocalContrastIsLightingInvariant) {
  const int n = 64;
  TestImage a = Make(n, n, PixelFormat::kGray8), b = Make(n, n, PixelFormat::kGray8);
  std::mt19937 rng(99);
  for (int y = 0; y < n; ++y)
    for (int x = 0; x < n; ++x) {
      // texture in 0..200 (even), b = a / 2 + 40 exactly.
      const int v = 2 * static_cast<int>(50 + 40 * std::sin(x * 0.7) * std::cos(y * 0.45) +
                                         (rng() % 10));
      a.at(x, y, 0) = v;
      b.at(x, y, 0) = v / 2 + 40;
    }
  PreprocessConfig cfg = Cfg(n, n, 1);
  cfg.scale = 1.0f / 255.0f;
  cfg.norm = NormMode::kLocalContrast;
  cfg.lcn_sigma = 4.0f;
  cfg.lcn_eps = 1e-5f;
  std::vector<float> oa = RunPre(a, cfg), ob = RunPre(b, cfg);
  double max_diff = 0, max_abs = 0, mean = 0;
  for (size_t i = 0; i < oa.size(); ++i) {
    max_diff = std::max(max_diff, double(std::fabs(oa[i] - ob[i])));
    max_abs = std::max(max_abs, double(std::fabs(oa[i])));
    mean += oa[i];
  }
  mean /= oa.size();
  std::printf("  LCN: max |a - b| = %.5f, max |a| = %.3f, mean a = %.4f\n", max_diff, max_abs,
              mean);
  EXPECT_LT(max_diff, 0.02) << "max |a| " << max_abs;
  EXPECT_GT(max_abs, 0.5);  // the output is not trivially zero
  EXPECT_LT(std::fabs(mean), 0.2);
  // Plain mean/std is NOT invariant (sanity check of the test itself).
  cfg.norm = NormMode::kMeanStd;
  std::vector<float> pa = RunPre(a, cfg), pb = RunPre(b, cfg);
  double diff = 0;
  for (size_t i = 0; i < pa.size(); ++i) diff = std::max(diff, double(std::fabs(pa[i] - pb[i])));
  std::printf("  mean/std: max |a - b| = %.4f\n", diff);
  EXPECT_GT(diff, 0.05);
}

TEST(Preprocess, LocalContrastConstantImageIsZeroAndFinite) {
  TestImage img = Make(5, 3, PixelFormat::kRGB8);
  std::fill(img.px.begin(), img.px.end(), 200);
  PreprocessConfig cfg = Cfg(7, 4, 3);
  cfg.norm = NormMode::kLocalContrast;
  cfg.lcn_sigma = 64.0f;  // kernel far larger than the image: reflection wraps
  std::vector<float> out = RunPre(img, cfg);
  for (float v : out) {
    ASSERT_TRUE(std::isfinite(v));
    EXPECT_NEAR(v, 0.0f, 1e-3);
  }
}

// ---- validation -----------------------------------------------------------------------------

TEST(Preprocess, RejectsBadInput) {
  TestImage img = Make(8, 8, PixelFormat::kRGB8);
  float out[64 * 3];
  PreprocessScratch s;
  const PreprocessConfig ok = Cfg(8, 8, 3);
  EXPECT_TRUE(Preprocess(img.view(), ok, {}, out, &s, nullptr).ok());
  EXPECT_TRUE(Preprocess(img.view(), ok, {}, out, nullptr, nullptr).ok());
  ImageView v = img.view();
  v.data = nullptr;
  EXPECT_EQ(Preprocess(v, ok, {}, out, &s, nullptr).code(), ErrorCode::kInvalidArgument);
  v = img.view();
  v.width = 0;
  EXPECT_EQ(Preprocess(v, ok, {}, out, &s, nullptr).code(), ErrorCode::kInvalidArgument);
  v = img.view();
  v.height = -3;
  EXPECT_EQ(Preprocess(v, ok, {}, out, &s, nullptr).code(), ErrorCode::kInvalidArgument);
  v = img.view();
  v.stride = 8 * 3 - 1;
  EXPECT_EQ(Preprocess(v, ok, {}, out, &s, nullptr).code(), ErrorCode::kInvalidArgument);
  v = img.view();
  v.stride = -24;
  EXPECT_EQ(Preprocess(v, ok, {}, out, &s, nullptr).code(), ErrorCode::kInvalidArgument);
  v = img.view();
  v.format = static_cast<PixelFormat>(2);
  EXPECT_EQ(Preprocess(v, ok, {}, out, &s, nullptr).code(), ErrorCode::kInvalidArgument);
  v = img.view();
  v.width = kMaxImageSide + 1;
  EXPECT_EQ(Preprocess(v, ok, {}, out, &s, nullptr).code(), ErrorCode::kLimitExceeded);
  EXPECT_EQ(Preprocess(img.view(), ok, {}, nullptr, &s, nullptr).code(),
            ErrorCode::kInvalidArgument);

  std::vector<PreprocessConfig> bad;
  auto add = [&](auto f) {
    PreprocessConfig c = ok;
    f(c);
    bad.push_back(c);
  };
  add([](PreprocessConfig& c) { c.resize_w = 0; });
  add([](PreprocessConfig& c) { c.resize_h = -1; });
  add([](PreprocessConfig& c) { c.resize_w = kMaxModelInputSide + 1; });
  add([](PreprocessConfig& c) { c.crop = {4, 4, 5, 4}; });
  add([](PreprocessConfig& c) { c.crop = {-1, 0, 4, 4}; });
  add([](PreprocessConfig& c) { c.crop = {0, 0, 4, 0}; });
  add([](PreprocessConfig& c) { c.crop = {2147483647, 0, 4, 4}; });
  add([](PreprocessConfig& c) { c.channels = 2; });
  add([](PreprocessConfig& c) { c.channels = 4; });
  add([](PreprocessConfig& c) { c.scale = NAN; });
  add([](PreprocessConfig& c) { c.scale = 0; });
  add([](PreprocessConfig& c) { c.mean[2] = INFINITY; });
  add([](PreprocessConfig& c) { c.std[1] = 0; });
  add([](PreprocessConfig& c) { c.std[0] = NAN; });
  add([](PreprocessConfig& c) { c.norm = static_cast<NormMode>(7); });
  add([](PreprocessConfig& c) {
    c.norm = NormMode::kLocalContrast;
    c.lcn_sigma = 0;
  });
  add([](PreprocessConfig& c) {
    c.norm = NormMode::kLocalContrast;
    c.lcn_sigma = 1e9f;
  });
  add([](PreprocessConfig& c) {
    c.norm = NormMode::kLocalContrast;
    c.lcn_eps = -1;
  });
  for (size_t i = 0; i < bad.size(); ++i) {
    Status st = Preprocess(img.view(), bad[i], {}, out, &s, nullptr);
    EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument) << "case " << i << ": " << st.ToString();
    EXPECT_FALSE(st.message().empty());
    EXPECT_FALSE(bad[i].Validate().ok());
  }
  // A 1-channel model does not care about std[1], std[2].
  PreprocessConfig one = Cfg(8, 8, 1);
  one.std[1] = 0;
  EXPECT_TRUE(one.Validate().ok());
}

TEST(Preprocess, RandomShapesNeverCrash) {
  std::mt19937 rng(5);
  PreprocessScratch s;
  std::vector<float> out;
  for (int iter = 0; iter < 300; ++iter) {
    const PixelFormat f = iter % 3 == 0   ? PixelFormat::kGray8
                          : iter % 3 == 1 ? PixelFormat::kRGB8
                                          : PixelFormat::kRGBA8;
    TestImage img = Make(1 + rng() % 70, 1 + rng() % 70, f);
    for (auto& p : img.px) p = rng() % 256;
    PreprocessConfig c = Cfg(1 + rng() % 90, 1 + rng() % 90, rng() % 2 ? 3 : 1);
    if (rng() % 2) {
      c.crop.x = rng() % c.resize_w;
      c.crop.y = rng() % c.resize_h;
      c.crop.w = 1 + rng() % (c.resize_w - c.crop.x);
      c.crop.h = 1 + rng() % (c.resize_h - c.crop.y);
    }
    if (rng() % 3 == 0) {
      c.norm = NormMode::kLocalContrast;
      c.lcn_sigma = 0.1f + (rng() % 200) / 10.0f;
    }
    std::uniform_real_distribution<float> u(-20.0f, 90.0f);
    RectF roi = rng() % 2 ? RectF{} : RectF{u(rng), u(rng), u(rng), u(rng)};
    out.assign(static_cast<size_t>(c.out_w()) * c.out_h() * c.channels, 0.f);
    RectF cov;
    Status st = Preprocess(img.view(), c, roi, out.data(), &s, &cov);
    if (!st.ok()) {
      EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument) << st.ToString();
      continue;
    }
    for (float v : out) ASSERT_TRUE(std::isfinite(v));
    EXPECT_GE(cov.x, -1e-3f);
    EXPECT_LE(cov.x + cov.w, img.w + 1e-3f);
  }
}

TEST(Preprocess, SteadyStateDoesNotAllocate) {
  TestImage img = Make(320, 240, PixelFormat::kRGBA8);
  for (size_t i = 0; i < img.px.size(); ++i) img.px[i] = static_cast<uint8_t>(i * 31);
  for (NormMode mode : {NormMode::kMeanStd, NormMode::kLocalContrast}) {
    PreprocessConfig cfg = Cfg(64, 64, 3, {16, 16, 32, 32});
    cfg.norm = mode;
    std::vector<float> out(32 * 32 * 3);
    PreprocessScratch s;
    RectF cov;
    ASSERT_TRUE(Preprocess(img.view(), cfg, {3.5f, 7, 200, 150}, out.data(), &s, &cov).ok());
    const long before = g_allocs.load();
    for (int i = 0; i < 5; ++i) {
      Status st = Preprocess(img.view(), cfg, {3.5f, 7, 200, 150}, out.data(), &s, &cov);
      ASSERT_TRUE(st.ok());
    }
    EXPECT_EQ(g_allocs.load() - before, 0) << "mode " << static_cast<int>(mode);
  }
}

// ---- fixed pixel scale (mirror-padded canvas) -------------------------------

PreprocessConfig ScaleCfg(int canvas_w, int canvas_h, float pixel_scale) {
  PreprocessConfig c = Cfg(canvas_w, canvas_h, 1);
  c.pixel_scale = pixel_scale;
  return c;
}

// A 5x3 image at scale 1 on a 9x7 canvas: the image at (2, 2), mirrored
// (half-sample symmetric) around it, values exact.
TEST(PreprocessPixelScale, SmallImageIsCentredAndMirrored) {
  TestImage img = Make(5, 3, PixelFormat::kGray8);
  for (int y = 0; y < 3; ++y)
    for (int x = 0; x < 5; ++x) img.at(x, y, 0) = static_cast<uint8_t>(10 * y + x);
  RectF cov;
  std::vector<float> out = RunPre(img, ScaleCfg(9, 7, 1.0f), {}, &cov);
  auto mirror = [](int u, int n) {
    u %= 2 * n;
    if (u < 0) u += 2 * n;
    return u < n ? u : 2 * n - 1 - u;
  };
  for (int y = 0; y < 7; ++y)
    for (int x = 0; x < 9; ++x) {
      const int sx = mirror(x - 2, 5), sy = mirror(y - 2, 3);
      EXPECT_FLOAT_EQ(out[y * 9 + x], float(10 * sy + sx)) << x << "," << y;
    }
  // The canvas in input pixels extends 2 pixels beyond the image on each side.
  EXPECT_FLOAT_EQ(cov.x, -2);
  EXPECT_FLOAT_EQ(cov.y, -2);
  EXPECT_FLOAT_EQ(cov.w, 9);
  EXPECT_FLOAT_EQ(cov.h, 7);
  Result<RectI> content = PreprocessContent(ScaleCfg(9, 7, 1.0f), 5, 3, {});
  ASSERT_TRUE(content.ok());
  EXPECT_EQ(content->x, 2);
  EXPECT_EQ(content->y, 2);
  EXPECT_EQ(content->w, 5);
  EXPECT_EQ(content->h, 3);
}

// The pixel scale keeps the aspect ratio: a 40x10 stripe image at 0.5 is a
// 20x5 image (box-averaged exactly), not stretched to the canvas.
TEST(PreprocessPixelScale, KeepsAspectAndScale) {
  TestImage img = Make(40, 10, PixelFormat::kGray8);
  for (int y = 0; y < 10; ++y)
    for (int x = 0; x < 40; ++x) img.at(x, y, 0) = static_cast<uint8_t>(x);
  std::vector<float> out = RunPre(img, ScaleCfg(24, 24, 0.5f));
  Result<RectI> c = PreprocessContent(ScaleCfg(24, 24, 0.5f), 40, 10, {});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->w, 20);
  EXPECT_EQ(c->h, 5);
  EXPECT_EQ(c->x, 2);
  EXPECT_EQ(c->y, 9);
  for (int x = 0; x < 20; ++x) EXPECT_FLOAT_EQ(out[(c->y + 2) * 24 + c->x + x], 2 * x + 0.5f);
}

// Larger than the canvas: the centre is taken, nothing is padded, and the
// covered rectangle is that centre in input pixels.
TEST(PreprocessPixelScale, LargeImageIsCentreCropped) {
  TestImage img = Make(100, 50, PixelFormat::kGray8);
  for (int y = 0; y < 50; ++y)
    for (int x = 0; x < 100; ++x) img.at(x, y, 0) = static_cast<uint8_t>(x + y);
  RectF cov;
  std::vector<float> out = RunPre(img, ScaleCfg(20, 10, 1.0f), {}, &cov);
  EXPECT_FLOAT_EQ(cov.x, 40);
  EXPECT_FLOAT_EQ(cov.y, 20);
  EXPECT_FLOAT_EQ(cov.w, 20);
  EXPECT_FLOAT_EQ(cov.h, 10);
  for (int y = 0; y < 10; ++y)
    for (int x = 0; x < 20; ++x) EXPECT_FLOAT_EQ(out[y * 20 + x], float(40 + x + 20 + y));
  Result<RectI> c = PreprocessContent(ScaleCfg(20, 10, 1.0f), 100, 50, {});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->x, 0);
  EXPECT_EQ(c->w, 20);
}

// LCN normalises the image alone: the padding is a mirror of normalised
// values, so a constant image stays exactly 0 everywhere, and the image part
// equals the LCN of the same image preprocessed without padding.
TEST(PreprocessPixelScale, NormalisesTheImageNotThePadding) {
  TestImage img = Make(13, 11, PixelFormat::kRGB8);
  std::mt19937 rng(5);
  for (auto& p : img.px) p = static_cast<uint8_t>(rng() % 256);
  PreprocessConfig padded = ScaleCfg(32, 24, 1.0f);
  padded.channels = 3;
  padded.norm = NormMode::kLocalContrast;
  padded.lcn_sigma = 2;
  PreprocessConfig alone = Cfg(13, 11, 3);
  alone.norm = NormMode::kLocalContrast;
  alone.lcn_sigma = 2;
  std::vector<float> a = RunPre(img, padded), b = RunPre(img, alone);
  Result<RectI> c = PreprocessContent(padded, 13, 11, {});
  ASSERT_TRUE(c.ok());
  for (int y = 0; y < 11; ++y)
    for (int x = 0; x < 13; ++x)
      for (int ch = 0; ch < 3; ++ch)
        EXPECT_FLOAT_EQ(a[((c->y + y) * 32 + c->x + x) * 3 + ch], b[(y * 13 + x) * 3 + ch]);
}

TEST(PreprocessPixelScale, ContentCells) {
  // 8x8 input, 2x2 map (cell centres at 2 and 6): content x 3..8 keeps cell 1 only.
  RectI r = ContentCells({3, 0, 5, 8}, 8, 8, 2, 2);
  EXPECT_EQ(r.x, 1);
  EXPECT_EQ(r.w, 1);
  EXPECT_EQ(r.y, 0);
  EXPECT_EQ(r.h, 2);
  // Content on no centre (x 3..5, centre 4): the cell under its centre
  // (cell 1 covers 4..8), never empty.
  r = ContentCells({3, 3, 2, 2}, 8, 8, 2, 2);
  EXPECT_EQ(r.w, 1);
  EXPECT_EQ(r.h, 1);
  EXPECT_EQ(r.x, 1);
  // Whole input: all cells; a 1x1 map: its one cell.
  r = ContentCells({0, 0, 504, 320}, 504, 320, 126, 80);
  EXPECT_EQ(r.x, 0);
  EXPECT_EQ(r.w, 126);
  EXPECT_EQ(r.h, 80);
  r = ContentCells({100, 10, 5, 5}, 504, 320, 1, 1);
  EXPECT_EQ(r.w * r.h, 1);
  // Map stride 4: content 10..30 keeps the cells whose centres 4j+2 lie in it.
  r = ContentCells({10, 0, 20, 8}, 40, 8, 10, 2);
  EXPECT_EQ(r.x, 2);  // centre 10
  EXPECT_EQ(r.w, 5);  // centres 10, 14, 18, 22, 26
}

TEST(PreprocessPixelScale, RejectsBadConfig) {
  TestImage img = Make(8, 8, PixelFormat::kGray8);
  float out[64];
  for (float bad : {-1.0f, 65.0f, NAN, INFINITY}) {
    PreprocessConfig c = ScaleCfg(8, 8, bad);
    EXPECT_EQ(Preprocess(img.view(), c, {}, out, nullptr, nullptr).code(),
              ErrorCode::kInvalidArgument)
        << bad;
  }
  PreprocessConfig c = ScaleCfg(8, 8, 1.0f);
  c.crop = {0, 0, 4, 4};
  EXPECT_EQ(c.Validate().code(), ErrorCode::kInvalidArgument);
  // A huge scale of a big image stays bounded: only the canvas is computed.
  TestImage big = Make(4000, 3000, PixelFormat::kGray8);
  std::vector<float> o(64);
  EXPECT_TRUE(Preprocess(big.view(), ScaleCfg(8, 8, 64.0f), {}, o.data(), nullptr, nullptr).ok());
}

TEST(PreprocessPixelScale, SteadyStateDoesNotAllocate) {
  TestImage img = Make(50, 30, PixelFormat::kRGB8);
  for (size_t i = 0; i < img.px.size(); ++i) img.px[i] = static_cast<uint8_t>(i * 13);
  PreprocessConfig cfg = ScaleCfg(64, 48, 0.8f);
  cfg.channels = 3;
  cfg.norm = NormMode::kLocalContrast;
  std::vector<float> out(64 * 48 * 3);
  PreprocessScratch s;
  ASSERT_TRUE(Preprocess(img.view(), cfg, {}, out.data(), &s, nullptr).ok());
  const long before = g_allocs.load();
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(Preprocess(img.view(), cfg, {}, out.data(), &s, nullptr).ok());
  EXPECT_EQ(g_allocs.load() - before, 0);
}

TEST(Preprocess, PixelFormatNames) {
  EXPECT_STREQ(PixelFormatName(PixelFormat::kGray8), "gray");
  EXPECT_STREQ(PixelFormatName(PixelFormat::kRGB8), "rgb");
  EXPECT_STREQ(PixelFormatName(PixelFormat::kRGBA8), "rgba");
}

}  // namespace
}  // namespace flawlens
