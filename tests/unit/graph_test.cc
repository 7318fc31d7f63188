// Graph::Finalize(): every validation error class (code + message naming the
// node) and shape inference on a valid U-Net-like graph.
#include "nn/graph.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/limits.h"
#include "test_models.h"

namespace flawlens {
namespace {

using Builder = testing::GraphBuilder;

// Finalize must fail with `code` and a message naming node `name`.
void ExpectError(Graph& g, ErrorCode code, const std::string& name,
                 const std::string& fragment = "") {
  Status st = g.Finalize();
  ASSERT_FALSE(st.ok()) << "expected " << ErrorCodeName(code);
  EXPECT_EQ(st.code(), code) << st.ToString();
  if (!name.empty()) {
    EXPECT_NE(st.message().find("'" + name + "'"), std::string::npos) << st.ToString();
  }
  if (!fragment.empty()) {
    EXPECT_NE(st.message().find(fragment), std::string::npos) << st.ToString();
  }
}

TEST(WindowOutputSize, Basics) {
  EXPECT_EQ(WindowOutputSize(32, 3, 1, 1, 1, 1), 32);
  EXPECT_EQ(WindowOutputSize(32, 3, 2, 1, 1, 1), 16);
  EXPECT_EQ(WindowOutputSize(7, 3, 2, 1, 0, 0), 3);
  EXPECT_EQ(WindowOutputSize(7, 3, 1, 2, 0, 0), 3);   // effective kernel 5
  EXPECT_EQ(WindowOutputSize(5, 3, 1, 1, 0, 1), 4);   // asymmetric padding
  EXPECT_LE(WindowOutputSize(3, 5, 1, 1, 0, 0), 0);   // window larger than input
  EXPECT_LE(WindowOutputSize(3, 0, 1, 1, 0, 0), 0);
  EXPECT_LE(WindowOutputSize(3, 3, 0, 1, 0, 0), 0);
  EXPECT_LE(WindowOutputSize(3, 3, 1, 1, -1, 0), 0);
}

TEST(Names, OpsAndActivations) {
  EXPECT_STREQ(OpTypeName(OpType::kConv2d), "conv2d");
  EXPECT_STREQ(OpTypeName(OpType::kReduceChannels), "reduce_channels");
  EXPECT_STREQ(OpTypeName(OpType::kGlobalAvgPool), "global_avgpool");
  EXPECT_STREQ(ActivationName(Activation::kLeakyRelu), "leaky_relu");
  EXPECT_STREQ(ActivationName(Activation::kSilu), "silu");
  EXPECT_STREQ(ActivationName(Activation::kNone), "none");
  EXPECT_STREQ(OpTypeName(OpType::kMul), "mul");
  EXPECT_STREQ(OpTypeName(OpType::kPositionMahalanobis), "position_mahalanobis");
  EXPECT_STREQ(ActivationName(Activation::kRelu6), "relu6");
  EXPECT_STREQ(ActivationName(Activation::kHardSwish), "hard_swish");
  EXPECT_STREQ(ActivationName(Activation::kHardSigmoid), "hard_sigmoid");
}

// A MobileNetV3 block as the TF.js importer lays it out: stem conv 3x3 s2
// with TF "SAME" padding (bottom / right only) + hard_swish, 1x1 expand +
// relu6, depthwise 5x5 s2, squeeze-excitation (global pool, 1x1 relu, 1x1
// hard_sigmoid, mul broadcast over the map), 1x1 project, then the
// per-position Gaussian head.
TEST(GraphFinalize, MobileNetV3BlockShapesAndMacs) {
  Builder b({32, 32, 3});
  int stem = b.Conv("stem", 0, 3, 16, 3, 2, 0, 1, Activation::kHardSwish);
  b.graph.nodes.back().pad_bottom = b.graph.nodes.back().pad_right = 1;    // 16x16x16
  b.graph.nodes.back().alpha = DefaultAlpha(Activation::kHardSwish);
  int expand = b.Conv("expand", stem, 16, 72, 1, 1, 0, 1, Activation::kRelu6);  // 16x16x72
  int dw = b.Conv("dw", expand, 72, 72, 5, 2, 0, /*groups=*/72);            // 8x8x72
  Node& dwn = b.graph.nodes.back();
  dwn.pad_top = dwn.pad_left = 1;
  dwn.pad_bottom = dwn.pad_right = 2;
  int gap = b.Op("se_pool", OpType::kGlobalAvgPool, {dw});                   // 1x1x72
  int squeeze = b.Conv("se_squeeze", gap, 72, 24, 1, 1, 0, 1, Activation::kRelu);
  int excite = b.Conv("se_excite", squeeze, 24, 72, 1, 1, 0, 1, Activation::kHardSigmoid);
  int gated = b.Op("se_mul", OpType::kMul, {dw, excite});                    // 8x8x72
  int project = b.Conv("project", gated, 72, 24, 1);                         // 8x8x24
  int head = b.PositionMahalanobis("density", project, {8, 8, 24});          // 8x8x1
  Graph& g = b.graph;
  ASSERT_TRUE(g.Finalize().ok()) << g.Finalize().ToString();
  EXPECT_EQ(g.shapes[stem], (Shape{16, 16, 16}));
  EXPECT_EQ(g.shapes[expand], (Shape{16, 16, 72}));
  EXPECT_EQ(g.shapes[dw], (Shape{8, 8, 72}));
  EXPECT_EQ(g.shapes[excite], (Shape{1, 1, 72}));
  EXPECT_EQ(g.shapes[gated], (Shape{8, 8, 72}));
  EXPECT_EQ(g.shapes[project], (Shape{8, 8, 24}));
  EXPECT_EQ(g.shapes[head], (Shape{8, 8, 1}));
  EXPECT_EQ(g.output, head);
  const int64_t macs = 16 * 16 * 16 * 9 * 3 + 16 * 16 * 72 * 16 + 8 * 8 * 72 * 25 + 24 * 72 +
                       72 * 24 + 8 * 8 * 24 * 72 + 8 * 8 * 24 * (24 + 1);
  EXPECT_EQ(g.Macs(), macs);
}

TEST(GraphFinalize, UNetShapesDepthMacs) {
  Builder b({32, 32, 3});
  int enc1 = b.Conv("enc1", 0, 3, 16, 3, 1, 1, 1, Activation::kRelu);       // 32x32x16
  int pool1 = b.Pool("pool1", OpType::kMaxPool2d, enc1, 2, 2);             // 16x16x16
  int enc2 = b.Conv("enc2", pool1, 16, 32, 3, 1, 1, 1, Activation::kSilu); // 16x16x32
  int down = b.Conv("down", enc2, 32, 32, 3, 2, 1);                        // 8x8x32
  int up1 = b.Upsample("up1", down, 2);                                    // 16x16x32
  int cat1 = b.Op("cat1", OpType::kConcat, {enc2, up1});               // 16x16x64
  int dw = b.Conv("dw", cat1, 64, 64, 3, 1, 1, /*groups=*/64);             // 16x16x64
  int up2 = b.Upsample("up2", dw, 2);                                      // 32x32x64
  int cat2 = b.Op("cat2", OpType::kConcat, {up2, enc1, 0});            // 32x32x83
  int head = b.Conv("head", cat2, 83, 16, 1);                              // 32x32x16
  int skip = b.Op("skip", OpType::kAdd, {head, enc1});                 // 32x32x16
  int red = b.Op("red", OpType::kReduceChannels, {skip});              // 32x32x1
  int gap = b.Op("gap", OpType::kGlobalAvgPool, {skip});               // 1x1x16
  int fc = b.Dense("fc", gap, 16, 4);                                      // 1x1x4
  b.graph.output = red;
  Graph& g = b.graph;
  ASSERT_TRUE(g.Finalize().ok()) << g.Finalize().ToString();
  ASSERT_EQ(g.shapes.size(), g.nodes.size() + 1);
  EXPECT_EQ(g.shapes[enc1], (Shape{32, 32, 16}));
  EXPECT_EQ(g.shapes[pool1], (Shape{16, 16, 16}));
  EXPECT_EQ(g.shapes[enc2], (Shape{16, 16, 32}));
  EXPECT_EQ(g.shapes[down], (Shape{8, 8, 32}));
  EXPECT_EQ(g.shapes[up1], (Shape{16, 16, 32}));
  EXPECT_EQ(g.shapes[cat1], (Shape{16, 16, 64}));
  EXPECT_EQ(g.shapes[dw], (Shape{16, 16, 64}));
  EXPECT_EQ(g.shapes[up2], (Shape{32, 32, 64}));
  EXPECT_EQ(g.shapes[cat2], (Shape{32, 32, 83}));
  EXPECT_EQ(g.shapes[head], (Shape{32, 32, 16}));
  EXPECT_EQ(g.shapes[skip], (Shape{32, 32, 16}));
  EXPECT_EQ(g.shapes[red], (Shape{32, 32, 1}));
  EXPECT_EQ(g.shapes[gap], (Shape{1, 1, 16}));
  EXPECT_EQ(g.shapes[fc], (Shape{1, 1, 4}));
  EXPECT_EQ(g.output_shape(), (Shape{32, 32, 1}));
  // Longest path to `red`: enc1 pool1 enc2 down up1 cat1 dw up2 cat2 head skip red.
  EXPECT_EQ(g.depth, 12);
  int64_t macs = 32 * 32 * 16 * 9 * 3 + 16 * 16 * 32 * 9 * 16 + 8 * 8 * 32 * 9 * 32 +
                 16 * 16 * 64 * 9 * 1 + 32 * 32 * 16 * 83 + 16 * 4;
  EXPECT_EQ(g.Macs(), macs);

  // Finalize is repeatable.
  ASSERT_TRUE(g.Finalize().ok());
  EXPECT_EQ(g.shapes.size(), g.nodes.size() + 1);
}

TEST(GraphFinalize, AsymmetricPaddingStrideDilation) {
  Builder b({9, 10, 2});
  Node n;
  n.name = "c";
  n.op = OpType::kConv2d;
  n.inputs = {0};
  n.kernel_h = 3;
  n.kernel_w = 2;
  n.stride_h = 2;
  n.stride_w = 3;
  n.dilation_h = 2;
  n.dilation_w = 1;
  n.pad_top = 0;
  n.pad_bottom = 1;
  n.pad_left = 2;
  n.pad_right = 0;
  n.out_channels = 5;
  n.weight = b.Tensor({5, 3, 2, 2});
  b.Add(n);
  ASSERT_TRUE(b.graph.Finalize().ok());
  // h: (9 + 1 - 5) / 2 + 1 = 3; w: (10 + 2 - 2) / 3 + 1 = 4
  EXPECT_EQ(b.graph.output_shape(), (Shape{3, 4, 5}));
}

// ---- wiring ----------------------------------------------------------------

TEST(GraphErrors, InputFromLaterNode) {
  Builder b({8, 8, 3});
  b.Conv("a", 0, 3, 4, 1);
  b.Op("bad", OpType::kActivation, {2});  // value 2 is produced by this very node
  b.graph.nodes.back().activation = Activation::kRelu;
  ExpectError(b.graph, ErrorCode::kBadGraph, "bad", "input value 2");
}

TEST(GraphErrors, NegativeInput) {
  Builder b({8, 8, 3});
  b.Op("neg", OpType::kActivation, {-1});
  b.graph.nodes.back().activation = Activation::kRelu;
  ExpectError(b.graph, ErrorCode::kBadGraph, "neg");
}

TEST(GraphErrors, InputCounts) {
  {
    Builder b({8, 8, 3});
    b.Op("cat", OpType::kConcat, {0});
    ExpectError(b.graph, ErrorCode::kBadGraph, "cat", "at least 2");
  }
  {
    Builder b({8, 8, 3});
    b.Op("sum", OpType::kAdd, {0, 0, 0});
    ExpectError(b.graph, ErrorCode::kBadGraph, "sum", "exactly 2");
  }
  {
    Builder b({8, 8, 3});
    b.Conv("conv", 0, 3, 4, 1);
    b.graph.nodes.back().inputs = {0, 0};
    ExpectError(b.graph, ErrorCode::kBadGraph, "conv", "exactly 1");
  }
  {
    Builder b({8, 8, 3});
    b.Op("gap", OpType::kGlobalAvgPool, {});
    ExpectError(b.graph, ErrorCode::kBadGraph, "gap");
  }
}

TEST(GraphErrors, UnnamedNodeIsNamedByIndex) {
  Builder b({8, 8, 3});
  b.Conv("a", 0, 3, 4, 1);
  b.Op("", OpType::kAdd, {0});
  Status st = b.graph.Finalize();
  EXPECT_EQ(st.code(), ErrorCode::kBadGraph);
  EXPECT_NE(st.message().find("node #1 (add)"), std::string::npos) << st.message();
}

TEST(GraphErrors, GraphLevel) {
  {
    Builder b({8, 8, 3});
    EXPECT_EQ(b.graph.Finalize().code(), ErrorCode::kBadGraph);  // no nodes
  }
  {
    Builder b({8, 8, 3});
    b.Conv("a", 0, 3, 4, 1);
    b.graph.output = 2;
    EXPECT_EQ(b.graph.Finalize().code(), ErrorCode::kBadGraph);
    b.graph.output = 0;  // the input itself is not a node output
    EXPECT_EQ(b.graph.Finalize().code(), ErrorCode::kBadGraph);
    b.graph.output = 1;
    EXPECT_TRUE(b.graph.Finalize().ok());
  }
  {
    Builder b({0, 8, 3});
    b.Conv("a", 0, 3, 4, 1);
    EXPECT_EQ(b.graph.Finalize().code(), ErrorCode::kBadShape);
  }
  {
    Builder b({kMaxModelInputSide + 1, 8, 3});
    b.Conv("a", 0, 3, 4, 1);
    EXPECT_EQ(b.graph.Finalize().code(), ErrorCode::kLimitExceeded);
  }
  {
    Builder b({8, 8, kMaxChannels + 1});
    b.Op("gap", OpType::kGlobalAvgPool, {0});
    EXPECT_EQ(b.graph.Finalize().code(), ErrorCode::kLimitExceeded);
  }
  {
    Builder b({8, 8, 3});
    for (int i = 0; i <= kMaxNodes; ++i) {
      b.Op("r" + std::to_string(i), OpType::kActivation, {i});
      b.graph.nodes.back().activation = Activation::kRelu;
    }
    Status st = b.graph.Finalize();
    EXPECT_EQ(st.code(), ErrorCode::kLimitExceeded);
    EXPECT_NE(st.message().find("1025 nodes"), std::string::npos) << st.message();
  }
  {
    // Exactly at the node limit is fine; depth is the chain length.
    Builder b({8, 8, 3});
    for (int i = 0; i < kMaxNodes; ++i) {
      b.Op("r" + std::to_string(i), OpType::kActivation, {i});
      b.graph.nodes.back().activation = Activation::kRelu;
    }
    ASSERT_TRUE(b.graph.Finalize().ok());
    EXPECT_EQ(b.graph.depth, kMaxNodes);
  }
}

TEST(GraphErrors, UnknownEnums) {
  {
    Builder b({8, 8, 3});
    b.Op("weird", static_cast<OpType>(99), {0});
    ExpectError(b.graph, ErrorCode::kBadGraph, "weird", "unknown op");
  }
  {
    Builder b({8, 8, 3});
    b.Op("act", OpType::kActivation, {0});
    b.graph.nodes.back().activation = static_cast<Activation>(42);
    ExpectError(b.graph, ErrorCode::kBadGraph, "act", "unknown activation");
  }
  {
    Builder b({8, 8, 3});
    b.Op("act", OpType::kActivation, {0});  // activation none
    ExpectError(b.graph, ErrorCode::kBadGraph, "act");
  }
  {
    Builder b({8, 8, 3});
    b.Upsample("up", 0, 2);
    b.graph.nodes.back().upsample_mode = static_cast<UpsampleMode>(7);
    ExpectError(b.graph, ErrorCode::kBadGraph, "up", "upsample mode");
  }
  {
    Builder b({8, 8, 3});
    b.Op("red", OpType::kReduceChannels, {0});
    b.graph.nodes.back().reduce_mode = static_cast<ReduceMode>(-1);
    ExpectError(b.graph, ErrorCode::kBadGraph, "red", "reduce mode");
  }
  {
    Builder b({8, 8, 3});
    b.Pool("pool", OpType::kMaxPool2d, 0, 2, 2);
    b.graph.nodes.back().activation = Activation::kRelu;
    ExpectError(b.graph, ErrorCode::kBadGraph, "pool", "cannot be fused");
  }
  {
    Builder b({8, 8, 3});
    b.Conv("c", 0, 3, 4, 1, 1, 0, 1, Activation::kLeakyRelu);
    b.graph.nodes.back().alpha = __builtin_nanf("");
    ExpectError(b.graph, ErrorCode::kBadGraph, "c", "alpha");
  }
}

// ---- attributes --------------------------------------------------------------

TEST(GraphErrors, ConvAttributeRanges) {
  struct Case {
    const char* what;
    void (*mutate)(Node&);
    ErrorCode code;
  };
  const Case cases[] = {
      {"kernel_h", [](Node& n) { n.kernel_h = 0; }, ErrorCode::kBadGraph},
      {"kernel_w", [](Node& n) { n.kernel_w = kMaxKernel + 1; }, ErrorCode::kLimitExceeded},
      {"stride_h", [](Node& n) { n.stride_h = 0; }, ErrorCode::kBadGraph},
      {"stride_w", [](Node& n) { n.stride_w = kMaxStride + 1; }, ErrorCode::kLimitExceeded},
      {"dilation_h", [](Node& n) { n.dilation_h = -3; }, ErrorCode::kBadGraph},
      {"dilation_w", [](Node& n) { n.dilation_w = kMaxDilation + 1; }, ErrorCode::kLimitExceeded},
      {"pad_top", [](Node& n) { n.pad_top = -1; }, ErrorCode::kBadGraph},
      {"pad_right", [](Node& n) { n.pad_right = kMaxPad + 1; }, ErrorCode::kLimitExceeded},
      {"out_channels", [](Node& n) { n.out_channels = 0; }, ErrorCode::kBadGraph},
      {"out_channels", [](Node& n) { n.out_channels = kMaxChannels + 1; },
       ErrorCode::kLimitExceeded},
      {"groups", [](Node& n) { n.groups = 0; }, ErrorCode::kBadGraph},
      {"does not divide the 6 input", [](Node& n) { n.groups = 4; }, ErrorCode::kBadGraph},
      {"does not divide out_channels", [](Node& n) { n.groups = 3; }, ErrorCode::kBadGraph},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    Builder b({16, 16, 6});
    b.Conv("enc2", 0, 6, 8, 3, 1, 1);
    c.mutate(b.graph.nodes.back());
    ExpectError(b.graph, c.code, "enc2", c.what);
  }
}

TEST(GraphErrors, PoolAttributes) {
  {
    Builder b({8, 8, 3});
    b.Pool("p", OpType::kAvgPool2d, 0, 3, 1, 1);
    b.graph.nodes.back().dilation_h = 2;  // avgpool has no dilation
    ExpectError(b.graph, ErrorCode::kBadGraph, "p", "dilation_h");
  }
  {
    Builder b({8, 8, 3});
    b.Pool("p", OpType::kMaxPool2d, 0, 3, 1, 2);  // pad 2 > 3 / 2
    ExpectError(b.graph, ErrorCode::kBadGraph, "p", "padding");
  }
  {
    Builder b({8, 8, 3});
    b.Pool("p", OpType::kMaxPool2d, 0, 0, 1);
    ExpectError(b.graph, ErrorCode::kBadGraph, "p", "kernel_h");
  }
}

TEST(GraphErrors, UpsampleScale) {
  {
    Builder b({8, 8, 3});
    b.Upsample("up", 0, 0);
    ExpectError(b.graph, ErrorCode::kBadGraph, "up", "scale_h");
  }
  {
    Builder b({8, 8, 3});
    b.Upsample("up", 0, kMaxModelInputSide + 1);
    ExpectError(b.graph, ErrorCode::kLimitExceeded, "up", "scale_h");
  }
  {
    Builder b({8, 8, 3});
    b.Upsample("up", 0, 16);
    ASSERT_TRUE(b.graph.Finalize().ok());
    EXPECT_EQ(b.graph.output_shape(), (Shape{128, 128, 3}));
  }
  {  // a 1x1 value broadcast over a map
    Builder b({1, 1, 1});
    int up = b.Upsample("up", 0, 68);
    b.graph.nodes[size_t(up - 1)].scale_w = 60;
    ASSERT_TRUE(b.graph.Finalize().ok());
    EXPECT_EQ(b.graph.output_shape(), (Shape{68, 60, 1}));
  }
  {  // the output side stays bounded
    Builder b({kMaxModelInputSide, 8, 1});
    b.Upsample("up", 0, 17);
    ExpectError(b.graph, ErrorCode::kLimitExceeded, "up", "too large");
  }
}

// ---- weights -------------------------------------------------------------------

TEST(GraphErrors, ConvWeightChannelsMismatch) {
  Builder b({16, 16, 12});
  b.Conv("enc2", 0, 16, 8, 3, 1, 1);  // weights made for 16 input channels
  ExpectError(b.graph, ErrorCode::kBadShape, "enc2", "input has 12 channels");
  EXPECT_NE(b.graph.Finalize().message().find("weights expect 16"), std::string::npos)
      << b.graph.Finalize().message();
  EXPECT_NE(b.graph.Finalize().message().find("(conv2d)"), std::string::npos);
}

TEST(GraphErrors, ConvWeightShapeAndData) {
  {
    Builder b({16, 16, 4});
    b.Conv("c", 0, 4, 8, 3, 1, 1);
    b.graph.nodes.back().weight = b.Tensor({8, 3, 4});  // rank 3
    ExpectError(b.graph, ErrorCode::kBadShape, "c", "weight has shape [8, 3, 4]");
  }
  {
    Builder b({16, 16, 4});
    b.Conv("c", 0, 4, 8, 3, 1, 1);
    b.graph.nodes.back().weight = b.Tensor({8, 5, 5, 4});  // kernel mismatch
    ExpectError(b.graph, ErrorCode::kBadShape, "c", "expected [8, 3, 3, 4]");
  }
  {
    Builder b({16, 16, 4});
    b.Conv("c", 0, 4, 8, 3, 1, 1);
    b.graph.nodes.back().weight.data = nullptr;
    ExpectError(b.graph, ErrorCode::kBadGraph, "c", "weight has no data");
  }
  {
    Builder b({16, 16, 4});
    b.Conv("c", 0, 4, 8, 3, 1, 1);
    b.graph.nodes.back().bias = b.Tensor({4});
    ExpectError(b.graph, ErrorCode::kBadShape, "c", "bias");
  }
  {
    Builder b({16, 16, 4});
    b.Conv("c", 0, 4, 8, 3, 1, 1);
    b.graph.nodes.back().bias.data = nullptr;  // declared but missing
    ExpectError(b.graph, ErrorCode::kBadGraph, "c", "bias has no data");
  }
  {
    Builder b({16, 16, 4});
    b.Conv("c", 0, 4, 8, 3, 1, 1);
    b.graph.nodes.back().bias = TensorRef();  // no bias at all is fine
    EXPECT_TRUE(b.graph.Finalize().ok());
  }
  {
    // Grouped conv: weight carries in_c / groups.
    Builder b({16, 16, 4});
    b.Conv("g", 0, 4, 8, 3, 1, 1, /*groups=*/2);
    EXPECT_TRUE(b.graph.Finalize().ok());
    b.graph.nodes.back().weight = b.Tensor({8, 3, 3, 4});
    ExpectError(b.graph, ErrorCode::kBadShape, "g", "2 per group");
  }
}

TEST(GraphErrors, DenseWeights) {
  {
    Builder b({4, 4, 3});
    b.Dense("fc", 0, 48, 10);
    EXPECT_TRUE(b.graph.Finalize().ok());
    EXPECT_EQ(b.graph.output_shape(), (Shape{1, 1, 10}));
    EXPECT_EQ(b.graph.Macs(), 480);
  }
  {
    Builder b({4, 4, 3});
    b.Dense("fc", 0, 47, 10);
    ExpectError(b.graph, ErrorCode::kBadShape, "fc", "input has 48 elements");
  }
  {
    Builder b({4, 4, 3});
    b.Dense("fc", 0, 48, 10);
    b.graph.nodes.back().bias = b.Tensor({11});
    ExpectError(b.graph, ErrorCode::kBadShape, "fc", "bias");
  }
  {
    Builder b({4, 4, 3});
    b.Dense("fc", 0, 48, 10);
    b.graph.nodes.back().out_channels = 0;
    ExpectError(b.graph, ErrorCode::kBadGraph, "fc", "out_channels");
  }
}

// ---- shapes ----------------------------------------------------------------------

TEST(GraphErrors, WindowDoesNotFit) {
  {
    Builder b({3, 3, 2});
    b.Conv("big", 0, 2, 4, 5);
    ExpectError(b.graph, ErrorCode::kBadShape, "big", "does not fit");
  }
  {
    Builder b({4, 9, 2});
    b.Conv("dil", 0, 2, 4, 3);
    b.graph.nodes.back().dilation_h = 2;  // effective 5 > 4
    ExpectError(b.graph, ErrorCode::kBadShape, "dil", "does not fit");
  }
  {
    Builder b({1, 8, 2});
    b.Pool("pool", OpType::kMaxPool2d, 0, 2, 2);
    ExpectError(b.graph, ErrorCode::kBadShape, "pool", "does not fit");
  }
}

TEST(GraphErrors, ConcatAndAddShapes) {
  {
    Builder b({8, 8, 3});
    int p = b.Pool("pool", OpType::kMaxPool2d, 0, 2, 2);
    b.Op("cat", OpType::kConcat, {0, p});
    ExpectError(b.graph, ErrorCode::kBadShape, "cat", "4x4x3");
  }
  {
    Builder b({8, 8, 3});
    int c = b.Conv("c", 0, 3, 4, 1);
    b.Op("sum", OpType::kAdd, {0, c});
    ExpectError(b.graph, ErrorCode::kBadShape, "sum", "8x8x3 vs 8x8x4");
  }
  {
    Builder b({8, 8, kMaxChannels / 2 + 1});
    b.Op("cat", OpType::kConcat, {0, 0});
    ExpectError(b.graph, ErrorCode::kLimitExceeded, "cat", "channels");
  }
}

TEST(GraphErrors, MulShapes) {
  {
    Builder b({8, 8, 3});
    int c = b.Conv("c", 0, 3, 4, 1);
    b.Op("m", OpType::kMul, {0, c});
    ExpectError(b.graph, ErrorCode::kBadShape, "m", "input 1 is 8x8x4");
  }
  {  // broadcast operand with the wrong channel count
    Builder b({8, 8, 3});
    int c = b.Conv("c", 0, 3, 4, 1);
    int gap = b.Op("gap", OpType::kGlobalAvgPool, {c});
    b.Op("m", OpType::kMul, {0, gap});
    ExpectError(b.graph, ErrorCode::kBadShape, "m", "1x1x3");
  }
  {  // only input 1 broadcasts: the output has input 0's shape
    Builder b({8, 8, 3});
    int gap = b.Op("gap", OpType::kGlobalAvgPool, {0});
    b.Op("m", OpType::kMul, {gap, 0});
    ExpectError(b.graph, ErrorCode::kBadShape, "m", "input 1 is 8x8x3");
  }
  {  // a row is not a broadcast shape
    Builder b({8, 8, 3});
    int row = b.Pool("row", OpType::kMaxPool2d, 0, 8, 8);  // 1x1x3 ...
    b.graph.nodes.back().kernel_w = 1;                      // ... now 1x8x3
    b.graph.nodes.back().stride_w = 1;
    b.Op("m", OpType::kMul, {0, row});
    ExpectError(b.graph, ErrorCode::kBadShape, "m", "1x8x3");
  }
  {
    Builder b({8, 8, 3});
    b.Op("m", OpType::kMul, {0});
    ExpectError(b.graph, ErrorCode::kBadGraph, "m", "exactly 2");
  }
  {
    Builder b({8, 8, 3});
    b.Op("m", OpType::kMul, {0, 0}, Activation::kHardSwish);
    b.graph.nodes.back().alpha = __builtin_inff();
    ExpectError(b.graph, ErrorCode::kBadGraph, "m", "hard_swish alpha is not finite");
  }
  {  // fused activations are allowed, the output is input 0's shape
    Builder b({8, 8, 3});
    int gap = b.Op("gap", OpType::kGlobalAvgPool, {0});
    b.Op("m", OpType::kMul, {0, gap}, Activation::kRelu6);
    ASSERT_TRUE(b.graph.Finalize().ok()) << b.graph.Finalize().ToString();
    EXPECT_EQ(b.graph.output_shape(), (Shape{8, 8, 3}));
  }
}

TEST(GraphErrors, PositionMahalanobisTensors) {
  {
    Builder b({8, 6, 3});
    b.PositionMahalanobis("pm", 0, {8, 6, 3});
    ASSERT_TRUE(b.graph.Finalize().ok()) << b.graph.Finalize().ToString();
    EXPECT_EQ(b.graph.output_shape(), (Shape{8, 6, 1}));
  }
  {
    Builder b({8, 6, 3});
    b.PositionMahalanobis("pm", 0, {8, 6, 3});
    b.graph.nodes.back().weight = TensorRef{};
    ExpectError(b.graph, ErrorCode::kBadGraph, "pm", "needs a weight");
  }
  {
    Builder b({8, 6, 3});
    b.PositionMahalanobis("pm", 0, {8, 6, 3});
    b.graph.nodes.back().bias = TensorRef{};
    ExpectError(b.graph, ErrorCode::kBadGraph, "pm", "needs a bias");
  }
  {  // tensors for another map size
    Builder b({8, 6, 3});
    b.PositionMahalanobis("pm", 0, {6, 8, 3});
    ExpectError(b.graph, ErrorCode::kBadShape, "pm",
                "weight has shape [6, 8, 3, 3], expected [gh, gw, 3, 3] with 1 <= gh <= 8, 1 <= gw <= 6");
  }
  {  // whitening matrices for 2x3 regions of the 8x6 map
    Builder b({8, 6, 3});
    b.PositionMahalanobis("pm", 0, {8, 6, 3});
    b.graph.nodes.back().weight = b.Tensor({2, 3, 3, 3});
    ASSERT_TRUE(b.graph.Finalize().ok()) << b.graph.Finalize().ToString();
  }
  {  // tensors for another depth
    Builder b({8, 6, 3});
    b.PositionMahalanobis("pm", 0, {8, 6, 4});
    ExpectError(b.graph, ErrorCode::kBadShape, "pm", "expected [8, 6, 3, 3]");
  }
  {  // bias alone wrong
    Builder b({8, 6, 3});
    b.PositionMahalanobis("pm", 0, {8, 6, 3});
    b.graph.nodes.back().bias = b.Tensor({8, 6, 1});
    ExpectError(b.graph, ErrorCode::kBadShape, "pm", "bias has shape [8, 6, 1], expected [8, 6, 3]");
  }
  {  // the right shape without data
    Builder b({8, 6, 3});
    b.PositionMahalanobis("pm", 0, {8, 6, 3});
    b.graph.nodes.back().weight.data = nullptr;
    ExpectError(b.graph, ErrorCode::kBadGraph, "pm", "weight has no data");
  }
  {
    Builder b({8, 6, 3});
    b.PositionMahalanobis("pm", 0, {8, 6, 3});
    b.graph.nodes.back().activation = Activation::kRelu;
    ExpectError(b.graph, ErrorCode::kBadGraph, "pm", "cannot be fused");
  }
}

TEST(GraphErrors, ActivationElementLimit) {
  // 2048 x 2048 x 16 is exactly the limit; 17 channels exceed it.
  {
    Builder b({kMaxModelInputSide, kMaxModelInputSide, 1});
    b.Conv("wide", 0, 1, 16, 1);
    EXPECT_TRUE(b.graph.Finalize().ok());
  }
  {
    Builder b({kMaxModelInputSide, kMaxModelInputSide, 1});
    b.Conv("wide", 0, 1, 17, 1);
    ExpectError(b.graph, ErrorCode::kLimitExceeded, "wide", "activation limit");
  }
}

TEST(GraphErrors, OverflowSafe) {
  // 2048 * 16 = 32768 per side, 32768^2 * 3 > 2^31: must be rejected, not wrap.
  Builder b({kMaxModelInputSide, kMaxModelInputSide, 3});
  b.Upsample("up", 0, 16);
  ExpectError(b.graph, ErrorCode::kLimitExceeded, "up");
  // Repeated upsampling of a thin input.
  Builder c({1, kMaxModelInputSide, 1});
  int v = 0;
  for (int i = 0; i < 8; ++i) v = c.Upsample("up" + std::to_string(i), v, 16);
  Status st = c.graph.Finalize();
  EXPECT_EQ(st.code(), ErrorCode::kLimitExceeded) << st.ToString();
}

TEST(GraphErrors, MacsWithoutFinalizeIsZero) {
  Builder b({8, 8, 3});
  b.Conv("c", 0, 3, 4, 3);
  EXPECT_EQ(b.graph.Macs(), 0);
}

}  // namespace
}  // namespace flawlens
