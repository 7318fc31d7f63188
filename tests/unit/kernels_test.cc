// Kernel tests: the SIMD128 backend (and, natively, XNNPACK) against the
// scalar reference on awkward shapes: channels 1, 3, 13, 127; odd sizes;
// stride 2; asymmetric padding; dilation 2; depthwise and grouped convs; every
// activation. Plus a few hand-computed checks of the reference itself.
//
// Tolerance: |got - ref| <= abs + rel * |ref| with abs = rel = 1e-4 (float
// accumulation in a different order, mul+add vs FMA, polynomial exp). The
// Winograd F(4x4,3x3) kernel uses abs = rel = 5e-4 -- its transforms scale
// values by up to ~10x (points 0, +-1, +-2) before the products are summed,
// so rounding errors are amplified; measured max error is printed.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "nn/backend.h"
#include "nn/graph.h"
#include "kernels/backends.h"

namespace flawlens {
namespace {

constexpr double kAbsTol = 1e-4, kRelTol = 1e-4;
constexpr double kWinogradTol = 5e-4;
constexpr float kCanary = 12345.678f;
constexpr int kGuard = 16;  // canary floats after every output / workspace

struct TestCase {
  std::string name;
  Node node;
  std::vector<Shape> ins;
  Shape out;
  std::vector<float> weight, bias;
  float input_range = 1.0f;
  int grid_h = 0, grid_w = 0;  // position_mahalanobis whitening regions (0: one per cell)
};

int OutSize(int in, int k, int s, int d, int pb, int pa) { return (in + pb + pa - ((k - 1) * d + 1)) / s + 1; }

std::vector<float> Random(size_t n, uint32_t seed, float range) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-range, range);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

void BindWeights(TestCase* tc) {
  Node& n = tc->node;
  n.weight.data = tc->weight.empty() ? nullptr : tc->weight.data();
  n.bias.data = tc->bias.empty() ? nullptr : tc->bias.data();
  n.weight.shape.clear();
  n.bias.shape.clear();
  const Shape& in = tc->ins[0];
  if (n.op == OpType::kConv2d) {
    n.weight.shape = {n.out_channels, n.kernel_h, n.kernel_w, in.c / n.groups};
  } else if (n.op == OpType::kDense) {
    n.weight.shape = {n.out_channels, in.elements()};
  } else if (n.op == OpType::kPositionMahalanobis) {
    n.weight.shape = {tc->grid_h ? tc->grid_h : in.h, tc->grid_w ? tc->grid_w : in.w, in.c, in.c};
  }
  if (n.op == OpType::kPositionMahalanobis) {
    n.bias.shape = {in.h, in.w, in.c};
  } else if (!tc->bias.empty()) {
    n.bias.shape = {static_cast<int64_t>(tc->bias.size())};
  }
}

struct ConvCfg {
  int h, w, c, oc, k_h, k_w, s_h, s_w, d_h, d_w, pt, pl, pb, pr, groups;
  bool bias;
  Activation act;
};

TestCase MakeConv(const ConvCfg& g, uint32_t seed) {
  TestCase tc;
  Node& n = tc.node;
  n.op = OpType::kConv2d;
  n.kernel_h = g.k_h; n.kernel_w = g.k_w;
  n.stride_h = g.s_h; n.stride_w = g.s_w;
  n.dilation_h = g.d_h; n.dilation_w = g.d_w;
  n.pad_top = g.pt; n.pad_left = g.pl; n.pad_bottom = g.pb; n.pad_right = g.pr;
  n.groups = g.groups;
  n.out_channels = g.oc;
  n.activation = g.act;
  n.alpha = 0.1f;
  tc.ins = {{g.h, g.w, g.c}};
  tc.out = {OutSize(g.h, g.k_h, g.s_h, g.d_h, g.pt, g.pb), OutSize(g.w, g.k_w, g.s_w, g.d_w, g.pl, g.pr), g.oc};
  const int fan_in = g.k_h * g.k_w * (g.c / g.groups);
  tc.weight = Random(static_cast<size_t>(g.oc) * fan_in, seed, 1.7f / std::sqrt(static_cast<float>(fan_in)));
  if (g.bias) tc.bias = Random(g.oc, seed + 1, 0.5f);
  char buf[200];
  snprintf(buf, sizeof(buf), "conv %dx%dx%d->%d k%dx%d s%dx%d d%dx%d pad(t%d l%d b%d r%d) g%d bias%d %s", g.h, g.w,
           g.c, g.oc, g.k_h, g.k_w, g.s_h, g.s_w, g.d_h, g.d_w, g.pt, g.pl, g.pb, g.pr, g.groups, g.bias ? 1 : 0,
           ActivationName(g.act));
  tc.name = buf;
  return tc;
}

// Sweeps over the shapes the specialised SIMD paths split on: pointwise (1x1
// stride 1, no padding) GEMM tails (pixel count not a multiple of the 4-pixel
// block, output channels not a multiple of 8, input channels not a multiple
// of 4), and 3x3 depthwise rows (widths 1..17: no interior, a short interior,
// border columns; channels 1..17 around the 4-channel blocks; stride 1 and 2;
// TF "SAME" and symmetric padding; dilation 2), with the activations the
// kernels fuse into their stores.
std::vector<ConvCfg> SweepConvCfgs() {
  using A = Activation;
  const A acts[] = {A::kNone, A::kRelu, A::kRelu6, A::kHardSwish, A::kHardSigmoid, A::kSilu};
  std::vector<ConvCfg> cfgs;
  int i = 0;
  for (int w = 1; w <= 17; ++w) {
    for (int c : {1, 3, 4, 5, 8, 13, 17}) {
      const A act = acts[i++ % 6];
      const int oc = (w * 3 + c) % 19 + 1;  // 1..19: every tail of an 8-wide block
      cfgs.push_back({w % 3 + 1, w, c, oc, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, w % 2 == 0, act});
    }
  }
  for (int w = 1; w <= 17; ++w) {
    for (int c : {1, 3, 4, 5, 7, 8, 12, 13, 17}) {
      const A act = acts[i++ % 6];
      const int h = (w + c) % 5 + 1;
      cfgs.push_back({h, w, c, c, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, c, true, act});      // s1 same
      // s2 TF "SAME": padding total (out - 1) * 2 + 3 - in, the odd one at the bottom / right.
      const int hs = h + 1, pad_h = (hs + 1) / 2 * 2 + 1 - hs, pad_w = (w + 1) / 2 * 2 + 1 - w;
      cfgs.push_back({hs, w, c, c, 3, 3, 2, 2, 1, 1, pad_h / 2, pad_w / 2, pad_h - pad_h / 2, pad_w - pad_w / 2, c,
                      w % 2 == 1, act});
      cfgs.push_back({h + 2, w, c, c, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, c, true, act});  // s2 symmetric
      if (w >= 5) cfgs.push_back({h + 4, w, c, c, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, c, false, act});  // dilation 2
    }
  }
  // Wide channels: a row's interior runs in several chunks of pixels.
  cfgs.push_back({5, 33, 64, 64, 3, 3, 2, 2, 1, 1, 0, 0, 1, 1, 64, true, A::kRelu});
  cfgs.push_back({4, 21, 160, 160, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 160, true, A::kHardSwish});
  cfgs.push_back({3, 30, 45, 45, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 45, false, A::kRelu6});
  return cfgs;
}

std::vector<TestCase> ConvCases() {
  using A = Activation;
  std::vector<ConvCfg> cfgs = {
      // h  w   c   oc  kh kw sh sw dh dw pt pl pb pr g  bias act
      {7, 11, 1, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, true, A::kNone},
      {7, 11, 3, 13, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, true, A::kRelu},
      {7, 11, 13, 13, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, true, A::kRelu},        // winograd
      {7, 11, 127, 13, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, false, A::kNone},      // winograd
      {9, 10, 13, 127, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0, 1, true, A::kLeakyRelu},  // winograd valid
      {16, 16, 32, 32, 3, 3, 1, 1, 1, 1, 0, 1, 1, 2, 1, true, A::kSilu},       // winograd asym pad
      {8, 8, 8, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, true, A::kSigmoid},        // winograd
      {1, 1, 13, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, true, A::kNone},
      {1, 1, 127, 127, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, true, A::kRelu},
      {7, 11, 13, 127, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, true, A::kNone},
      {7, 11, 3, 13, 3, 3, 2, 2, 1, 1, 0, 0, 1, 1, 1, true, A::kRelu},         // TF same s2
      {8, 8, 13, 32, 3, 3, 2, 2, 1, 1, 0, 0, 1, 1, 1, true, A::kRelu},
      {7, 11, 13, 13, 3, 3, 2, 1, 1, 1, 0, 1, 2, 1, 1, true, A::kLeakyRelu},   // asym pad, mixed stride
      {11, 7, 3, 13, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, 1, true, A::kSilu},        // dilation 2
      {11, 13, 13, 3, 3, 3, 1, 1, 2, 1, 1, 0, 3, 2, 1, false, A::kSigmoid},   // dilation h only
      {12, 12, 13, 13, 5, 5, 1, 1, 1, 1, 2, 2, 2, 2, 1, true, A::kRelu},
      {7, 11, 13, 7, 1, 3, 1, 2, 1, 1, 0, 1, 0, 1, 1, true, A::kNone},
      {64, 64, 3, 32, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0, 1, true, A::kRelu},         // net A conv1
      {31, 31, 32, 64, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0, 1, true, A::kRelu},        // net A conv2
      {32, 32, 64, 128, 3, 3, 2, 2, 1, 1, 0, 0, 1, 1, 1, true, A::kRelu},       // net B s2
      {16, 16, 128, 128, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, true, A::kRelu},      // net B s1
      // depthwise
      {7, 11, 13, 13, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 13, true, A::kRelu},
      {7, 11, 127, 127, 3, 3, 2, 2, 1, 1, 0, 1, 1, 0, 127, true, A::kSilu},
      {9, 9, 3, 3, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, 3, false, A::kNone},
      {7, 11, 1, 1, 5, 5, 1, 1, 1, 1, 2, 2, 2, 2, 1, true, A::kLeakyRelu},
      // grouped (simd: unsupported -> ref fallback; still checked vs XNNPACK)
      {7, 11, 12, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 3, true, A::kRelu},
      {7, 11, 13, 26, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 13, true, A::kNone},
      // MobileNetV3 shapes: TF "SAME" padding (stride 2: the extra row and
      // column at the bottom / right), relu6 / hard_swish / hard_sigmoid.
      {17, 15, 3, 16, 3, 3, 2, 2, 1, 1, 0, 0, 1, 1, 1, true, A::kHardSwish},    // stem
      {9, 9, 16, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 16, true, A::kRelu6},       // dw 3x3 s1
      {10, 9, 72, 72, 3, 3, 2, 2, 1, 1, 0, 0, 1, 1, 72, true, A::kRelu6},      // dw 3x3 s2 even
      {9, 10, 17, 17, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 17, true, A::kHardSwish},  // dw 3x3 s2 odd
      {10, 10, 72, 72, 5, 5, 2, 2, 1, 1, 1, 1, 2, 2, 72, true, A::kRelu6},     // dw 5x5 s2
      {7, 9, 120, 120, 5, 5, 1, 1, 1, 1, 2, 2, 2, 2, 120, true, A::kHardSwish},  // dw 5x5 s1
      {5, 6, 13, 13, 5, 5, 2, 2, 1, 1, 1, 2, 2, 2, 13, false, A::kNone},       // dw 5x5 s2 odd
      {3, 4, 200, 200, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 200, true, A::kHardSwish},  // dw c200
      {2, 3, 184, 184, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 184, true, A::kHardSigmoid},
      {9, 9, 16, 72, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, true, A::kRelu6},        // expand
      {5, 7, 240, 40, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, true, A::kNone},        // project
      {5, 3, 40, 240, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, true, A::kHardSwish},   // expand
      {1, 1, 72, 24, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, true, A::kRelu},         // SE squeeze
      {1, 1, 24, 72, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, true, A::kHardSigmoid},  // SE excite
      {8, 8, 13, 13, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, true, A::kRelu6},        // winograd relu6
      {8, 8, 13, 17, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, true, A::kHardSwish},    // winograd
  };
  std::vector<TestCase> cases;
  uint32_t seed = 100;
  for (const auto& g : cfgs) cases.push_back(MakeConv(g, seed += 7));
  for (const auto& g : SweepConvCfgs()) cases.push_back(MakeConv(g, seed += 7));
  return cases;
}

TestCase MakeSimple(OpType op, std::vector<Shape> ins, Shape out, const std::string& name) {
  TestCase tc;
  tc.node.op = op;
  tc.ins = std::move(ins);
  tc.out = out;
  tc.name = name;
  return tc;
}

// The MobileNetV3 path: relu6 / hard_swish / hard_sigmoid, mul,
// position_mahalanobis.
std::vector<TestCase> MobileCases() {
  std::vector<TestCase> cases;
  uint32_t seed = 0;
  const int channels[] = {1, 3, 13, 127};
  // The MobileNetV3 activations: with the float16-rounded 1/6 TF stores, with
  // exactly 1/6 (XNNPACK's own hardswish) and with an arbitrary alpha.
  const Activation mobile_acts[] = {Activation::kRelu6, Activation::kHardSwish,
                                    Activation::kHardSigmoid};
  for (Activation a : mobile_acts) {
    for (float alpha : {0.1666259765625f, 1.0f / 6.0f, 0.3f}) {
      if (a == Activation::kRelu6 && alpha != 0.3f) continue;  // relu6 has no alpha
      for (Shape s : {Shape{1, 1, 1}, Shape{1, 1, 3}, Shape{7, 11, 13}, Shape{3, 5, 127}}) {
        TestCase tc = MakeSimple(OpType::kActivation, {s}, s, std::string("activation ") +
                                                                  ActivationName(a) + " alpha " +
                                                                  std::to_string(alpha));
        tc.node.activation = a;
        tc.node.alpha = alpha;
        tc.input_range = 8.0f;  // both clamps and the linear part
        cases.push_back(tc);
      }
    }
  }
  // mul: same shape, and 1 x 1 x C broadcast over the map (squeeze-excitation)
  for (Activation a : {Activation::kNone, Activation::kRelu, Activation::kRelu6,
                       Activation::kHardSwish, Activation::kHardSigmoid, Activation::kSigmoid}) {
    for (int c : channels) {
      for (bool broadcast : {false, true}) {
        const Shape s{5, 7, c};
        const Shape b = broadcast ? Shape{1, 1, c} : s;
        TestCase tc = MakeSimple(OpType::kMul, {s, b}, s,
                                 std::string(broadcast ? "mul bcast " : "mul ") +
                                     ActivationName(a) + " c" + std::to_string(c));
        tc.node.activation = a;
        tc.node.alpha = DefaultAlpha(a);
        tc.input_range = 3.0f;
        cases.push_back(tc);
      }
    }
  }
  // position_mahalanobis: d = 1, 3 (< one vector), 4, 13, 17 (row and
  // column tails)
  seed = 700;
  for (Shape s : {Shape{1, 1, 1}, Shape{3, 5, 3}, Shape{2, 2, 4}, Shape{4, 3, 13}, Shape{2, 3, 17}}) {
    TestCase tc = MakeSimple(OpType::kPositionMahalanobis, {s}, {s.h, s.w, 1},
                             "position_mahalanobis " + std::to_string(s.h) + "x" +
                                 std::to_string(s.w) + "x" + std::to_string(s.c));
    tc.weight = Random(static_cast<size_t>(s.elements()) * s.c, seed += 3,
                       1.0f / std::sqrt(static_cast<float>(s.c)));
    tc.bias = Random(static_cast<size_t>(s.elements()), seed + 1, 0.5f);
    cases.push_back(tc);
  }
  // Triangular whitening matrices (Cholesky factors: the SIMD kernel skips
  // columns that are zero at every position), one with an all-zero row and
  // one zero only at some positions.
  for (int variant = 0; variant < 3; ++variant) {
    const Shape s = variant == 0 ? Shape{3, 4, 13} : variant == 1 ? Shape{2, 2, 9} : Shape{2, 3, 32};
    TestCase tc = MakeSimple(OpType::kPositionMahalanobis, {s}, {s.h, s.w, 1},
                             "position_mahalanobis triangular " + std::to_string(variant) + " " +
                                 std::to_string(s.h) + "x" + std::to_string(s.w) + "x" + std::to_string(s.c));
    tc.weight = Random(static_cast<size_t>(s.elements()) * s.c, seed += 3, 1.0f / std::sqrt(static_cast<float>(s.c)));
    tc.bias = Random(static_cast<size_t>(s.elements()), seed + 1, 0.5f);
    const int d = s.c;
    for (int64_t p = 0; p < int64_t{s.h} * s.w; ++p) {
      for (int k = 0; k < d; ++k) {
        for (int j = 0; j < d; ++j) {
          float& a = tc.weight[(p * d + k) * d + j];
          const bool lower = j <= k, upper = j >= k;
          if (variant == 0 && !lower) a = 0.0f;
          if (variant == 1 && (!upper || k == 4)) a = 0.0f;
          if (variant == 2 && !lower && (p % 2 == 0 || j > k + 5)) a = 0.0f;
        }
      }
    }
    cases.push_back(tc);
  }
  // Whitening matrices shared by regions of cells: one for the map, a
  // coarser grid that does not divide the map, and a column of regions.
  for (int variant = 0; variant < 3; ++variant) {
    const Shape s = variant == 0 ? Shape{3, 5, 6} : variant == 1 ? Shape{7, 5, 9} : Shape{4, 6, 4};
    TestCase tc = MakeSimple(OpType::kPositionMahalanobis, {s}, {s.h, s.w, 1},
                             "position_mahalanobis regions " + std::to_string(variant));
    tc.grid_h = variant == 0 ? 1 : variant == 1 ? 3 : 4;
    tc.grid_w = variant == 0 ? 1 : variant == 1 ? 2 : 1;
    tc.weight = Random(size_t(tc.grid_h) * tc.grid_w * s.c * s.c, seed += 3,
                       1.0f / std::sqrt(static_cast<float>(s.c)));
    tc.bias = Random(static_cast<size_t>(s.elements()), seed + 1, 0.5f);
    cases.push_back(tc);
  }
  return cases;
}

std::vector<TestCase> OtherCases() {
  std::vector<TestCase> cases;
  const Activation acts[] = {Activation::kNone, Activation::kRelu, Activation::kLeakyRelu, Activation::kSilu,
                             Activation::kSigmoid};
  const int channels[] = {1, 3, 13, 127};
  // activation: includes large magnitudes (exp clamp).
  for (Activation a : acts) {
    if (a == Activation::kNone) continue;  // the graph rejects a standalone 'none'
    for (Shape s : {Shape{1, 1, 1}, Shape{1, 1, 3}, Shape{7, 11, 13}, Shape{3, 5, 127}}) {
      TestCase tc = MakeSimple(OpType::kActivation, {s}, s, std::string("activation ") + ActivationName(a));
      tc.node.activation = a;
      tc.node.alpha = 0.2f;
      tc.input_range = 30.0f;
      cases.push_back(tc);
    }
  }
  // add
  for (Activation a : acts) {
    for (Shape s : {Shape{1, 1, 3}, Shape{7, 11, 13}}) {
      TestCase tc = MakeSimple(OpType::kAdd, {s, s}, s, std::string("add ") + ActivationName(a));
      tc.node.activation = a;
      tc.input_range = 4.0f;
      cases.push_back(tc);
    }
  }
  // pools
  struct PoolCfg { int h, w, k, s, pt, pl, pb, pr, d; bool include; };
  // Graph-valid: padding <= half the effective window; dilation only for max.
  const PoolCfg pools[] = {{7, 11, 2, 2, 0, 0, 0, 0, 1, true},  {7, 11, 3, 2, 1, 1, 1, 1, 1, true},
                           {7, 11, 3, 2, 1, 1, 1, 1, 1, false}, {7, 11, 3, 1, 0, 1, 1, 0, 1, true},
                           {7, 11, 3, 1, 0, 1, 1, 0, 1, false}, {1, 1, 1, 1, 0, 0, 0, 0, 1, true},
                           {9, 9, 3, 1, 2, 2, 2, 2, 2, false},  {6, 6, 2, 2, 1, 1, 1, 1, 1, true},
                           {8, 9, 4, 2, 2, 1, 0, 2, 1, false},  {8, 9, 4, 3, 2, 0, 1, 2, 1, true}};
  for (OpType op : {OpType::kMaxPool2d, OpType::kAvgPool2d}) {
    for (const auto& p : pools) {
      if (op == OpType::kAvgPool2d && p.d > 1) continue;  // avgpool has no dilation
      for (int c : channels) {
        Shape in{p.h, p.w, c};
        Shape out{OutSize(p.h, p.k, p.s, p.d, p.pt, p.pb), OutSize(p.w, p.k, p.s, p.d, p.pl, p.pr), c};
        char buf[160];
        snprintf(buf, sizeof(buf), "%s %dx%dx%d k%d s%d d%d pad(%d %d %d %d) include_pad=%d", OpTypeName(op), p.h,
                 p.w, c, p.k, p.s, p.d, p.pt, p.pl, p.pb, p.pr, p.include ? 1 : 0);
        TestCase tc = MakeSimple(op, {in}, out, buf);
        Node& n = tc.node;
        n.kernel_h = n.kernel_w = p.k;
        n.stride_h = n.stride_w = p.s;
        n.dilation_h = n.dilation_w = p.d;
        n.pad_top = p.pt; n.pad_left = p.pl; n.pad_bottom = p.pb; n.pad_right = p.pr;
        n.count_include_pad = p.include;
        cases.push_back(tc);
      }
    }
  }
  for (int c : channels) {
    cases.push_back(MakeSimple(OpType::kGlobalAvgPool, {{7, 11, c}}, {1, 1, c}, "global_avgpool c" + std::to_string(c)));
  }
  // dense
  uint32_t seed = 900;
  for (Shape in : {Shape{1, 1, 1}, Shape{3, 3, 13}, Shape{7, 11, 3}, Shape{1, 1, 127}}) {
    for (int out_n : channels) {
      for (bool bias : {true, false}) {
        const Activation a = acts[(out_n + in.c + (bias ? 1 : 0)) % 5];
        char buf[120];
        snprintf(buf, sizeof(buf), "dense %dx%dx%d->%d bias%d %s", in.h, in.w, in.c, out_n, bias ? 1 : 0,
                 ActivationName(a));
        TestCase tc = MakeSimple(OpType::kDense, {in}, {1, 1, out_n}, buf);
        tc.node.out_channels = out_n;
        tc.node.activation = a;
        tc.weight = Random(static_cast<size_t>(out_n) * in.elements(), seed += 3,
                           1.7f / std::sqrt(static_cast<float>(in.elements())));
        if (bias) tc.bias = Random(out_n, seed + 1, 0.5f);
        cases.push_back(tc);
      }
    }
  }
  // upsample
  for (UpsampleMode mode : {UpsampleMode::kNearest, UpsampleMode::kBilinear}) {
    // {17, 23}: large factors broadcast a 1x1 value (the trainer's image-level term).
    for (auto sc : {std::pair<int, int>{2, 2}, {3, 2}, {1, 4}, {17, 23}}) {
      for (int c : channels) {
        Shape in{5, 7, c};
        if (c == 1 || sc.first > 16) in = {1, 1, c};
        Shape out{in.h * sc.first, in.w * sc.second, c};
        char buf[120];
        snprintf(buf, sizeof(buf), "upsample %s x%dx%d %dx%dx%d", mode == UpsampleMode::kNearest ? "nearest" : "bilinear",
                 sc.first, sc.second, in.h, in.w, c);
        TestCase tc = MakeSimple(OpType::kUpsample, {in}, out, buf);
        tc.node.upsample_mode = mode;
        tc.node.scale_h = sc.first;
        tc.node.scale_w = sc.second;
        cases.push_back(tc);
      }
    }
  }
  // concat
  cases.push_back(MakeSimple(OpType::kConcat, {{7, 11, 3}, {7, 11, 13}}, {7, 11, 16}, "concat 3+13"));
  cases.push_back(MakeSimple(OpType::kConcat, {{5, 3, 1}, {5, 3, 127}, {5, 3, 4}}, {5, 3, 132}, "concat 1+127+4"));
  // reduce
  for (ReduceMode m : {ReduceMode::kSumSquares, ReduceMode::kMin, ReduceMode::kMax, ReduceMode::kMean}) {
    for (int c : channels) {
      TestCase tc = MakeSimple(OpType::kReduceChannels, {{7, 11, c}}, {7, 11, 1},
                               "reduce mode " + std::to_string(static_cast<int>(m)) + " c" + std::to_string(c));
      tc.node.reduce_mode = m;
      cases.push_back(tc);
    }
  }
  return cases;
}

std::vector<TestCase> AllCases() {
  std::vector<TestCase> cases = ConvCases();
  for (auto& tc : OtherCases()) cases.push_back(std::move(tc));
  for (auto& tc : MobileCases()) cases.push_back(std::move(tc));
  return cases;
}

struct RunResult {
  Status status;
  std::string kernel;
  std::vector<float> out;
};

// Creates the op (weights bound to tc's storage), runs it twice (Run must be
// repeatable: workspace is reused), checks the canaries.
RunResult RunOn(Backend* backend, TestCase tc, uint32_t seed) {
  BindWeights(&tc);
  RunResult r;
  OpSpec spec{tc.node, tc.ins, tc.out};
  auto op = backend->Create(spec);
  if (!op.ok()) {
    r.status = op.status();
    return r;
  }
  std::vector<std::vector<float>> inputs;
  std::vector<const float*> ptrs;
  for (size_t i = 0; i < tc.ins.size(); ++i) {
    inputs.push_back(Random(tc.ins[i].elements(), seed + 31 * i, tc.input_range));
    ptrs.push_back(inputs.back().data());
  }
  const size_t n_out = tc.out.elements();
  const size_t n_ws = (*op)->workspace_floats();
  std::vector<float> out(n_out + kGuard, kCanary), ws(n_ws + kGuard, kCanary);
  for (int rep = 0; rep < 2; ++rep) (*op)->Run(ptrs.data(), out.data(), ws.data());
  for (int i = 0; i < kGuard; ++i) {
    EXPECT_EQ(out[n_out + i], kCanary) << tc.name << ": output overrun by " << (*op)->kernel_name();
    EXPECT_EQ(ws[n_ws + i], kCanary) << tc.name << ": workspace overrun by " << (*op)->kernel_name();
  }
  out.resize(n_out);
  r.kernel = (*op)->kernel_name();
  r.out = std::move(out);
  return r;
}

// Returns the max error relative to the tolerance budget.
double Compare(const std::vector<float>& got, const std::vector<float>& want, double abs_tol, double rel_tol,
               const std::string& what) {
  EXPECT_EQ(got.size(), want.size()) << what;
  double worst = 0;
  int reported = 0;
  for (size_t i = 0; i < std::min(got.size(), want.size()); ++i) {
    const double err = std::fabs(static_cast<double>(got[i]) - want[i]);
    const double budget = abs_tol + rel_tol * std::fabs(want[i]);
    worst = std::max(worst, err / budget);
    if (!(err <= budget) && reported++ < 3) {
      ADD_FAILURE() << what << ": element " << i << " got " << got[i] << " want " << want[i];
    }
  }
  return worst;
}

TEST(KernelsTest, SimdMatchesReference) {
  auto ref = MakeRefBackend();
  auto simd = MakeSimdBackend();
  int compared = 0, fallback = 0, winograd = 0, pointwise = 0, dw3x3 = 0;
  double worst_direct = 0, worst_winograd = 0;
  uint32_t seed = 1;
  for (const TestCase& tc : AllCases()) {
    SCOPED_TRACE(tc.name);
    RunResult want = RunOn(ref.get(), tc, ++seed);
    ASSERT_TRUE(want.status.ok()) << want.status.ToString();
    RunResult got = RunOn(simd.get(), tc, seed);
    if (!got.status.ok()) {
      // Only grouped (non-depthwise) convs are left to the reference backend.
      EXPECT_EQ(got.status.code(), ErrorCode::kUnsupported) << got.status.ToString();
      EXPECT_TRUE(tc.node.op == OpType::kConv2d && tc.node.groups > 1) << got.status.ToString();
      ++fallback;
      continue;
    }
    EXPECT_NE(got.kernel.find("simd128"), std::string::npos) << got.kernel;
    const bool is_winograd = got.kernel.find("winograd") != std::string::npos;
    pointwise += got.kernel.find("1x1") != std::string::npos;
    dw3x3 += got.kernel.find("dwconv2d_f32_3x3") != std::string::npos;
    const double tol_a = is_winograd ? kWinogradTol : kAbsTol, tol_r = is_winograd ? kWinogradTol : kRelTol;
    const double w = Compare(got.out, want.out, tol_a, tol_r, tc.name + " [" + got.kernel + "]");
    (is_winograd ? worst_winograd : worst_direct) = std::max(is_winograd ? worst_winograd : worst_direct, w);
    winograd += is_winograd;
    ++compared;
  }
  printf("[kernels] %d cases compared (%d winograd), %d ref fallbacks; worst error / budget: %.3f (1e-4), "
         "winograd %.3f (5e-4)\n", compared, winograd, fallback, worst_direct, worst_winograd);
  EXPECT_GT(winograd, 3);
  EXPECT_GT(compared, 150);
  EXPECT_GT(pointwise, 100);
  EXPECT_GT(dw3x3, 400);
}

TEST(KernelsTest, XnnpackMatchesReference) {
  if (!HaveXnnpack()) GTEST_SKIP() << "built without XNNPACK";
  auto ref = MakeRefBackend();
  auto xnn = MakeXnnpackBackend(1);
  if (xnn == nullptr) GTEST_SKIP() << "MakeXnnpackBackend returned nullptr";
  int compared = 0, unsupported = 0;
  uint32_t seed = 1;
  for (const TestCase& tc : AllCases()) {
    SCOPED_TRACE(tc.name);
    RunResult want = RunOn(ref.get(), tc, ++seed);
    ASSERT_TRUE(want.status.ok()) << want.status.ToString();
    RunResult got = RunOn(xnn.get(), tc, seed);
    if (!got.status.ok()) {
      EXPECT_EQ(got.status.code(), ErrorCode::kUnsupported) << got.status.ToString();
      ++unsupported;
      continue;
    }
    Compare(got.out, want.out, kAbsTol, kRelTol, tc.name + " [" + got.kernel + "]");
    ++compared;
  }
  printf("[kernels] xnnpack: %d cases compared, %d unsupported\n", compared, unsupported);
  if (compared == 0) GTEST_SKIP() << "XNNPACK supported none of the cases";
}

// Every single-input case is a valid one-node graph whose inferred output
// shape is the one the kernels were given (so no kernel is tested on a
// configuration the graph would reject).
TEST(KernelsTest, CasesAreValidGraphs) {
  int checked = 0;
  for (TestCase tc : AllCases()) {
    if (tc.ins.size() != 1) continue;
    SCOPED_TRACE(tc.name);
    BindWeights(&tc);
    Graph g;
    g.input = tc.ins[0];
    tc.node.inputs = {0};
    tc.node.name = "n";
    g.nodes.push_back(tc.node);
    g.output = 1;
    const Status st = g.Finalize();
    EXPECT_TRUE(st.ok()) << st.ToString();
    if (st.ok()) EXPECT_EQ(g.shapes[1], tc.out);
    ++checked;
  }
  EXPECT_GT(checked, 100);
}

// ---- hand-computed checks of the reference (the spec) -------------------------

std::vector<float> RunRef(TestCase tc, const std::vector<std::vector<float>>& inputs) {
  BindWeights(&tc);
  auto ref = MakeRefBackend();
  OpSpec spec{tc.node, tc.ins, tc.out};
  auto op = ref->Create(spec);
  EXPECT_TRUE(op.ok());
  if (!op.ok()) return {};
  std::vector<const float*> ptrs;
  for (const auto& v : inputs) ptrs.push_back(v.data());
  std::vector<float> out(tc.out.elements());
  std::vector<float> ws((*op)->workspace_floats() + 1);
  (*op)->Run(ptrs.data(), out.data(), ws.data());
  return out;
}

TEST(KernelsTest, ReferenceConvBorders) {
  // 3x3 all-ones kernel, pad 1, on a 3x3 all-ones image: 4 at corners, 6 at
  // edges, 9 in the centre; bias 0.5.
  TestCase tc = MakeConv({3, 3, 1, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, true, Activation::kNone}, 1);
  std::fill(tc.weight.begin(), tc.weight.end(), 1.0f);
  tc.bias = {0.5f};
  const auto out = RunRef(tc, {std::vector<float>(9, 1.0f)});
  const std::vector<float> want = {4.5f, 6.5f, 4.5f, 6.5f, 9.5f, 6.5f, 4.5f, 6.5f, 4.5f};
  EXPECT_EQ(out, want);
}

TEST(KernelsTest, ReferenceGroupedConvUsesOwnGroup) {
  // 2 groups of 1 channel; 1x1 kernel weights 2 and 3: out = (2*x0, 3*x1).
  TestCase tc = MakeConv({1, 1, 2, 2, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 2, false, Activation::kNone}, 1);
  tc.weight = {2.0f, 3.0f};
  const auto out = RunRef(tc, {{5.0f, 7.0f}});
  EXPECT_EQ(out, (std::vector<float>{10.0f, 21.0f}));
}

TEST(KernelsTest, ReferenceAvgPoolCountIncludePad) {
  // 3x3 window, stride 1, pad 1 on a 2x2 image of ones: every window has 4
  // real taps out of 9 padded ones (PyTorch: 4/9 with count_include_pad).
  for (bool include : {true, false}) {
    TestCase tc = MakeSimple(OpType::kAvgPool2d, {{2, 2, 1}}, {2, 2, 1}, "avgpool");
    Node& n = tc.node;
    n.kernel_h = n.kernel_w = 3;
    n.pad_top = n.pad_left = n.pad_bottom = n.pad_right = 1;
    n.count_include_pad = include;
    const auto out = RunRef(tc, {std::vector<float>(4, 1.0f)});
    for (float v : out) EXPECT_FLOAT_EQ(v, include ? 4.0f / 9.0f : 1.0f);
  }
}

TEST(KernelsTest, ReferenceBilinearMatchesPyTorch) {
  // torch.nn.functional.interpolate([[1, 2]], scale_factor=2, mode='bilinear',
  // align_corners=False) -> [1, 1.25, 1.75, 2] along w.
  TestCase tc = MakeSimple(OpType::kUpsample, {{1, 2, 1}}, {2, 4, 1}, "bilinear");
  tc.node.upsample_mode = UpsampleMode::kBilinear;
  const auto out = RunRef(tc, {{1.0f, 2.0f}});
  const std::vector<float> row = {1.0f, 1.25f, 1.75f, 2.0f};
  for (int i = 0; i < 8; ++i) EXPECT_FLOAT_EQ(out[i], row[i % 4]);
  tc.node.upsample_mode = UpsampleMode::kNearest;
  const auto nearest = RunRef(tc, {{1.0f, 2.0f}});
  EXPECT_EQ(nearest, (std::vector<float>{1, 1, 2, 2, 1, 1, 2, 2}));
}

TEST(KernelsTest, ReferenceDenseAndReduce) {
  TestCase tc = MakeSimple(OpType::kDense, {{1, 2, 1}}, {1, 1, 2}, "dense");
  tc.node.out_channels = 2;
  tc.weight = {1.0f, 2.0f, 3.0f, -4.0f};  // [out][in]
  tc.bias = {0.5f, 0.0f};
  tc.node.activation = Activation::kRelu;
  EXPECT_EQ(RunRef(tc, {{1.0f, 1.0f}}), (std::vector<float>{3.5f, 0.0f}));

  const std::vector<float> px = {1.0f, -2.0f, 3.0f};
  const float want[] = {14.0f, -2.0f, 3.0f, 2.0f / 3.0f};
  int i = 0;
  for (ReduceMode m : {ReduceMode::kSumSquares, ReduceMode::kMin, ReduceMode::kMax, ReduceMode::kMean}) {
    TestCase r = MakeSimple(OpType::kReduceChannels, {{1, 1, 3}}, {1, 1, 1}, "reduce");
    r.node.reduce_mode = m;
    EXPECT_FLOAT_EQ(RunRef(r, {px})[0], want[i++]);
  }
}

TEST(KernelsTest, ReferenceMobileActivations) {
  const std::vector<float> x = {-4.0f, -3.0f, -1.0f, 0.0f, 1.0f, 2.5f, 3.0f, 4.0f, 7.0f};
  struct Want {
    Activation act;
    float alpha;
    std::vector<float> y;
  };
  const float s = 1.0f / 6.0f;
  const Want wants[] = {
      {Activation::kRelu6, 0.01f, {0, 0, 0, 0, 1, 2.5f, 3, 4, 6}},
      // x * min(max(x + 3, 0), 6) * alpha
      {Activation::kHardSwish, s, {0, 0, -2 * s, 0, 4 * s, 2.5f * 5.5f * s, 3, 4, 7}},
      {Activation::kHardSwish, 0.5f, {0, 0, -1, 0, 2, 2.5f * 5.5f * 0.5f, 9, 12, 21}},
      // min(max(x + 3, 0), 6) * alpha
      {Activation::kHardSigmoid, s, {0, 0, 2 * s, 0.5f, 4 * s, 5.5f * s, 1, 1, 1}},
  };
  for (const Want& w : wants) {
    SCOPED_TRACE(ActivationName(w.act));
    TestCase tc = MakeSimple(OpType::kActivation, {{1, 1, 9}}, {1, 1, 9}, "act");
    tc.node.activation = w.act;
    tc.node.alpha = w.alpha;
    const auto out = RunRef(tc, {x});
    ASSERT_EQ(out.size(), w.y.size());
    for (size_t i = 0; i < out.size(); ++i) EXPECT_FLOAT_EQ(out[i], w.y[i]) << "x = " << x[i];
  }
  EXPECT_FLOAT_EQ(DefaultAlpha(Activation::kHardSwish), 1.0f / 6.0f);
  EXPECT_FLOAT_EQ(DefaultAlpha(Activation::kHardSigmoid), 1.0f / 6.0f);
  EXPECT_FLOAT_EQ(DefaultAlpha(Activation::kLeakyRelu), 0.01f);
}

TEST(KernelsTest, ReferenceMulBroadcastsOverPixels) {
  TestCase tc = MakeSimple(OpType::kMul, {{2, 1, 2}, {1, 1, 2}}, {2, 1, 2}, "mul");
  EXPECT_EQ(RunRef(tc, {{1, 2, 3, 4}, {10, -1}}), (std::vector<float>{10, -2, 30, -4}));
  tc = MakeSimple(OpType::kMul, {{2, 1, 2}, {2, 1, 2}}, {2, 1, 2}, "mul");
  tc.node.activation = Activation::kRelu6;
  EXPECT_EQ(RunRef(tc, {{1, 2, 3, 4}, {10, -1, 1, 0.5f}}), (std::vector<float>{6, 0, 3, 2}));
}

TEST(KernelsTest, ReferencePositionMahalanobis) {
  // Position 0: A = [[2, 0], [0, 1]], mu = (1, 1), x = (2, 3): A (x - mu) =
  // (2, 2) -> 8. Position 1: A = [[1, 1], [0, 1]], mu = 0, x = (1, -1):
  // (0, -1) -> 1.
  TestCase tc = MakeSimple(OpType::kPositionMahalanobis, {{1, 2, 2}}, {1, 2, 1}, "pm");
  tc.weight = {2, 0, 0, 1, 1, 1, 0, 1};
  tc.bias = {1, 1, 0, 0};
  EXPECT_EQ(RunRef(tc, {{2, 3, 1, -1}}), (std::vector<float>{8, 1}));
}

TEST(KernelsTest, ReferencePositionMahalanobisRegions) {
  // A 2x3 map with 1x2 regions: columns 0 and 1 use A = 2 I (region 0),
  // column 2 uses A = I (region 1); every mean is 0, x = 1 at every cell.
  TestCase tc = MakeSimple(OpType::kPositionMahalanobis, {{2, 3, 1}}, {2, 3, 1}, "pm");
  tc.grid_h = 1;
  tc.grid_w = 2;
  tc.weight = {2, 1};
  tc.bias = std::vector<float>(6, 0.0f);
  EXPECT_EQ(RunRef(tc, {std::vector<float>(6, 1.0f)}), (std::vector<float>{4, 4, 1, 4, 4, 1}));
}

}  // namespace
}  // namespace flawlens
