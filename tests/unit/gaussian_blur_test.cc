// Tests of image/gaussian_blur (the SIMD separable blur behind LCN and the
// anomaly map blur) against independent double-precision references, and of
// the two places that use it end to end: Preprocess's local contrast
// normalisation and Detector's map blur.
#include "image/gaussian_blur.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "flawlens/detector.h"
#include "image/preprocess.h"
#include "model/model.h"
#include "test_models.h"

namespace flawlens {
namespace {

// The two border rules as first written (preprocess.cc and detector.cc).
int HalfSampleReflect(int j, int n) {
  const int p = 2 * n;
  int m = j % p;
  if (m < 0) m += p;
  return m >= n ? p - 1 - m : m;
}
int Reflect101Loop(int i, int n) {
  if (n == 1) return 0;
  while (i < 0 || i >= n) {
    if (i < 0) i = -i;
    if (i >= n) i = 2 * n - 2 - i;
  }
  return i;
}

std::vector<float> Kernel(double sigma, int r) {
  std::vector<double> k(2 * r + 1);
  double sum = 0;
  for (int i = -r; i <= r; ++i) sum += k[i + r] = std::exp(-0.5 * i * i / (sigma * sigma));
  std::vector<float> f(k.size());
  for (size_t i = 0; i < k.size(); ++i) f[i] = static_cast<float>(k[i] / sum);
  return f;
}

// 2-D blur in double, straight from the definition.
std::vector<double> RefBlur(const std::vector<double>& in, int w, int h,
                            const std::vector<float>& k, int (*border)(int, int)) {
  const int r = static_cast<int>(k.size() / 2);
  std::vector<double> tmp(in.size()), out(in.size());
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      double s = 0;
      for (int i = -r; i <= r; ++i) s += k[i + r] * in[y * w + border(x + i, w)];
      tmp[y * w + x] = s;
    }
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      double s = 0;
      for (int i = -r; i <= r; ++i) s += k[i + r] * tmp[border(y + i, h) * w + x];
      out[y * w + x] = s;
    }
  return out;
}

TEST(GaussianBlur, BorderIndexMatchesTheOriginalRules) {
  for (int n = 1; n <= 9; ++n)
    for (int j = -60; j <= 60; ++j) {
      ASSERT_EQ(BlurBorderIndex(j, n, BlurBorder::kReflect), HalfSampleReflect(j, n)) << j << " " << n;
      ASSERT_EQ(BlurBorderIndex(j, n, BlurBorder::kReflect101), Reflect101Loop(j, n)) << j << " " << n;
    }
}

TEST(GaussianBlur, MatchesDoubleReferenceOnOddShapes) {
  std::mt19937 rng(4242);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (int iter = 0; iter < 150; ++iter) {
    const int w = 1 + rng() % 41, h = 1 + rng() % 37;
    const int r = 1 + rng() % (iter % 5 == 0 ? 70 : 12);  // sometimes far larger than the plane
    const BlurBorder border = iter % 2 ? BlurBorder::kReflect : BlurBorder::kReflect101;
    const std::vector<float> k = Kernel(std::max(0.3, r / 3.0), r);
    std::vector<float> in(static_cast<size_t>(w) * h);
    for (float& v : in) v = u(rng);
    std::vector<double> ind(in.begin(), in.end());
    const std::vector<double> ref =
        RefBlur(ind, w, h, k, border == BlurBorder::kReflect ? HalfSampleReflect : Reflect101Loop);
    std::vector<float> scratch(BlurScratchFloats(w, h, 1, r) + 1, -7.0f);
    std::vector<int> rows(2 * r + 1);
    std::vector<float> out(in.size(), -9.0f), out_ref(in.size());
    scratch.back() = 12345.0f;  // guard: must not be written
    GaussianBlurPlane(in.data(), out.data(), w, h, 1, k.data(), r, border, scratch.data(),
                      rows.data());
    ASSERT_EQ(scratch.back(), 12345.0f);
    std::vector<float> tmp(in.size());
    GaussianBlurPlaneRef(in.data(), out_ref.data(), w, h, k.data(), r, border, tmp.data());
    for (size_t i = 0; i < in.size(); ++i) {
      ASSERT_NEAR(out[i], ref[i], 2e-6) << "iter " << iter << " " << w << "x" << h << " r " << r;
      ASSERT_NEAR(out_ref[i], ref[i], 2e-6);
    }
    // In place gives the same bits.
    std::vector<float> inplace = in;
    GaussianBlurPlane(inplace.data(), inplace.data(), w, h, 1, k.data(), r, border, scratch.data(),
                      rows.data());
    ASSERT_EQ(inplace, out);
  }
}

// Interleaved channels blur exactly like each channel on its own.
TEST(GaussianBlur, InterleavedChannelsEqualSeparatePlanes) {
  std::mt19937 rng(99);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (int iter = 0; iter < 60; ++iter) {
    const int w = 1 + rng() % 29, h = 1 + rng() % 23, c = 1 + iter % 4;
    const int r = 1 + rng() % (iter % 7 == 0 ? 40 : 9);
    const BlurBorder border = iter % 2 ? BlurBorder::kReflect : BlurBorder::kReflect101;
    const std::vector<float> k = Kernel(std::max(0.3, r / 3.0), r);
    const size_t plane = static_cast<size_t>(w) * h;
    std::vector<float> in(plane * c);
    for (float& v : in) v = u(rng);
    std::vector<float> scratch(BlurScratchFloats(w, h, c, r));
    std::vector<int> rows(2 * r + 1);
    std::vector<float> out(in.size());
    GaussianBlurPlane(in.data(), out.data(), w, h, c, k.data(), r, border, scratch.data(),
                      rows.data());
    for (int ch = 0; ch < c; ++ch) {
      std::vector<float> p(plane), q(plane);
      for (size_t i = 0; i < plane; ++i) p[i] = in[i * c + ch];
      GaussianBlurPlane(p.data(), q.data(), w, h, 1, k.data(), r, border, scratch.data(),
                        rows.data());
      for (size_t i = 0; i < plane; ++i) {
        ASSERT_EQ(out[i * c + ch], q[i]) << "iter " << iter << " " << w << "x" << h << "x" << c;
      }
    }
  }
}

// Local contrast normalisation against a double implementation of its
// definition (model/FORMAT.md): v = pixel * scale; d = v - blur(v);
// out = (d / sqrt(blur(d^2) + eps) - mean) / std, half-sample reflect borders.
TEST(GaussianBlur, LocalContrastMatchesDoubleReference) {
  std::mt19937 rng(77);
  for (int iter = 0; iter < 16; ++iter) {
    // input channels x network channels: gray->1, rgb->3, gray->3, rgb->1 (luma)
    const int in_ch = (iter % 4 == 0 || iter % 4 == 2) ? 1 : 3;
    const int ch = (iter % 4 == 0 || iter % 4 == 3) ? 1 : 3;
    const int w = 8 + rng() % 60, h = 8 + rng() % 50;
    const PixelFormat f = in_ch == 3 ? PixelFormat::kRGB8 : PixelFormat::kGray8;
    std::vector<uint8_t> px(static_cast<size_t>(w) * h * in_ch);
    for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>(rng() % 256);
    PreprocessConfig cfg;
    cfg.resize_w = w;  // identity resize: the box filter has one tap of weight 1
    cfg.resize_h = h;
    cfg.channels = ch;
    cfg.norm = NormMode::kLocalContrast;
    cfg.lcn_sigma = iter < 8 ? 8.0f : 1.0f + 0.7f * iter;
    cfg.lcn_eps = 1e-3f;
    for (int c = 0; c < 3; ++c) cfg.mean[c] = 0.05f * c, cfg.std[c] = 0.8f + 0.1f * c;
    std::vector<float> out(static_cast<size_t>(w) * h * ch);
    PreprocessScratch s;
    ASSERT_TRUE(Preprocess({px.data(), w, h, f, 0}, cfg, {}, out.data(), &s, nullptr).ok());
    const int r = static_cast<int>(std::ceil(3.0f * cfg.lcn_sigma));
    const std::vector<float> k = Kernel(cfg.lcn_sigma, r);
    const int work_ch = std::min(in_ch, ch);
    for (int c = 0; c < work_ch; ++c) {
      std::vector<double> v(static_cast<size_t>(w) * h);
      for (size_t p = 0; p < v.size(); ++p) {
        const uint8_t* q = &px[p * in_ch];
        const double pixel = in_ch == ch || in_ch == 1
                                 ? q[c]
                                 : 0.299 * q[0] + 0.587 * q[1] + 0.114 * q[2];
        v[p] = pixel * double(cfg.scale);
      }
      const std::vector<double> mu = RefBlur(v, w, h, k, HalfSampleReflect);
      std::vector<double> d(v.size()), d2(v.size());
      for (size_t p = 0; p < v.size(); ++p) d[p] = v[p] - mu[p], d2[p] = d[p] * d[p];
      const std::vector<double> var = RefBlur(d2, w, h, k, HalfSampleReflect);
      for (size_t p = 0; p < v.size(); ++p) {
        const double x = d[p] / std::sqrt(var[p] + cfg.lcn_eps);
        for (int oc = 0; oc < ch; ++oc) {
          if (work_ch == ch && oc != c) continue;  // one network channel per working channel
          const double ref = (x - cfg.mean[oc]) / cfg.std[oc];
          ASSERT_NEAR(out[p * ch + oc], ref, 2e-4)
              << "iter " << iter << " " << in_ch << "->" << ch << " c " << oc << " p " << p;
        }
      }
    }
  }
}

// Detector's map blur (reflect-101) and sigmoid, end to end: a network that
// passes its input through (relu of a non-negative image), so the map is the
// preprocessed image.
TEST(GaussianBlur, DetectorMapBlurMatchesDoubleReference) {
  const int w = 23, h = 17;
  std::mt19937 rng(5);
  std::vector<uint8_t> px(static_cast<size_t>(w) * h);
  for (uint8_t& p : px) p = static_cast<uint8_t>(rng() % 256);
  for (const char* post : {R"({"blur_sigma":1.7,"reduce":"max"})",
                           R"({"blur_sigma":3,"sigmoid":true,"reduce":"mean"})",
                           R"({"blur_sigma":0.4,"reduce":"topk_mean","topk_fraction":0.1})"}) {
    SCOPED_TRACE(post);
    testing::SpecBuilder b(h, w, 1);
    b.Activation("id", "input", "relu");
    PreprocessConfig pre;
    pre.resize_w = w;
    pre.resize_h = h;
    pre.channels = 1;
    pre.scale = 1.0f / 255.0f;
    const std::vector<uint8_t> bytes = WriteModel(b.Build("id", pre, post));
    auto det = Detector::Create(bytes.data(), bytes.size(), {"ref", 1});
    ASSERT_TRUE(det.ok()) << det.status().ToString();
    auto r = (*det)->Detect({px.data(), w, h, PixelFormat::kGray8, 0});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    const std::string p = post;
    const float sigma = p.find("1.7") != std::string::npos ? 1.7f : p.find("0.4") != std::string::npos ? 0.4f : 3.0f;
    // The detector's kernel: radius ceil(3 sigma), normalised in float.
    const int rad = std::max(1, static_cast<int>(std::ceil(3.0f * sigma)));
    std::vector<double> v(px.size());
    for (size_t i = 0; i < v.size(); ++i) {
      v[i] = px[i] * double(1.0f / 255.0f);
      if (p.find("sigmoid") != std::string::npos) v[i] = 1.0 / (1.0 + std::exp(-v[i]));
    }
    const std::vector<double> ref = RefBlur(v, w, h, Kernel(sigma, rad), Reflect101Loop);
    ASSERT_EQ((*r)->map.size(), ref.size());
    for (size_t i = 0; i < ref.size(); ++i) ASSERT_NEAR((*r)->map[i], ref[i], 2e-6) << i;
  }
}

}  // namespace
}  // namespace flawlens
