// XNNPACK backend vs the reference kernels, per op, on awkward shapes
// (channels 1, 3, 13, 127; odd sizes; stride 2; asymmetric padding; dilation;
// groups). Tolerance: |xnn - ref| <= 1e-4 + 1e-4 * |ref| (different
// summation order, FMA, XNNPACK's sigmoid approximation; values are O(1)).
// Native only: skipped where the build has no XNNPACK (wasm).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "nn/backend.h"
#include "nn/executor.h"
#include "nn/graph.h"
#include "kernels/backends.h"
#include "test_models.h"

namespace flawlens {
namespace {

constexpr float kAtol = 1e-4f, kRtol = 1e-4f;

using testing::XorShiftRng;

// One graph under test plus its weight storage.
using Case = testing::GraphBuilder;

struct ConvCfg {
  int in_c, out_c, kh, kw, sh = 1, sw = 1, dh = 1, dw = 1;
  int pt = 0, pl = 0, pb = 0, pr = 0;
  int groups = 1;
  Activation act = Activation::kNone;
  bool bias = true;
};

Node ConvNode(Case& c, int input, const ConvCfg& k) {
  Node n;
  n.name = "conv";
  n.op = OpType::kConv2d;
  n.inputs = {input};
  n.kernel_h = k.kh;
  n.kernel_w = k.kw;
  n.stride_h = k.sh;
  n.stride_w = k.sw;
  n.dilation_h = k.dh;
  n.dilation_w = k.dw;
  n.pad_top = k.pt;
  n.pad_left = k.pl;
  n.pad_bottom = k.pb;
  n.pad_right = k.pr;
  n.groups = k.groups;
  n.out_channels = k.out_c;
  n.activation = k.act;
  n.alpha = 0.1f;
  const float scale = 1.5f / std::sqrt(static_cast<float>(k.kh * k.kw * (k.in_c / k.groups)));
  n.weight = c.Random({k.out_c, k.kh, k.kw, k.in_c / k.groups}, scale);
  if (k.bias) n.bias = c.Random({k.out_c}, 0.2f);
  return n;
}

std::vector<float> Run(const Graph& g, BackendKind kind, const std::vector<float>& x,
                       std::string* first_kernel, int threads = 1) {
  auto ex = CreateExecutor(g, {kind, threads});
  EXPECT_TRUE(ex.ok()) << ex.status().ToString();
  if (!ex.ok()) return {};
  std::copy(x.begin(), x.end(), (*ex)->input());
  (*ex)->Run();
  if (first_kernel != nullptr) *first_kernel = (*ex)->KernelNames().back();
  return std::vector<float>((*ex)->output(), (*ex)->output() + g.output_shape().elements());
}

// Finalizes, runs ref and XNNPACK, compares. `expect_xnnpack`: the last node
// must have been taken by XNNPACK (else: must have fallen back).
void Check(Case& c, const std::string& what, bool expect_xnnpack = true, int threads = 1) {
  SCOPED_TRACE(what);
  Status st = c.graph.Finalize();
  ASSERT_TRUE(st.ok()) << st.ToString();
  XorShiftRng r(99);
  std::vector<float> x(static_cast<size_t>(c.graph.input.elements()));
  for (float& v : x) v = r.Uniform(-2.0f, 2.0f);
  std::string ref_kernel, xnn_kernel;
  std::vector<float> ref = Run(c.graph, BackendKind::kReference, x, &ref_kernel);
  std::vector<float> xnn = Run(c.graph, BackendKind::kXnnpack, x, &xnn_kernel, threads);
  ASSERT_EQ(ref.size(), xnn.size());
  const bool took = xnn_kernel.find("__xnnpack") != std::string::npos;
  EXPECT_EQ(took, expect_xnnpack) << "kernel " << xnn_kernel;
  int bad = 0;
  float worst = 0.0f;
  for (size_t i = 0; i < ref.size(); ++i) {
    float d = std::fabs(ref[i] - xnn[i]);
    worst = std::max(worst, d);
    if (!(d <= kAtol + kRtol * std::fabs(ref[i])) && bad++ < 5)
      ADD_FAILURE() << "[" << i << "] xnnpack " << xnn[i] << " ref " << ref[i];
  }
  EXPECT_EQ(bad, 0) << "worst abs diff " << worst << " kernel " << xnn_kernel;
}

class Xnnpack : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!HaveXnnpack()) GTEST_SKIP() << "build without XNNPACK";
  }
};

TEST(XnnpackAvailability, MatchesBuild) {
#if defined(FLAWLENS_HAVE_XNNPACK)
  EXPECT_TRUE(HaveXnnpack());
  auto b = MakeXnnpackBackend(2);
  ASSERT_NE(b, nullptr);
  EXPECT_STREQ(b->name(), "xnnpack");
#else
  EXPECT_FALSE(HaveXnnpack());
  EXPECT_EQ(MakeXnnpackBackend(1), nullptr);
#endif
}

TEST_F(Xnnpack, ConvChannels) {
  for (int in_c : {1, 3, 13, 127}) {
    for (int out_c : {1, 13, 32}) {
      Case c({7, 9, in_c}, in_c * 100 + out_c);
      ConvCfg k{in_c, out_c, 3, 3};
      k.pt = k.pl = k.pb = k.pr = 1;
      c.Add(ConvNode(c, 0, k));
      Check(c, "conv3x3 " + std::to_string(in_c) + "->" + std::to_string(out_c));
    }
  }
}

TEST_F(Xnnpack, ConvStrideDilationPadding) {
  struct Named {
    const char* name;
    ConvCfg cfg;
    Shape in;
  };
  std::vector<Named> cases;
  {
    ConvCfg k{3, 16, 3, 3, 2, 2};
    k.pt = k.pl = k.pb = k.pr = 1;
    cases.push_back({"3x3s2 odd input", k, {15, 11, 3}});
  }
  {
    ConvCfg k{5, 7, 3, 3};
    k.pt = 0, k.pl = 2, k.pb = 1, k.pr = 0;
    cases.push_back({"asymmetric padding", k, {8, 9, 5}});
  }
  {
    ConvCfg k{4, 6, 3, 3, 1, 1, 2, 2};
    k.pt = k.pl = k.pb = k.pr = 2;
    cases.push_back({"dilation 2", k, {10, 9, 4}});
  }
  {
    ConvCfg k{4, 6, 3, 2, 2, 1, 1, 3};
    k.pt = 1, k.pb = 0, k.pl = 3, k.pr = 2;
    cases.push_back({"mixed stride/dilation, non-square kernel", k, {11, 12, 4}});
  }
  {
    ConvCfg k{13, 13, 5, 5, 2, 2};
    k.pt = k.pl = 2, k.pb = k.pr = 1;
    cases.push_back({"5x5s2", k, {17, 13, 13}});
  }
  {
    ConvCfg k{127, 3, 1, 1};
    cases.push_back({"1x1", k, {5, 7, 127}});
  }
  {
    ConvCfg k{3, 8, 7, 7, 2, 2};
    k.pt = k.pl = k.pb = k.pr = 3;
    k.bias = false;
    cases.push_back({"7x7s2 stem, no bias", k, {33, 31, 3}});
  }
  for (auto& n : cases) {
    Case c(n.in, 5);
    c.Add(ConvNode(c, 0, n.cfg));
    Check(c, n.name);
  }
}

TEST_F(Xnnpack, ConvGroups) {
  struct G {
    int in_c, out_c, groups, k, stride;
  };
  for (G g : {G{12, 8, 4, 3, 1}, G{13, 13, 13, 3, 1}, G{13, 13, 13, 3, 2}, G{3, 6, 3, 3, 1},
              G{32, 32, 32, 5, 1}, G{127, 127, 127, 3, 2}, G{6, 9, 3, 1, 1}}) {
    Case c({9, 7, g.in_c}, g.groups);
    ConvCfg k{g.in_c, g.out_c, g.k, g.k, g.stride, g.stride};
    k.pt = k.pl = k.pb = k.pr = g.k / 2;
    k.groups = g.groups;
    c.Add(ConvNode(c, 0, k));
    Check(c, "groups " + std::to_string(g.groups) + " " + std::to_string(g.in_c) + "->" +
                 std::to_string(g.out_c) + " k" + std::to_string(g.k) + "s" +
                 std::to_string(g.stride));
  }
}

TEST_F(Xnnpack, ConvFusedActivations) {
  for (Activation act : {Activation::kRelu, Activation::kLeakyRelu, Activation::kSigmoid,
                         Activation::kSilu}) {
    Case c({6, 5, 13}, 3);
    ConvCfg k{13, 13, 3, 3};
    k.pt = k.pl = k.pb = k.pr = 1;
    k.act = act;
    c.Add(ConvNode(c, 0, k));
    Check(c, std::string("conv + ") + ActivationName(act));
    // Depthwise path too.
    Case d({6, 5, 13}, 4);
    k.groups = 13;
    d.Add(ConvNode(d, 0, k));
    Check(d, std::string("dwconv + ") + ActivationName(act));
  }
}

// The MobileNetV3 activations: relu6 folds into the output range;
// hard_swish is XNNPACK's hardswish (times 6 * alpha unless alpha is 1/6);
// hard_sigmoid is an add with range [0, 6] and a multiply.
TEST_F(Xnnpack, MobileNetV3Activations) {
  const struct {
    Activation act;
    float alpha;
  } acts[] = {{Activation::kRelu6, 0.01f},
              {Activation::kHardSwish, 1.0f / 6.0f},
              {Activation::kHardSwish, 0.1666259765625f},  // TF's float16 1/6
              {Activation::kHardSigmoid, 1.0f / 6.0f},
              {Activation::kHardSigmoid, 0.2f}};
  for (const auto& a : acts) {
    const std::string name = std::string(ActivationName(a.act)) + " alpha " + std::to_string(a.alpha);
    for (int groups : {1, 16}) {
      Case c({9, 8, 16}, 5 + groups);
      ConvCfg k{16, 16, 3, 3, 2, 2};
      k.pb = k.pr = 1;  // TF "SAME", stride 2
      k.groups = groups;
      k.act = a.act;
      Node n = ConvNode(c, 0, k);
      n.alpha = a.alpha;
      c.Add(n);
      Check(c, (groups == 1 ? "conv + " : "dwconv + ") + name);
    }
    for (int ch : {1, 3, 13, 127}) {
      Case c({7, 9, ch}, ch);
      int x = c.Op("scale", OpType::kActivation, {0}, Activation::kLeakyRelu);  // x5 spread
      c.graph.nodes.back().alpha = 5.0f;
      Node n;
      n.name = "act";
      n.op = OpType::kActivation;
      n.inputs = {x};
      n.activation = a.act;
      n.alpha = a.alpha;
      c.Add(n);
      Check(c, "activation " + name + " c" + std::to_string(ch));
    }
  }
}

TEST_F(Xnnpack, MulSameShapeAndBroadcast) {
  for (Activation act : {Activation::kNone, Activation::kRelu6, Activation::kHardSigmoid,
                         Activation::kHardSwish, Activation::kSigmoid}) {
    for (int ch : {1, 3, 13, 72}) {
      for (bool broadcast : {false, true}) {
        Case c({7, 5, ch}, ch + (broadcast ? 1000 : 0));
        ConvCfg k{ch, ch, 1, 1};
        int conv = c.Add(ConvNode(c, 0, k));
        int other = broadcast ? c.Op("gap", OpType::kGlobalAvgPool, {0}) : conv;
        Node n;
        n.name = "mul";
        n.op = OpType::kMul;
        n.inputs = {0, other};
        n.activation = act;
        n.alpha = DefaultAlpha(act);
        c.Add(n);
        Check(c, std::string(broadcast ? "mul bcast " : "mul ") + ActivationName(act) + " c" +
                     std::to_string(ch));
      }
    }
  }
}

// A whole MobileNetV3 block through the executor: every conv, pool and mul on
// XNNPACK, the position_mahalanobis head (not in XNNPACK) falls back.
TEST_F(Xnnpack, MobileNetV3BlockWithDensityHead) {
  Case c({32, 32, 3}, 21);
  int stem = c.Conv("stem", 0, 3, 16, 3, 2, 0, 1, Activation::kHardSwish);
  c.graph.nodes.back().pad_bottom = c.graph.nodes.back().pad_right = 1;
  c.graph.nodes.back().alpha = 0.1666259765625f;
  int expand = c.Conv("expand", stem, 16, 72, 1, 1, 0, 1, Activation::kRelu6);
  int dw = c.Conv("dw", expand, 72, 72, 5, 2, 0, 72, Activation::kRelu6);
  c.graph.nodes.back().pad_top = c.graph.nodes.back().pad_left = 1;
  c.graph.nodes.back().pad_bottom = c.graph.nodes.back().pad_right = 2;
  int gap = c.Op("se_pool", OpType::kGlobalAvgPool, {dw});
  int squeeze = c.Conv("se_squeeze", gap, 72, 24, 1, 1, 0, 1, Activation::kRelu);
  int excite = c.Conv("se_excite", squeeze, 24, 72, 1, 1, 0, 1, Activation::kHardSigmoid);
  c.graph.nodes.back().alpha = 1.0f / 6.0f;
  int gated = c.Op("se_mul", OpType::kMul, {dw, excite});
  int project = c.Conv("project", gated, 72, 24, 1);
  c.PositionMahalanobis("density", project, {8, 8, 24});
  Check(c, "mobilenet v3 block + position_mahalanobis", /*expect_xnnpack=*/false);
}

TEST_F(Xnnpack, Threads) {
  Case c({31, 29, 13}, 8);
  ConvCfg k{13, 32, 3, 3};
  k.pt = k.pl = k.pb = k.pr = 1;
  k.act = Activation::kSilu;
  c.Add(ConvNode(c, 0, k));
  Check(c, "conv silu, 2 threads", true, /*threads=*/2);
}

TEST_F(Xnnpack, Dense) {
  for (Activation act :
       {Activation::kNone, Activation::kRelu, Activation::kLeakyRelu, Activation::kSigmoid,
        Activation::kSilu}) {
    for (int out : {1, 13}) {
      Case c({5, 3, 7}, out);
      Node n;
      n.name = "fc";
      n.op = OpType::kDense;
      n.inputs = {0};
      n.out_channels = out;
      n.activation = act;
      n.alpha = 0.3f;
      n.weight = c.Random({out, 105}, 0.15f);
      n.bias = c.Random({out}, 0.2f);
      c.Add(n);
      Check(c, std::string("dense ") + std::to_string(out) + " " + ActivationName(act));
    }
  }
}

TEST_F(Xnnpack, AddAndActivations) {
  for (Activation act : {Activation::kNone, Activation::kRelu, Activation::kLeakyRelu,
                         Activation::kSigmoid, Activation::kSilu}) {
    Case c({7, 5, 13}, 2);
    ConvCfg k{13, 13, 1, 1};
    int conv = c.Add(ConvNode(c, 0, k));
    Node n;
    n.name = "add";
    n.op = OpType::kAdd;
    n.inputs = {conv, 0};
    n.activation = act;
    n.alpha = 0.05f;
    c.Add(n);
    Check(c, std::string("add ") + ActivationName(act));
  }
  for (Activation act :
       {Activation::kRelu, Activation::kLeakyRelu, Activation::kSigmoid, Activation::kSilu}) {
    for (int ch : {1, 3, 13, 127}) {
      Case c({7, 9, ch}, ch);
      Node n;
      n.name = "act";
      n.op = OpType::kActivation;
      n.inputs = {0};
      n.activation = act;
      n.alpha = 0.2f;
      c.Add(n);
      Check(c, std::string("activation ") + ActivationName(act) + " c" + std::to_string(ch));
    }
  }
}

Node PoolNode(OpType op, int k, int s, int pt, int pl, int pb, int pr, bool include_pad = true,
              int dilation = 1) {
  Node n;
  n.name = "pool";
  n.op = op;
  n.inputs = {0};
  n.kernel_h = n.kernel_w = k;
  n.stride_h = n.stride_w = s;
  n.dilation_h = n.dilation_w = dilation;
  n.pad_top = pt;
  n.pad_left = pl;
  n.pad_bottom = pb;
  n.pad_right = pr;
  n.count_include_pad = include_pad;
  return n;
}

TEST_F(Xnnpack, MaxPool) {
  for (int ch : {1, 3, 13, 127}) {
    {
      Case c({7, 9, ch});
      c.Add(PoolNode(OpType::kMaxPool2d, 2, 2, 0, 0, 0, 0));
      Check(c, "maxpool 2x2s2 odd c" + std::to_string(ch));
    }
    {
      Case c({8, 9, ch});
      c.Add(PoolNode(OpType::kMaxPool2d, 3, 2, 1, 1, 1, 1));
      Check(c, "maxpool 3x3s2p1 c" + std::to_string(ch));
    }
    {
      Case c({8, 9, ch});
      c.Add(PoolNode(OpType::kMaxPool2d, 3, 1, 1, 0, 0, 1));
      Check(c, "maxpool 3x3s1 asymmetric c" + std::to_string(ch));
    }
    {
      Case c({11, 10, ch});
      c.Add(PoolNode(OpType::kMaxPool2d, 3, 1, 2, 2, 2, 2, true, /*dilation=*/2));
      Check(c, "maxpool 3x3 dilation 2 c" + std::to_string(ch));
    }
  }
}

TEST_F(Xnnpack, AvgPool) {
  for (int ch : {1, 3, 13, 127}) {
    for (bool include : {true, false}) {
      Case c({7, 9, ch});
      c.Add(PoolNode(OpType::kAvgPool2d, 2, 2, 0, 0, 0, 0, include));
      Check(c, "avgpool 2x2s2 no pad c" + std::to_string(ch));
    }
    {
      // Padding excluded from the divisor: XNNPACK's semantics.
      Case c({8, 9, ch});
      c.Add(PoolNode(OpType::kAvgPool2d, 3, 2, 1, 1, 1, 1, /*include_pad=*/false));
      Check(c, "avgpool 3x3s2p1 exclude pad c" + std::to_string(ch));
    }
    {
      Case c({8, 9, ch});
      c.Add(PoolNode(OpType::kAvgPool2d, 3, 1, 1, 0, 0, 1, /*include_pad=*/false));
      Check(c, "avgpool asymmetric exclude pad c" + std::to_string(ch));
    }
    {
      // count_include_pad=true with padding differs at the borders: falls back.
      Case c({8, 9, ch});
      c.Add(PoolNode(OpType::kAvgPool2d, 3, 1, 1, 1, 1, 1, /*include_pad=*/true));
      Check(c, "avgpool include pad c" + std::to_string(ch), /*expect_xnnpack=*/false);
    }
  }
  // The backend itself says kUnsupported for that configuration.
  auto backend = MakeXnnpackBackend(1);
  Node n = PoolNode(OpType::kAvgPool2d, 3, 1, 1, 1, 1, 1, true);
  std::vector<Shape> ins = {{8, 8, 3}};
  Shape out{8, 8, 3};
  auto op = backend->Create(OpSpec{n, ins, out});
  ASSERT_FALSE(op.ok());
  EXPECT_EQ(op.status().code(), ErrorCode::kUnsupported);
}

TEST_F(Xnnpack, GlobalAvgPool) {
  for (Shape s : {Shape{7, 9, 13}, Shape{1, 1, 127}, Shape{5, 3, 1}, Shape{16, 16, 3}}) {
    Case c(s);
    Node n;
    n.name = "gap";
    n.op = OpType::kGlobalAvgPool;
    n.inputs = {0};
    c.Add(n);
    Check(c, "gap " + std::to_string(s.h) + "x" + std::to_string(s.w) + "x" +
                 std::to_string(s.c));
  }
}

TEST_F(Xnnpack, UpsampleBilinear) {
  struct U {
    Shape in;
    int sh, sw;
  };
  for (U u : {U{{5, 7, 13}, 2, 2}, U{{4, 3, 1}, 3, 3}, U{{3, 5, 3}, 2, 3}, U{{6, 6, 127}, 2, 2},
              U{{1, 4, 3}, 4, 1}, U{{2, 2, 5}, 16, 16}}) {
    Case c(u.in);
    Node n;
    n.name = "up";
    n.op = OpType::kUpsample;
    n.inputs = {0};
    n.upsample_mode = UpsampleMode::kBilinear;
    n.scale_h = u.sh;
    n.scale_w = u.sw;
    c.Add(n);
    Check(c, "bilinear " + std::to_string(u.sh) + "x" + std::to_string(u.sw) + " c" +
                 std::to_string(u.in.c));
  }
  // Nearest is not offered by this XNNPACK: falls back.
  Case c({5, 7, 3});
  Node n;
  n.name = "up";
  n.op = OpType::kUpsample;
  n.inputs = {0};
  n.upsample_mode = UpsampleMode::kNearest;
  c.Add(n);
  Check(c, "nearest", /*expect_xnnpack=*/false);
}

TEST_F(Xnnpack, Concat) {
  Case c({7, 5, 3}, 12);
  ConvCfg k1{3, 1, 1, 1};
  int a = c.Add(ConvNode(c, 0, k1));
  ConvCfg k2{3, 13, 3, 3};
  k2.pt = k2.pl = k2.pb = k2.pr = 1;
  int b = c.Add(ConvNode(c, 0, k2));
  Node n;
  n.name = "cat";
  n.op = OpType::kConcat;
  n.inputs = {a, b, 0, a};
  c.Add(n);
  Check(c, "concat 1+13+3+1");
}

}  // namespace
}  // namespace flawlens
