// flawlens import-onnx: the importer on small ONNX models built here with the
// protobuf API (checked against direct NCHW reference computations), every
// hostile input gets a clear error, the CLI; the ONNX project's own node tests
// (Debian's libonnx-testdata, skipped when absent); and torchvision networks
// against onnxruntime (skipped without python3-torch or tests/onnx/node_modules).
//
// The conformance table: onnx_import_test --gtest_filter='OnnxConformance.*'
// The torchvision comparison (timing and differences):
//   FLAWLENS_ONNX_ARCHS='resnet18:224x224,256x320;resnet50:224x224' onnx_import_test \
//     --gtest_filter='OnnxTorchvision.*'
// (default: resnet18 at 224x224, exported as usual and with its BatchNorm nodes kept;
// CI runs it).
#include "onnx/onnx_import.h"

#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "model/model.h"
#include "nn/executor.h"
#include "kernels/backends.h"
#include "../run_model.h"

namespace flawlens::onnx_import {
namespace {

using flawlens::testing::RunModel;
namespace fs = std::filesystem;

// ---- building small models ---------------------------------------------------
struct Builder {
  onnx::ModelProto m;
  explicit Builder(int opset = 17) {
    m.set_ir_version(8);
    m.set_producer_name("onnx_import_test");
    onnx::OperatorSetIdProto* o = m.add_opset_import();
    o->set_domain("");
    o->set_version(opset);
    m.mutable_graph()->set_name("test");
  }
  onnx::GraphProto& g() { return *m.mutable_graph(); }
  // h or w <= 0: a dynamic dimension.
  void Input(const std::string& name, int c, int h, int w, int batch = 1) {
    onnx::ValueInfoProto* v = g().add_input();
    v->set_name(name);
    onnx::TypeProto_Tensor* t = v->mutable_type()->mutable_tensor_type();
    t->set_elem_type(onnx::TensorProto_DataType_FLOAT);
    for (int d : {batch, c, h, w}) {
      auto* dim = t->mutable_shape()->add_dim();
      if (d > 0)
        dim->set_dim_value(d);
      else
        dim->set_dim_param("dyn");
    }
  }
  onnx::TensorProto* Init(const std::string& name, std::vector<int64_t> dims,
                          const std::vector<float>& v) {
    onnx::TensorProto* t = g().add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto_DataType_FLOAT);
    for (int64_t d : dims) t->add_dims(d);
    for (float f : v) t->add_float_data(f);
    return t;
  }
  void InitInts(const std::string& name, const std::vector<int64_t>& v) {
    onnx::TensorProto* t = g().add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto_DataType_INT64);
    t->add_dims(static_cast<int64_t>(v.size()));
    for (int64_t x : v) t->add_int64_data(x);
  }
  onnx::NodeProto* Node(const std::string& op, std::vector<std::string> in,
                        std::vector<std::string> out, const std::string& name = "") {
    onnx::NodeProto* n = g().add_node();
    n->set_op_type(op);
    n->set_name(name.empty() ? out[0] : name);
    for (auto& s : in) n->add_input(s);
    for (auto& s : out) n->add_output(s);
    return n;
  }
  static void Ints(onnx::NodeProto* n, const std::string& name, std::vector<int64_t> v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto_AttributeType_INTS);
    for (int64_t x : v) a->add_ints(x);
  }
  static void Int(onnx::NodeProto* n, const std::string& name, int64_t v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto_AttributeType_INT);
    a->set_i(v);
  }
  static void Float(onnx::NodeProto* n, const std::string& name, float v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto_AttributeType_FLOAT);
    a->set_f(v);
  }
  static void String(onnx::NodeProto* n, const std::string& name, const std::string& v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto_AttributeType_STRING);
    a->set_s(v);
  }
  std::string Bytes() const { return m.SerializeAsString(); }
};

Result<ImportResult> Import(const std::string& bytes, std::vector<std::string> outputs, int w = 0,
                            int h = 0) {
  ImportOptions o;
  o.outputs = std::move(outputs);
  o.input_w = w;
  o.input_h = h;
  return ImportOnnx(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), o);
}

std::vector<float> Random(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

// An NCHW tensor (batch 1) for the reference computations.
struct T {
  int c = 0, h = 0, w = 0;
  std::vector<float> v;
  float& at(int ch, int y, int x) { return v[(size_t(ch) * h + y) * w + x]; }
  float at(int ch, int y, int x) const { return v[(size_t(ch) * h + y) * w + x]; }
};

T Nchw(int c, int h, int w, uint32_t seed) { return {c, h, w, Random(size_t(c) * h * w, seed)}; }

std::vector<float> ToNhwc(const T& t) {
  std::vector<float> out(t.v.size());
  for (int ch = 0; ch < t.c; ++ch)
    for (int y = 0; y < t.h; ++y)
      for (int x = 0; x < t.w; ++x) out[(size_t(y) * t.w + x) * t.c + ch] = t.at(ch, y, x);
  return out;
}

// Reference conv (OIHW weights), pads [top, left, bottom, right].
T RefConv(const T& in, const std::vector<float>& wt, const std::vector<float>& bias, int oc, int k,
          int s, int d, int pad[4], int groups) {
  const int eff = d * (k - 1) + 1;
  T out{oc, (in.h + pad[0] + pad[2] - eff) / s + 1, (in.w + pad[1] + pad[3] - eff) / s + 1, {}};
  out.v.assign(size_t(out.c) * out.h * out.w, 0.0f);
  const int ipg = in.c / groups, opg = oc / groups;
  for (int o = 0; o < oc; ++o)
    for (int y = 0; y < out.h; ++y)
      for (int x = 0; x < out.w; ++x) {
        double acc = bias.empty() ? 0.0 : bias[o];
        for (int i = 0; i < ipg; ++i)
          for (int ky = 0; ky < k; ++ky)
            for (int kx = 0; kx < k; ++kx) {
              const int iy = y * s - pad[0] + ky * d, ix = x * s - pad[1] + kx * d;
              if (iy < 0 || ix < 0 || iy >= in.h || ix >= in.w) continue;
              acc += double(wt[((size_t(o) * ipg + i) * k + ky) * k + kx]) *
                     in.at((o / opg) * ipg + i, iy, ix);
            }
        out.at(o, y, x) = float(acc);
      }
  return out;
}

// Reference pools with ONNX semantics (ceil_mode: the last window may reach
// past the end padding; it is clipped to the padded input for the average).
T RefPool(const T& in, bool max, int k, int s, int pad[4], bool ceil_mode, bool include_pad) {
  auto size = [&](int n, int p0, int p1) {
    const int span = n + p0 + p1 - k;
    return (ceil_mode ? (span + s - 1) / s : span / s) + 1;
  };
  T out{in.c, size(in.h, pad[0], pad[2]), size(in.w, pad[1], pad[3]), {}};
  out.v.assign(size_t(out.c) * out.h * out.w, 0.0f);
  for (int c = 0; c < in.c; ++c)
    for (int y = 0; y < out.h; ++y)
      for (int x = 0; x < out.w; ++x) {
        double acc = max ? -INFINITY : 0.0;
        int valid = 0, padded = 0;
        for (int ky = 0; ky < k; ++ky)
          for (int kx = 0; kx < k; ++kx) {
            const int iy = y * s - pad[0] + ky, ix = x * s - pad[1] + kx;
            if (iy >= in.h + pad[2] || ix >= in.w + pad[3]) continue;
            ++padded;
            if (iy < 0 || ix < 0 || iy >= in.h || ix >= in.w) continue;
            ++valid;
            acc = max ? std::max(acc, double(in.at(c, iy, ix))) : acc + in.at(c, iy, ix);
          }
        out.at(c, y, x) = float(max ? acc : acc / (include_pad ? padded : valid));
      }
  return out;
}

// Largest |a - b| over max |b| (the output's scale).
double MaxRelDiff(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  double diff = 0, scale = 1e-30;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, double(std::fabs(a[i] - b[i])));
    scale = std::max(scale, double(std::fabs(b[i])));
  }
  return diff / scale;
}

// ---- numerics on small models ------------------------------------------------
TEST(OnnxImport, ConvBatchNormReluFoldIntoOneNode) {
  Builder b;
  b.Input("x", 3, 9, 11);
  const auto wt = Random(4 * 3 * 3 * 3, 1), bias = Random(4, 2);
  b.Init("w", {4, 3, 3, 3}, wt);
  b.Init("b", {4}, bias);
  const auto gamma = Random(4, 3, 0.5f, 1.5f), beta = Random(4, 4), mean = Random(4, 5),
             var = Random(4, 6, 0.5f, 2.0f);
  b.Init("gamma", {4}, gamma);
  b.Init("beta", {4}, beta);
  b.Init("mean", {4}, mean);
  b.Init("var", {4}, var);
  auto* conv = b.Node("Conv", {"x", "w", "b"}, {"c"});
  Builder::Ints(conv, "strides", {2, 2});
  Builder::Ints(conv, "pads", {1, 0, 1, 2});
  Builder::Ints(conv, "kernel_shape", {3, 3});
  auto* bn = b.Node("BatchNormalization", {"c", "gamma", "beta", "mean", "var"}, {"bn"});
  Builder::Float(bn, "epsilon", 1e-3f);
  b.Node("Relu", {"bn"}, {"y"});
  auto r = Import(b.Bytes(), {"y"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->engine_nodes, 1);  // BN and ReLU folded into the convolution
  EXPECT_EQ(r->in_w, 11);
  EXPECT_EQ(r->in_h, 9);
  const T x = Nchw(3, 9, 11, 7);
  int pad[4] = {1, 0, 1, 2};
  T ref = RefConv(x, wt, bias, 4, 3, 2, 1, pad, 1);
  for (int c = 0; c < 4; ++c)
    for (int y = 0; y < ref.h; ++y)
      for (int xx = 0; xx < ref.w; ++xx) {
        float& v = ref.at(c, y, xx);
        v = std::max(0.0f, (v - mean[c]) / std::sqrt(var[c] + 1e-3f) * gamma[c] + beta[c]);
      }
  Shape shape;
  const auto got = RunModel(r->bytes, ToNhwc(x), &shape);
  EXPECT_EQ(shape, (Shape{ref.h, ref.w, 4}));
  EXPECT_LT(MaxRelDiff(got, ToNhwc(ref)), 1e-5);
}

TEST(OnnxImport, GroupedDilatedConvWithSamePaddingAndFloat16Weights) {
  Builder b;
  b.Input("x", 3, 10, 7);
  // Depthwise with multiplier 2 (group 3, 6 outputs), dilation 2, SAME_UPPER.
  auto wt = Random(6 * 1 * 3 * 3, 11);
  onnx::TensorProto* t = b.g().add_initializer();
  t->set_name("w");
  t->set_data_type(onnx::TensorProto_DataType_FLOAT16);
  for (int64_t d : {6, 1, 3, 3}) t->add_dims(d);
  for (float& f : wt) {  // quantise to halves exactly representable: k / 64
    f = std::round(f * 64.0f) / 64.0f;
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    const uint32_t sign = (bits >> 16) & 0x8000;
    if ((bits & 0x7fffffff) == 0) {
      t->add_int32_data(int32_t(sign));
      continue;
    }
    const int exp = int((bits >> 23) & 0xff) - 127 + 15;
    t->add_int32_data(int32_t(sign | uint32_t(exp) << 10 | ((bits >> 13) & 0x3ff)));
  }
  auto* conv = b.Node("Conv", {"x", "w"}, {"y"});
  Builder::Int(conv, "group", 3);
  Builder::Ints(conv, "dilations", {2, 2});
  Builder::Ints(conv, "strides", {2, 2});
  Builder::String(conv, "auto_pad", "SAME_UPPER");
  auto r = Import(b.Bytes(), {"y"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const T x = Nchw(3, 10, 7, 12);
  // SAME_UPPER: out = ceil(in / s); total pad = (out - 1) s + 5 - in, extra at the end.
  // h: 10 -> 5, total 3 = 1 + 2; w: 7 -> 4, total 4 = 2 + 2.
  int pad[4] = {1, 2, 2, 2};
  const T ref = RefConv(x, wt, {}, 6, 3, 2, 2, pad, 3);
  Shape shape;
  const auto got = RunModel(r->bytes, ToNhwc(x), &shape);
  EXPECT_EQ(shape, (Shape{5, 4, 6}));
  EXPECT_LT(MaxRelDiff(got, ToNhwc(ref)), 1e-5);
}

TEST(OnnxImport, PoolsFollowPadsCeilModeAndCountIncludePad) {
  for (int variant = 0; variant < 4; ++variant) {
    const bool max = variant < 2, ceil = variant % 2 == 1;
    const bool include_pad = variant == 2;
    SCOPED_TRACE(variant);
    Builder b;
    b.Input("x", 3, 12, 9);
    auto* p = b.Node(max ? "MaxPool" : "AveragePool", {"x"}, {"y"});
    Builder::Ints(p, "kernel_shape", {3, 3});
    Builder::Ints(p, "strides", {2, 2});
    Builder::Ints(p, "pads", {1, 1, 0, 1});
    if (ceil) Builder::Int(p, "ceil_mode", 1);
    if (!max) Builder::Int(p, "count_include_pad", include_pad ? 1 : 0);
    auto r = Import(b.Bytes(), {"y"});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    const T x = Nchw(3, 12, 9, 21);
    int pad[4] = {1, 1, 0, 1};
    const T ref = RefPool(x, max, 3, 2, pad, ceil, include_pad);
    Shape shape;
    const auto got = RunModel(r->bytes, ToNhwc(x), &shape);
    EXPECT_EQ(shape, (Shape{ref.h, ref.w, 3}));
    EXPECT_LT(MaxRelDiff(got, ToNhwc(ref)), 1e-6);
  }
}

TEST(OnnxImport, AveragePoolCeilModeCountingPadsIsRejectedByName) {
  Builder b;
  b.Input("x", 3, 12, 12);
  auto* p = b.Node("AveragePool", {"x"}, {"y"}, "pool_ceil");
  Builder::Ints(p, "kernel_shape", {3, 3});
  Builder::Ints(p, "strides", {2, 2});
  Builder::Int(p, "ceil_mode", 1);
  Builder::Int(p, "count_include_pad", 1);
  auto r = Import(b.Bytes(), {"y"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kUnsupported);
  EXPECT_NE(r.status().message().find("pool_ceil"), std::string::npos) << r.status().message();
}

// conv -> x * sigmoid(x) (SiLU) and conv -> HardSwish: each one engine node.
TEST(OnnxImport, SiluAndHardSwishFoldIntoTheConvolution) {
  for (bool silu : {true, false}) {
    Builder b;
    b.Input("x", 3, 8, 8);
    const auto wt = Random(5 * 3, 31);
    b.Init("w", {5, 3, 1, 1}, wt);
    b.Node("Conv", {"x", "w"}, {"c"});
    if (silu) {
      b.Node("Sigmoid", {"c"}, {"s"});
      b.Node("Mul", {"c", "s"}, {"y"});
    } else {
      b.Node("HardSwish", {"c"}, {"y"});
    }
    auto r = Import(b.Bytes(), {"y"});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->engine_nodes, 1);
    const T x = Nchw(3, 8, 8, 32);
    int pad[4] = {0, 0, 0, 0};
    T ref = RefConv(x, wt, {}, 5, 1, 1, 1, pad, 1);
    for (float& v : ref.v) {
      v = silu ? v / (1.0f + std::exp(-v)) : v * std::min(6.0f, std::max(0.0f, v + 3)) / 6.0f;
    }
    EXPECT_LT(MaxRelDiff(RunModel(r->bytes, ToNhwc(x)), ToNhwc(ref)), 1e-5);
  }
}

// MobileNetV3's squeeze-excitation: x * hardsigmoid(conv(relu(conv(mean(x))))).
TEST(OnnxImport, SqueezeExcitationGateAndGeneralHardSigmoid) {
  Builder b;
  b.Input("x", 3, 6, 5);
  const auto w1 = Random(4 * 3, 41), w2 = Random(3 * 4, 42), b2 = Random(3, 43);
  b.Init("w1", {4, 3, 1, 1}, w1);
  b.Init("w2", {3, 4, 1, 1}, w2);
  b.Init("b2", {3}, b2);
  b.Node("GlobalAveragePool", {"x"}, {"m"});
  b.Node("Conv", {"m", "w1"}, {"f1"});
  b.Node("Relu", {"f1"}, {"r"});
  b.Node("Conv", {"r", "w2", "b2"}, {"f2"});
  auto* hs = b.Node("HardSigmoid", {"f2"}, {"g"});
  Builder::Float(hs, "alpha", 0.2f);  // ONNX's default, not PyTorch's 1/6
  b.Node("Mul", {"x", "g"}, {"y"});
  auto r = Import(b.Bytes(), {"y"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const T x = Nchw(3, 6, 5, 44);
  std::vector<double> m(3, 0.0), f1(4, 0.0), g(3, 0.0);
  for (int c = 0; c < 3; ++c)
    for (float v : std::vector<float>(x.v.begin() + c * 30, x.v.begin() + (c + 1) * 30))
      m[c] += v / 30.0;
  for (int o = 0; o < 4; ++o) {
    for (int i = 0; i < 3; ++i) f1[o] += w1[o * 3 + i] * m[i];
    f1[o] = std::max(0.0, f1[o]);
  }
  for (int o = 0; o < 3; ++o) {
    double f = b2[o];
    for (int i = 0; i < 4; ++i) f += w2[o * 4 + i] * f1[i];
    g[o] = std::min(1.0, std::max(0.0, 0.2 * f + 0.5));
  }
  T ref = x;
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < 30; ++i) ref.v[c * 30 + i] = float(x.v[c * 30 + i] * g[c]);
  EXPECT_LT(MaxRelDiff(RunModel(r->bytes, ToNhwc(x)), ToNhwc(ref)), 1e-5);
}

// Per-channel constants (Sub / Div: in-graph normalisation), Constant nodes,
// Identity, then two outputs: the coarser is upsampled and concatenated.
TEST(OnnxImport, ConstantsAndTwoOutputsConcatenated) {
  Builder b;
  b.Input("x", 3, -1, -1);  // dynamic H, W: --input decides
  auto* k = b.Node("Constant", {}, {"mean"});
  auto* a = k->add_attribute();
  a->set_name("value");
  a->set_type(onnx::AttributeProto_AttributeType_TENSOR);
  a->mutable_t()->set_data_type(onnx::TensorProto_DataType_FLOAT);
  for (int64_t d : {1, 3, 1, 1}) a->mutable_t()->add_dims(d);
  for (float f : {0.5f, -0.25f, 0.125f}) a->mutable_t()->add_float_data(f);
  b.Init("std", {3, 1, 1}, {2.0f, 4.0f, 0.5f});
  b.Node("Sub", {"x", "mean"}, {"xs"});
  b.Node("Div", {"xs", "std"}, {"xn"});
  b.Node("Identity", {"xn"}, {"xi"});
  const auto w1 = Random(4 * 3 * 9, 51), w2 = Random(6 * 4 * 9, 52);
  b.Init("w1", {4, 3, 3, 3}, w1);
  b.Init("w2", {6, 4, 3, 3}, w2);
  auto* c1 = b.Node("Conv", {"xi", "w1"}, {"s1"});
  Builder::Ints(c1, "pads", {1, 1, 1, 1});
  auto* c2 = b.Node("Conv", {"s1", "w2"}, {"s2"});
  Builder::Ints(c2, "pads", {1, 1, 1, 1});
  Builder::Ints(c2, "strides", {2, 2});
  auto r = Import(b.Bytes(), {"s1", "s2"}, 12, 8);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->features.size(), 2u);
  EXPECT_EQ(r->features[0].offset, 0);
  EXPECT_EQ(r->features[1].offset, 4);
  EXPECT_EQ(r->features[1].stride_h, 2);
  EXPECT_EQ(r->out_c, 10);
  T x = Nchw(3, 8, 12, 53);
  T xn = x;
  const float mean[3] = {0.5f, -0.25f, 0.125f}, sd[3] = {2.0f, 4.0f, 0.5f};
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < 96; ++i) xn.v[c * 96 + i] = (x.v[c * 96 + i] - mean[c]) / sd[c];
  int pad[4] = {1, 1, 1, 1};
  const T s1 = RefConv(xn, w1, {}, 4, 3, 1, 1, pad, 1);
  const T s2 = RefConv(s1, w2, {}, 6, 3, 2, 1, pad, 1);
  Shape shape;
  const auto got = RunModel(r->bytes, ToNhwc(x), &shape);
  ASSERT_EQ(shape, (Shape{8, 12, 10}));
  // Channels 0..3 are s1 exactly; 4..9 are s2 upsampled (at the centres of
  // its cells' 2x2 blocks' top-left, bilinear equals the cell only where the
  // neighbours agree, so check s1 exactly and s2's mean over the map).
  std::vector<float> s1n = ToNhwc(s1), got1;
  double mean_got = 0, mean_ref = 0;
  for (int p = 0; p < 96; ++p) {
    for (int c = 0; c < 4; ++c) got1.push_back(got[p * 10 + c]);
    for (int c = 4; c < 10; ++c) mean_got += got[p * 10 + c] / 96.0;
  }
  for (float v : s2.v) mean_ref += v / 24.0;
  EXPECT_LT(MaxRelDiff(got1, s1n), 1e-5);
  EXPECT_NEAR(mean_got, mean_ref, 1e-3 * (1 + std::fabs(mean_ref)));
}

TEST(OnnxImport, ResizeNearestRepeatsPixels) {
  Builder b;
  b.Input("x", 1, 3, 4);
  b.Init("scales", {4}, {1, 1, 2, 3});
  auto* rs = b.Node("Resize", {"x", "", "scales"}, {"y"});
  Builder::String(rs, "mode", "nearest");
  Builder::String(rs, "coordinate_transformation_mode", "asymmetric");
  Builder::String(rs, "nearest_mode", "floor");
  auto r = Import(b.Bytes(), {"y"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const T x = Nchw(1, 3, 4, 61);
  Shape shape;
  const auto got = RunModel(r->bytes, x.v, &shape);
  ASSERT_EQ(shape, (Shape{6, 12, 1}));
  for (int y = 0; y < 6; ++y)
    for (int xx = 0; xx < 12; ++xx) EXPECT_EQ(got[y * 12 + xx], x.at(0, y / 2, xx / 3));
}

// Opset 10: Clip's bounds are attributes; ReduceMean without keepdims gives
// a [1, C] tensor (a 1x1xC engine value).
TEST(OnnxImport, LegacyClipAndReduceMeanWithoutKeepdims) {
  Builder b(10);
  b.Input("x", 3, 4, 5);
  auto* clip = b.Node("Clip", {"x"}, {"c"});
  Builder::Float(clip, "min", 0.0f);
  Builder::Float(clip, "max", 6.0f);
  auto* mean = b.Node("ReduceMean", {"c"}, {"y"});
  Builder::Ints(mean, "axes", {-1, 2});
  Builder::Int(mean, "keepdims", 0);
  auto r = Import(b.Bytes(), {"y"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  T x = Nchw(3, 4, 5, 81);
  for (float& v : x.v) v *= 10.0f;
  Shape shape;
  const auto got = RunModel(r->bytes, ToNhwc(x), &shape);
  ASSERT_EQ(shape, (Shape{1, 1, 3}));
  for (int c = 0; c < 3; ++c) {
    double want = 0;
    for (int i = 0; i < 20; ++i) want += std::min(6.0f, std::max(0.0f, x.v[c * 20 + i])) / 20.0;
    EXPECT_NEAR(got[c], want, 1e-5);
  }
}

// ---- hostile and wrong input: each a clear error ------------------------------
std::string SmallModel() {
  Builder b;
  b.Input("x", 3, 8, 8);
  b.Init("w", {2, 3, 1, 1}, Random(6, 71));
  b.Node("Conv", {"x", "w"}, {"c"}, "conv1");
  b.Node("Relu", {"c"}, {"y"}, "relu1");
  return b.Bytes();
}

TEST(OnnxImport, SmallModelImports) {
  auto r = Import(SmallModel(), {"y"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->onnx_nodes_used, 2);
  EXPECT_NE(r->spec.card_json.find("\"kind\":\"backbone\""), std::string::npos);
}

TEST(OnnxImport, TruncatedProtobufIsAnError) {
  const std::string full = SmallModel();
  int errors = 0;
  for (size_t cut = 0; cut < full.size(); cut += std::max<size_t>(1, full.size() / 97)) {
    auto r = Import(full.substr(0, cut), {"y"});
    // A cut on a field boundary can still parse; then the graph is incomplete.
    if (!r.ok())
      ++errors;
    else
      ADD_FAILURE() << "a model cut at " << cut << " of " << full.size() << " imported";
  }
  EXPECT_GT(errors, 50);
  auto r = Import(full.substr(0, full.size() / 2), {"y"});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("import-onnx"), std::string::npos);
}

TEST(OnnxImport, HugeDimsAreRejectedBeforeAllocating) {
  for (int64_t d : {int64_t{1} << 40, int64_t{-3}, int64_t{1} << 20}) {
    Builder b;
    b.Input("x", 3, 8, 8);
    onnx::TensorProto* t = b.g().add_initializer();
    t->set_name("w");
    t->set_data_type(onnx::TensorProto_DataType_FLOAT);
    for (int64_t x : {d, int64_t{1} << 20, int64_t{3}, int64_t{1}}) t->add_dims(x);
    b.Node("Conv", {"x", "w"}, {"y"});
    auto r = Import(b.Bytes(), {"y"});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), ErrorCode::kLimitExceeded) << r.status().ToString();
    EXPECT_NE(r.status().message().find("initializer 'w'"), std::string::npos);
  }
  // Declared shape larger than the data it holds.
  Builder b;
  b.Input("x", 3, 8, 8);
  b.Init("w", {2, 3, 3, 3}, Random(5, 1));
  b.Node("Conv", {"x", "w"}, {"y"});
  auto r = Import(b.Bytes(), {"y"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kTruncated) << r.status().ToString();
  // A huge input size.
  Builder c;
  c.Input("x", 3, 1 << 30, 8);
  c.Node("Relu", {"x"}, {"y"});
  r = Import(c.Bytes(), {"y"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kLimitExceeded) << r.status().ToString();
}

TEST(OnnxImport, CyclesAreFound) {
  Builder b;
  b.Input("x", 3, 8, 8);
  b.Node("Add", {"x", "b_out"}, {"a_out"}, "node_a");
  b.Node("Relu", {"a_out"}, {"b_out"}, "node_b");
  auto r = Import(b.Bytes(), {"b_out"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kBadGraph);
  EXPECT_NE(r.status().message().find("cycle"), std::string::npos) << r.status().message();
  // A node reading its own output.
  Builder c;
  c.Input("x", 3, 8, 8);
  c.Node("Relu", {"self"}, {"self"}, "loop");
  r = Import(c.Bytes(), {"self"});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("cycle"), std::string::npos) << r.status().message();
}

TEST(OnnxImport, MissingInitializerNamesTheTensor) {
  Builder b;
  b.Input("x", 3, 8, 8);
  b.Node("Conv", {"x", "conv1.weight"}, {"y"}, "conv1");
  auto r = Import(b.Bytes(), {"y"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kBadGraph);
  EXPECT_NE(r.status().message().find("'conv1.weight'"), std::string::npos);
  EXPECT_NE(r.status().message().find("missing initializer"), std::string::npos);
}

TEST(OnnxImport, UnsupportedOpNamesTheNode) {
  Builder b;
  b.Input("x", 3, 8, 8);
  b.Node("Relu", {"x"}, {"r"});
  b.Node("Tanh", {"r"}, {"t"}, "head/tanh_7");
  b.Node("Relu", {"t"}, {"y"});
  auto r = Import(b.Bytes(), {"y"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kUnsupported);
  const std::string& msg = r.status().message();
  EXPECT_NE(msg.find("node 'head/tanh_7' (op 'Tanh')"), std::string::npos) << msg;
  EXPECT_NE(msg.find("on the path to 'y'"), std::string::npos) << msg;
  // An unsupported attribute value names the node too.
  Builder c;
  c.Input("x", 3, 8, 8);
  auto* clip = c.Node("Clip", {"x", "lo", "hi"}, {"y"}, "clip_0_1");
  (void)clip;
  c.Init("lo", {}, {0.0f});
  c.Init("hi", {}, {1.0f});
  r = Import(c.Bytes(), {"y"});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("clip_0_1"), std::string::npos) << r.status().message();
  // Two-input Sub of tensors, a 3-D conv weight, an unknown domain.
  Builder d;
  d.Input("x", 3, 8, 8);
  d.Node("Relu", {"x"}, {"r"});
  d.Node("Sub", {"x", "r"}, {"y"}, "sub_two");
  r = Import(d.Bytes(), {"y"});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("sub_two"), std::string::npos) << r.status().message();
  Builder e;
  e.Input("x", 3, 8, 8);
  e.Node("Relu", {"x"}, {"y"}, "custom")->set_domain("com.example");
  r = Import(e.Bytes(), {"y"});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("com.example"), std::string::npos) << r.status().message();
}

TEST(OnnxImport, WrongOutputNameListsTheGraphOutputs) {
  Builder b;
  b.Input("x", 3, 8, 8);
  b.Node("Relu", {"x"}, {"y"});
  b.g().add_output()->set_name("y");
  auto r = Import(b.Bytes(), {"layer9"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kBadGraph);
  EXPECT_NE(r.status().message().find("'layer9' is not a tensor of the graph"), std::string::npos)
      << r.status().message();
  EXPECT_NE(r.status().message().find("'y'"), std::string::npos);
  // The input itself, an initializer, a duplicate.
  b.Init("k", {1}, {1.0f});
  EXPECT_FALSE(Import(b.Bytes(), {"x"}).ok());
  EXPECT_FALSE(Import(b.Bytes(), {"k"}).ok());
  EXPECT_FALSE(Import(b.Bytes(), {"y", "y"}).ok());
  EXPECT_FALSE(Import(b.Bytes(), {}).ok());
  // MaxPool's Indices output.
  Builder c;
  c.Input("x", 3, 8, 8);
  auto* p = c.Node("MaxPool", {"x"}, {"y", "idx"}, "pool");
  Builder::Ints(p, "kernel_shape", {2, 2});
  r = Import(c.Bytes(), {"idx"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kUnsupported);
  EXPECT_NE(r.status().message().find("secondary output of node 'pool'"), std::string::npos)
      << r.status().message();
}

TEST(OnnxImport, OutOfScopeModelsSayWhy) {
  struct Case {
    const char* what;
    std::string bytes;
    const char* expect;
  };
  std::vector<Case> cases;
  {
    Builder b(18);
    b.Input("x", 3, 8, 8);
    b.Node("Relu", {"x"}, {"y"});
    cases.push_back({"opset 18", b.Bytes(), "opset 18"});
  }
  {
    Builder b;
    b.Input("x", 3, 8, 8, /*batch=*/2);
    b.Node("Relu", {"x"}, {"y"});
    cases.push_back({"batch 2", b.Bytes(), "batch 2"});
  }
  {
    Builder b;
    b.Input("x", 5, 8, 8);
    b.Node("Relu", {"x"}, {"y"});
    cases.push_back({"5 channels", b.Bytes(), "5 channels"});
  }
  {
    Builder b;
    b.Input("x", 3, 8, 8);
    onnx::TensorProto* t = b.Init("w", {2, 3, 1, 1}, {});
    t->set_data_location(onnx::TensorProto_DataLocation_EXTERNAL);
    b.Node("Conv", {"x", "w"}, {"y"});
    cases.push_back({"external data", b.Bytes(), "external file"});
  }
  {
    Builder b;
    b.Input("x", 3, 8, 8);
    b.Input("x2", 3, 8, 8);
    b.Node("Add", {"x", "x2"}, {"y"});
    cases.push_back({"two inputs", b.Bytes(), "two graph inputs"});
  }
  {
    Builder b;
    b.Input("x", 3, 8, 8);
    b.Node("Flatten", {"x"}, {"y"}, "flat");
    cases.push_back({"flatten of a map", b.Bytes(), "flat"});
  }
  for (const Case& c : cases) {
    auto r = Import(c.bytes, {"y"});
    ASSERT_FALSE(r.ok()) << c.what;
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos)
        << c.what << ": " << r.status().message();
  }
  // A fixed input size that disagrees with --input.
  auto r = Import(SmallModel(), {"y"}, 16, 16);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("fixed at 8x8"), std::string::npos) << r.status().message();
  // Not protobuf at all.
  r = Import("this is not an onnx file", {"y"});
  ASSERT_FALSE(r.ok());
  r = Import("", {"y"});
  ASSERT_FALSE(r.ok());
}

// ---- the CLI -------------------------------------------------------------------
TEST(OnnxImport, CliWritesABackbone) {
  const fs::path dir = fs::path(FLAWLENS_BINARY_DIR) / "onnx_import_test_cli";
  fs::create_directories(dir);
  const std::string model = (dir / "small.onnx").string(),
                    out = (dir / "small.safetensors").string();
  std::ofstream(model, std::ios::binary) << SmallModel();
  fs::remove(out);
  const std::string cli = FLAWLENS_CLI;
  int rc = std::system((cli + " import-onnx '" + model + "' --outputs y --out '" + out +
                        "' --scale 0.00392156862745098 --mean 0.485,0.456,0.406 --std "
                        "0.229,0.224,0.225 --licence 'BSD-3-Clause' > /dev/null")
                           .c_str());
  ASSERT_EQ(rc, 0);
  std::ifstream f(out, std::ios::binary);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto loaded = LoadModel(bytes.data(), bytes.size());
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_NEAR((*loaded)->preprocess.mean[1], 0.456f, 1e-6f);
  EXPECT_NEAR((*loaded)->preprocess.std[2], 0.225f, 1e-6f);
  EXPECT_NE((*loaded)->card_json.find("BSD-3-Clause"), std::string::npos);
  rc = std::system(
      (cli + " import-onnx '" + model + "' --outputs nope --out '" + out + "' 2> /dev/null")
          .c_str());
  EXPECT_NE(rc, 0);
  rc = std::system((cli + " import-onnx '" + model + "' --list > /dev/null").c_str());
  EXPECT_EQ(rc, 0);
}

// ---- conformance: the ONNX project's node tests ---------------------------------
fs::path TestDataDir() {
  if (const char* env = std::getenv("FLAWLENS_ONNX_TESTDATA")) return env;
  return "/usr/share/libonnx-testdata/data/node";
}

bool ReadTensor(const fs::path& p, onnx::TensorProto* t) {
  std::ifstream f(p, std::ios::binary);
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return f.good() || f.eof() ? t->ParseFromString(s) : false;
}

bool FloatData(const onnx::TensorProto& t, std::vector<float>* out) {
  if (t.data_type() != onnx::TensorProto_DataType_FLOAT) return false;
  int64_t n = 1;
  for (int64_t d : t.dims()) n *= d;
  if (t.has_raw_data()) {
    if (t.raw_data().size() != size_t(n) * 4) return false;
    out->resize(n);
    std::memcpy(out->data(), t.raw_data().data(), n * 4);
  } else {
    if (t.float_data_size() != n) return false;
    out->assign(t.float_data().begin(), t.float_data().end());
  }
  return true;
}

// The operators the importer maps (docs/ONNX.md).
const std::set<std::string> kOps = {"Conv",
                                    "BatchNormalization",
                                    "Relu",
                                    "LeakyRelu",
                                    "Clip",
                                    "Sigmoid",
                                    "HardSigmoid",
                                    "HardSwish",
                                    "MaxPool",
                                    "AveragePool",
                                    "GlobalAveragePool",
                                    "GlobalMaxPool",
                                    "ReduceMean",
                                    "Add",
                                    "Sub",
                                    "Mul",
                                    "Div",
                                    "Concat",
                                    "Resize",
                                    "Upsample",
                                    "Flatten",
                                    "Identity",
                                    "Dropout"};

struct Outcome {
  std::string test, op;
  enum { kPass, kOutOfScope, kFail } kind;
  std::string why;
};

Outcome RunNodeTest(const fs::path& dir) {
  Outcome o{dir.filename().string(), "", Outcome::kOutOfScope, ""};
  onnx::ModelProto m;
  {
    std::ifstream f(dir / "model.onnx", std::ios::binary);
    std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (!m.ParseFromString(s)) {
      o.why = "model.onnx does not parse";
      o.kind = Outcome::kFail;
      return o;
    }
  }
  std::set<std::string> ops;
  for (const auto& n : m.graph().node()) ops.insert(n.op_type());
  for (const std::string& op : ops) o.op += (o.op.empty() ? "" : "+") + op;
  const fs::path data = dir / "test_data_set_0";
  std::vector<onnx::TensorProto> inputs(m.graph().input_size());
  for (int k = 0; k < m.graph().input_size(); ++k) {
    if (!ReadTensor(data / ("input_" + std::to_string(k) + ".pb"), &inputs[k])) {
      o.why = "an input is missing or not a tensor (sequence / optional types)";
      return o;
    }
  }
  onnx::TensorProto expected;
  if (!ReadTensor(data / "output_0.pb", &expected)) {
    o.why = "the output is not a tensor";
    return o;
  }
  if (inputs.empty()) {
    o.why = "no input";
    return o;
  }
  // An elementwise test on a rank-1..3 tensor is the same test on that
  // tensor viewed as 4-D (1s prepended: ONNX broadcasting aligns the right).
  static const std::set<std::string> kElementwise = {
      "Relu",    "LeakyRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Clip",    "Identity",
      "Dropout", "Add",       "Sub",     "Mul",         "Div",       "Constant"};
  bool elementwise = true;
  for (const auto& n : m.graph().node())
    elementwise = elementwise && kElementwise.count(n.op_type());
  bool viewed = false;
  if (elementwise && !inputs.empty() && inputs[0].dims_size() >= 1 && inputs[0].dims_size() < 4) {
    viewed = true;
    for (onnx::TensorProto* t : {&inputs[0], &expected}) {
      std::vector<int64_t> dims(t->dims().begin(), t->dims().end());
      dims.insert(dims.begin(), 4 - dims.size(), 1);
      t->clear_dims();
      for (int64_t d : dims) t->add_dims(d);
    }
  }
  const onnx::TensorProto& x = inputs[0];
  std::vector<float> xin, want;
  if (x.data_type() != onnx::TensorProto_DataType_FLOAT || !FloatData(x, &xin)) {
    o.why = "input type " + std::to_string(x.data_type()) + " (float32 images only)";
    return o;
  }
  if (x.dims_size() != 4) {
    o.why = "input rank " + std::to_string(x.dims_size()) + " (4-D NCHW only)";
    return o;
  }
  // Batch elements are independent for every mapped operator: a batch-N
  // test runs as N batch-1 runs when the output has the same batch.
  const int batch = int(x.dims(0));
  if (batch < 1 || expected.dims_size() < 1 || expected.dims(0) != batch) {
    o.why = "batch " + std::to_string(x.dims(0)) + " folded into another axis";
    return o;
  }
  if (x.dims(1) != 1 && x.dims(1) != 3) {
    o.why = std::to_string(x.dims(1)) + " input channels (an image: 1 or 3)";
    return o;
  }
  if (!FloatData(expected, &want)) {
    o.why = "output type " + std::to_string(expected.data_type()) + " (float32 only)";
    return o;
  }
  if (!(expected.dims_size() == 4 || (expected.dims_size() == 2 && expected.dims(0) == 1))) {
    o.why = "output rank " + std::to_string(expected.dims_size()) + " (4-D, or [1, C])";
    return o;
  }
  // The other inputs are the node's constant operands (weights, scales,
  // bounds): initializers, as a backbone holds them.
  onnx::ModelProto fixed = m;
  if (batch > 1) {
    auto* shape = fixed.mutable_graph()
                      ->mutable_input(0)
                      ->mutable_type()
                      ->mutable_tensor_type()
                      ->mutable_shape();
    if (shape->dim_size() > 0) shape->mutable_dim(0)->set_dim_value(1);
  }
  if (viewed) {
    auto* shape = fixed.mutable_graph()
                      ->mutable_input(0)
                      ->mutable_type()
                      ->mutable_tensor_type()
                      ->mutable_shape();
    shape->clear_dim();
    for (int64_t d : x.dims()) shape->add_dim()->set_dim_value(d);
  }
  for (int k = 1; k < m.graph().input_size(); ++k) {
    onnx::TensorProto* t = fixed.mutable_graph()->add_initializer();
    *t = inputs[k];
    t->set_name(m.graph().input(k).name());
  }
  const std::string bytes = fixed.SerializeAsString();
  ImportOptions opt;
  opt.outputs = {m.graph().output(0).name()};
  opt.input_h = int(x.dims(2));
  opt.input_w = int(x.dims(3));
  auto r = ImportOnnx(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), opt);
  if (!r.ok()) {
    const std::string& msg = r.status().message();
    const std::string cut = "is not supported: ";
    const size_t at = msg.find(cut);
    o.why = "rejected: " + (at != std::string::npos ? msg.substr(at + cut.size())
                                                    : msg.substr(msg.find(": ") + 2));
    o.kind = r.status().code() == ErrorCode::kUnsupported ? Outcome::kOutOfScope : Outcome::kFail;
    return o;
  }
  // Expected NCHW -> NHWC (rank 2 [1, C] is a 1x1xC map).
  const int c = int(expected.dims(1));
  const int h = expected.dims_size() == 4 ? int(expected.dims(2)) : 1;
  const int w = expected.dims_size() == 4 ? int(expected.dims(3)) : 1;
  const size_t in_per = xin.size() / batch, out_per = want.size() / batch;
  std::vector<float> got, ref;
  for (int b = 0; b < batch; ++b) {
    T xt{int(x.dims(1)), int(x.dims(2)), int(x.dims(3)),
         std::vector<float>(xin.begin() + b * in_per, xin.begin() + (b + 1) * in_per)};
    T wt{c, h, w, std::vector<float>(want.begin() + b * out_per, want.begin() + (b + 1) * out_per)};
    Shape shape;
    const std::vector<float> g = RunModel(r->bytes, ToNhwc(xt), &shape);
    if (shape != Shape{h, w, c}) {
      o.kind = Outcome::kFail;
      o.why = "output shape differs";
      return o;
    }
    const std::vector<float> rf = ToNhwc(wt);
    got.insert(got.end(), g.begin(), g.end());
    ref.insert(ref.end(), rf.begin(), rf.end());
  }
  for (size_t i = 0; i < ref.size(); ++i) {
    // The ONNX backend test tolerances: rtol 1e-3, atol 1e-7 (atol raised
    // to 1e-5 for float32 sums computed in another order).
    if (!(std::fabs(got[i] - ref[i]) <= 1e-5 + 1e-3 * std::fabs(ref[i]))) {
      o.kind = Outcome::kFail;
      o.why = "value " + std::to_string(i) + ": " + std::to_string(got[i]) + " vs " +
              std::to_string(ref[i]);
      return o;
    }
  }
  o.kind = Outcome::kPass;
  if (viewed) o.why = "(viewed as 4-D)";
  if (batch > 1) o.why = "(batch " + std::to_string(batch) + ", one element at a time)";
  return o;
}

TEST(OnnxConformance, NodeTestsOfEveryMappedOperator) {
  const fs::path root = TestDataDir();
  if (!fs::is_directory(root)) GTEST_SKIP() << root << " absent (apt install libonnx-testdata)";
  std::vector<fs::path> dirs;
  for (const auto& e : fs::directory_iterator(root)) {
    if (fs::exists(e.path() / "model.onnx")) dirs.push_back(e.path());
  }
  std::sort(dirs.begin(), dirs.end());
  std::vector<Outcome> outcomes;
  for (const fs::path& d : dirs) {
    onnx::ModelProto m;
    std::ifstream f(d / "model.onnx", std::ios::binary);
    std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (!m.ParseFromString(s)) continue;
    bool mapped = m.graph().node_size() > 0;
    for (const auto& n : m.graph().node())
      mapped = mapped && (kOps.count(n.op_type()) || n.op_type() == "Constant");
    if (!mapped) continue;
    outcomes.push_back(RunNodeTest(d));
  }
  // The table: operator x passed / out of scope / failed, then every test.
  std::map<std::string, std::array<int, 3>> table;
  for (const Outcome& o : outcomes) table[o.op][o.kind]++;
  std::printf("\n%-40s %6s %12s %6s\n", "operator", "passed", "out of scope", "failed");
  int totals[3] = {0, 0, 0};
  for (const auto& [op, n] : table) {
    std::printf("%-40s %6d %12d %6d\n", op.c_str(), n[0], n[1], n[2]);
    for (int k = 0; k < 3; ++k) totals[k] += n[k];
  }
  std::printf("%-40s %6d %12d %6d\n\n", "total", totals[0], totals[1], totals[2]);
  for (const Outcome& o : outcomes) {
    const char* kind = o.kind == Outcome::kPass   ? "pass"
                       : o.kind == Outcome::kFail ? "FAIL"
                                                  : "out of scope";
    std::printf("  %-52s %-13s %s\n", o.test.c_str(), kind, o.why.c_str());
  }
  for (const Outcome& o : outcomes) {
    EXPECT_NE(o.kind, Outcome::kFail) << o.test << ": " << o.why;
  }
  // The operators whose node tests fall inside the engine's scope (the
  // others' tests are batch > 1, rank != 4 or full-tensor operands; see
  // docs/ONNX.md): each keeps at least one passing test.
  for (const char* op : {"Conv", "BatchNormalization", "MaxPool", "AveragePool",
                         "GlobalAveragePool", "GlobalMaxPool", "Relu", "LeakyRelu", "Sigmoid",
                         "HardSigmoid", "HardSwish", "Clip", "Resize", "Upsample"}) {
    EXPECT_GT(table[op][0], 0) << op << ": no node test passes";
  }
}

// ---- torchvision networks against onnxruntime --------------------------------------
std::string Python() {
  for (const char* py : {"python3", "/usr/bin/python3"}) {
    if (std::system(
            (std::string(py) + " -c 'import torch, torchvision' > /dev/null 2>&1").c_str()) == 0)
      return py;
  }
  return "";
}

std::string Capture(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  if (pclose(p) != 0) return "";
  return out;
}

TEST(OnnxTorchvision, FeaturesMatchOnnxRuntime) {
  const fs::path src = fs::path(FLAWLENS_SOURCE_DIR) / "tests" / "onnx";
  if (!fs::exists(src / "node_modules" / "onnxruntime-node")) {
    GTEST_SKIP() << "onnxruntime-node absent (cd tests/onnx && npm ci --ignore-scripts)";
  }
  const std::string py = Python();
  if (py.empty()) GTEST_SKIP() << "python3 with torch and torchvision absent";
  const char* env = std::getenv("FLAWLENS_ONNX_ARCHS");
  const std::string spec = env ? env : "resnet18:224x224;resnet18+bn:224x224";
  const fs::path dir = fs::path(FLAWLENS_BINARY_DIR) / "onnx-models";
  fs::create_directories(dir);
  const int runs =
      std::getenv("FLAWLENS_ONNX_RUNS") ? std::atoi(std::getenv("FLAWLENS_ONNX_RUNS")) : 3;
  std::printf("\n%-22s %-8s %9s %9s %9s %9s %7s %11s\n", "arch", "input", "nodes", "import ms",
              "ours ms", "ort ms", "ratio", "max rel diff");
  std::stringstream archs(spec);
  for (std::string item; std::getline(archs, item, ';');) {
    const size_t colon = item.find(':');
    const std::string arch = item.substr(0, colon);  // NAME or NAME+bn (BatchNorm nodes kept)
    const bool keep_bn = arch.size() > 3 && arch.compare(arch.size() - 3, 3, "+bn") == 0;
    const std::string net = keep_bn ? arch.substr(0, arch.size() - 3) : arch;
    const fs::path onnx_path = dir / (arch + ".onnx");
    std::string names =
        Capture(py + " '" + (src / "export_torchvision.py").string() + "' " + net + " '" +
                onnx_path.string() + "'" + (keep_bn ? " --keep-batchnorm" : "") + " 2>/dev/null");
    ASSERT_FALSE(names.empty()) << "export of " << arch << " failed";
    std::vector<std::string> outputs;
    std::stringstream ns(names);
    for (std::string n; std::getline(ns, n);)
      if (!n.empty()) outputs.push_back(n);
    std::stringstream sizes(colon == std::string::npos ? "224x224" : item.substr(colon + 1));
    for (std::string size; std::getline(sizes, size, ',');) {
      SCOPED_TRACE(arch + " " + size);
      int w = 0, h = 0;
      ASSERT_EQ(std::sscanf(size.c_str(), "%dx%d", &w, &h), 2);
      ImportOptions opt;
      opt.input_w = w;
      opt.input_h = h;
      const auto t0 = std::chrono::steady_clock::now();
      // Each output on its own (no upsampling), to compare with onnxruntime's.
      std::vector<ImportResult> parts;
      for (const std::string& out : outputs) {
        opt.outputs = {out};
        auto r = ImportOnnxFile(onnx_path.string(), opt);
        ASSERT_TRUE(r.ok()) << r.status().ToString();
        parts.push_back(std::move(*r));
      }
      const double import_ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() /
          outputs.size();
      // Both outputs in one backbone, as `flawlens train --backbone` gets it.
      opt.outputs = outputs;
      auto both = ImportOnnxFile(onnx_path.string(), opt);
      ASSERT_TRUE(both.ok()) << both.status().ToString();
      T x = Nchw(3, h, w, 99);
      const fs::path in_path = dir / (arch + "_in.f32");
      std::ofstream(in_path, std::ios::binary)
          .write(reinterpret_cast<const char*>(x.v.data()), x.v.size() * 4);
      const std::string prefix = (dir / (arch + "_ort_")).string();
      const std::string line =
          Capture("cd '" + src.string() + "' && node ort_run.mjs '" + onnx_path.string() + "' '" +
                  in_path.string() + "' 3 " + std::to_string(h) + " " + std::to_string(w) + " '" +
                  prefix + "' " + std::to_string(runs));
      ASSERT_FALSE(line.empty()) << "onnxruntime failed";
      const size_t ms_at = line.find("\"ms\":");
      const double ort_ms = std::atof(line.c_str() + ms_at + 5);
      // Ours: the whole two-output backbone at one thread, the same runs.
      auto model = LoadModel(both->bytes.data(), both->bytes.size());
      ASSERT_TRUE(model.ok());
      ExecutorOptions eo;
      eo.threads = 1;
      auto ex = CreateExecutor((*model)->graph, eo);
      ASSERT_TRUE(ex.ok()) << ex.status().ToString();
      const std::vector<float> xn = ToNhwc(x);
      std::copy(xn.begin(), xn.end(), (*ex)->input());
      (*ex)->Run();
      std::vector<double> times;
      for (int k = 0; k < runs; ++k) {
        const auto a = std::chrono::steady_clock::now();
        (*ex)->Run();
        times.push_back(
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a)
                .count());
      }
      std::sort(times.begin(), times.end());
      const double ours_ms = times[times.size() / 2];
      double worst = 0;
      for (size_t k = 0; k < outputs.size(); ++k) {
        std::ifstream f(prefix + std::to_string(k) + ".f32", std::ios::binary);
        std::vector<float> ref(size_t(parts[k].out_c) * parts[k].out_h * parts[k].out_w);
        f.read(reinterpret_cast<char*>(ref.data()), ref.size() * 4);
        ASSERT_TRUE(f.good()) << "onnxruntime's output " << k << " has another size";
        Shape shape;
        const std::vector<float> got = RunModel(parts[k].bytes, xn, &shape);
        T rt{parts[k].out_c, parts[k].out_h, parts[k].out_w, ref};
        const double diff = MaxRelDiff(got, ToNhwc(rt));
        EXPECT_LT(diff, 1e-4) << outputs[k];
        worst = std::max(worst, diff);
      }
      const std::string nodes =
          std::to_string(both->onnx_nodes_used) + ">" + std::to_string(both->engine_nodes);
      std::printf("%-22s %-8s %9s %9.1f %9.1f %9.1f %7.2f %11.2e\n", arch.c_str(), size.c_str(),
                  nodes.c_str(), import_ms, ours_ms, ort_ms, ours_ms / ort_ms, worst);
      std::fflush(stdout);
    }
  }
}

}  // namespace
}  // namespace flawlens::onnx_import
