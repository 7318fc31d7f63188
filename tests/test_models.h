// Header-only builders of small flawlens models (SpecBuilder, model files)
// and graphs (GraphBuilder, nn::Graph directly) for tests (tests/unit/*_test.cc
// are separate binaries, so shared helpers live here). Weights are
// deterministic: fixed-seed SplitMix64 (models) or xorshift64 (graphs).
//
//   flawlens::ModelSpec spec = flawlens::testing::SeedCnnSpec(/*with_seed_crop=*/true);
//   std::vector<uint8_t> bytes = flawlens::WriteModel(spec);
//   auto model = flawlens::LoadModel(bytes.data(), bytes.size());
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "image/preprocess.h"
#include "model/graph_builder.h"
#include "model/model.h"
#include "nn/graph.h"

namespace flawlens {
namespace testing {

// SplitMix64: tiny, fixed across platforms (native and wasm give the same bits).
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [-1, 1).
  float Uniform() { return static_cast<float>(static_cast<double>(Next() >> 11) * 0x1.0p-52 - 1.0); }

 private:
  uint64_t state_;
};

// xorshift64, uniform in [lo, hi): the generator of the graph-level tests
// (executor, XNNPACK), kept so their weights and inputs stay the same.
class XorShiftRng {
 public:
  explicit XorShiftRng(uint64_t seed) : s_(seed * 0x9E3779B97F4A7C15ull + 1) {}
  float Uniform(float lo, float hi) {
    s_ ^= s_ << 13;
    s_ ^= s_ >> 7;
    s_ ^= s_ << 17;
    return lo + (hi - lo) * static_cast<float>((s_ >> 40) & 0xFFFFFF) / 16777216.0f;
  }

 private:
  uint64_t s_;
};

// Builds a Graph directly (no model file) for graph / executor / backend
// tests. Weights live in the builder (deque: addresses stay put, also when the
// builder is moved); each node-adding call returns the new value id.
class GraphBuilder {
 public:
  explicit GraphBuilder(Shape input, uint64_t seed = 1) : rng_(seed) { graph.input = input; }

  // Uniform in [-scale, scale).
  TensorRef Random(std::vector<int64_t> shape, float scale) {
    std::vector<float>& data = Storage(shape);
    for (float& v : data) v = rng_.Uniform(-scale, scale);
    return Ref(std::move(shape), data);
  }
  // Every element `value` (shape checks that do not care about the values).
  TensorRef Tensor(std::vector<int64_t> shape, float value = 0.01f) {
    std::vector<float>& data = Storage(shape);
    for (float& v : data) v = value;
    return Ref(std::move(shape), data);
  }

  int Add(Node node) {
    graph.nodes.push_back(std::move(node));
    graph.output = static_cast<int>(graph.nodes.size());
    return graph.output;
  }
  // k x k conv, weight [out_c, k, k, in_c / groups] scaled 1.5 / sqrt(fan_in),
  // bias, leaky-ReLU alpha 0.1.
  int Conv(const std::string& name, int in, int in_c, int out_c, int k, int stride = 1,
           int pad = 0, int groups = 1, Activation act = Activation::kNone) {
    Node n = Named(name, OpType::kConv2d, {in});
    n.kernel_h = n.kernel_w = k;
    n.stride_h = n.stride_w = stride;
    n.pad_top = n.pad_left = n.pad_bottom = n.pad_right = pad;
    n.groups = groups;
    n.out_channels = out_c;
    n.activation = act;
    n.alpha = 0.1f;
    const float scale = 1.5f / std::sqrt(static_cast<float>(k * k * (in_c / groups)));
    n.weight = Random({out_c, k, k, in_c / groups}, scale);
    n.bias = Random({out_c}, 0.1f);
    return Add(std::move(n));
  }
  // Ops without attributes (concat, add, activation, global_avgpool,
  // reduce_channels); leaky-ReLU alpha 0.2.
  int Op(const std::string& name, OpType op, std::vector<int> inputs,
         Activation act = Activation::kNone) {
    Node n = Named(name, op, std::move(inputs));
    n.activation = act;
    n.alpha = 0.2f;
    return Add(std::move(n));
  }
  int Pool(const std::string& name, OpType op, int in, int k, int stride, int pad = 0,
           bool include_pad = true) {
    Node n = Named(name, op, {in});
    n.kernel_h = n.kernel_w = k;
    n.stride_h = n.stride_w = stride;
    n.pad_top = n.pad_left = n.pad_bottom = n.pad_right = pad;
    n.count_include_pad = include_pad;
    return Add(std::move(n));
  }
  int Upsample(const std::string& name, int in, int scale,
               UpsampleMode mode = UpsampleMode::kBilinear) {
    Node n = Named(name, OpType::kUpsample, {in});
    n.scale_h = n.scale_w = scale;
    n.upsample_mode = mode;
    return Add(std::move(n));
  }
  int Dense(const std::string& name, int in, int64_t in_flat, int out,
            Activation act = Activation::kNone) {
    Node n = Named(name, OpType::kDense, {in});
    n.out_channels = out;
    n.activation = act;
    n.weight = Random({out, in_flat}, 1.5f / std::sqrt(static_cast<float>(in_flat)));
    n.bias = Random({out}, 0.1f);
    return Add(std::move(n));
  }

  // position_mahalanobis on an input of shape `in`: weight [h, w, c, c]
  // (whitening matrices, scaled 1 / sqrt(c)), bias [h, w, c] (means).
  int PositionMahalanobis(const std::string& name, int input, Shape in) {
    Node n = Named(name, OpType::kPositionMahalanobis, {input});
    n.weight = Random({in.h, in.w, in.c, in.c}, 1.0f / std::sqrt(static_cast<float>(in.c)));
    n.bias = Random({in.h, in.w, in.c}, 0.5f);
    return Add(std::move(n));
  }

  // A network input in [-1, 1) from its own generator.
  std::vector<float> Input(uint64_t seed) const {
    XorShiftRng r(seed);
    std::vector<float> x(static_cast<size_t>(graph.input.elements()));
    for (float& v : x) v = r.Uniform(-1.0f, 1.0f);
    return x;
  }

  Graph graph;

 private:
  static Node Named(const std::string& name, OpType op, std::vector<int> inputs) {
    Node n;
    n.name = name;
    n.op = op;
    n.inputs = std::move(inputs);
    return n;
  }
  std::vector<float>& Storage(const std::vector<int64_t>& shape) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    storage_.emplace_back(static_cast<size_t>(n));
    return storage_.back();
  }
  static TensorRef Ref(std::vector<int64_t> shape, const std::vector<float>& data) {
    TensorRef t;
    t.shape = std::move(shape);
    t.data = data.data();
    return t;
  }

  XorShiftRng rng_;
  std::deque<std::vector<float>> storage_;
};

// Builds a ModelSpec node by node, tracking every value's shape (NHWC) so
// that weight shapes come out right. Names must be unique; "input" is the
// network input.
// Builds a model file's spec through the one graph writer
// (model/graph_builder.h), with deterministic weights (Rng, fan-in scaled)
// and the shapes it needs to size them. Names of activations and modes as in
// model files.
class SpecBuilder {
 public:
  SpecBuilder(int h, int w, int c, uint64_t seed = 1) : g_(h, w, c), rng_(seed) {
    shapes_["input"] = {h, w, c};
  }

  const Shape& shape(const std::string& name) const { return shapes_.at(name); }

  // conv2d, weight OHWI [out_c][k][k][in_c/groups], pad on all four sides.
  SpecBuilder& Conv(const std::string& name, const std::string& in, int out_c, int k,
                    int stride = 1, int pad = 0, const std::string& act = "none", int groups = 1,
                    int dilation = 1, bool bias = true, float alpha = 0.01f) {
    const Shape s = shapes_.at(in);
    ConvParams p;
    p.out_channels = out_c;
    p.kernel_h = p.kernel_w = k;
    p.stride_h = p.stride_w = stride;
    p.dilation_h = p.dilation_w = dilation;
    p.pad_top = p.pad_left = p.pad_bottom = p.pad_right = pad;
    p.groups = groups;
    p.activation = Act(act);
    if (act == "leaky_relu") p.alpha = alpha;
    const int in_per_group = s.c / groups;
    TensorData w = Weight({out_c, k, k, in_per_group}, in_per_group * k * k);
    g_.Conv2d(name, in, p, std::move(w), bias ? Bias(out_c) : std::vector<float>{});
    const int eff = dilation * (k - 1) + 1;
    shapes_[name] = {(s.h + 2 * pad - eff) / stride + 1, (s.w + 2 * pad - eff) / stride + 1, out_c};
    return *this;
  }

  // conv2d with TensorFlow's "SAME" padding: out = ceil(in / stride), the odd
  // padding row / column at the bottom / right. `alpha` < 0: no "alpha" key.
  SpecBuilder& ConvSame(const std::string& name, const std::string& in, int out_c, int k,
                        int stride, const std::string& act, int groups = 1, float alpha = -1.0f) {
    const Shape s = shapes_.at(in);
    auto same = [k, stride](int n, int* before, int* after) {
      const int out = (n + stride - 1) / stride;
      const int total = std::max((out - 1) * stride + k - n, 0);
      *before = total / 2;
      *after = total - total / 2;
      return out;
    };
    ConvParams p;
    p.out_channels = out_c;
    p.kernel_h = p.kernel_w = k;
    p.stride_h = p.stride_w = stride;
    const int oh = same(s.h, &p.pad_top, &p.pad_bottom), ow = same(s.w, &p.pad_left, &p.pad_right);
    p.groups = groups;
    p.activation = Act(act);
    if (alpha >= 0.0f) p.alpha = alpha;
    const int in_per_group = s.c / groups;
    TensorData w = Weight({out_c, k, k, in_per_group}, in_per_group * k * k);
    g_.Conv2d(name, in, p, std::move(w), Bias(out_c));
    shapes_[name] = {oh, ow, out_c};
    return *this;
  }

  SpecBuilder& Dense(const std::string& name, const std::string& in, int out,
                     const std::string& act = "none") {
    const int64_t in_flat = shapes_.at(in).elements();
    TensorData w = Weight({out, in_flat}, in_flat);
    g_.Dense(name, in, out, Act(act), std::move(w), Bias(out));
    shapes_[name] = {1, 1, out};
    return *this;
  }

  SpecBuilder& Activation(const std::string& name, const std::string& in, const std::string& act,
                          float alpha = 0.01f) {
    g_.Activate(name, in, Act(act),
                act == "leaky_relu" ? std::optional<float>(alpha) : std::nullopt);
    shapes_[name] = shapes_.at(in);
    return *this;
  }

  SpecBuilder& Pool(const std::string& name, const std::string& in, bool max, int k,
                    int stride = 0, int pad = 0, bool count_include_pad = true) {
    if (stride == 0) stride = k;
    const Shape s = shapes_.at(in);
    PoolParams p;
    p.kernel_h = p.kernel_w = k;
    p.stride_h = p.stride_w = stride;
    p.pad_top = p.pad_left = p.pad_bottom = p.pad_right = pad;
    p.count_include_pad = count_include_pad;
    if (max) {
      g_.MaxPool2d(name, in, p);
    } else {
      g_.AvgPool2d(name, in, p);
    }
    shapes_[name] = {(s.h + 2 * pad - k) / stride + 1, (s.w + 2 * pad - k) / stride + 1, s.c};
    return *this;
  }
  SpecBuilder& MaxPool(const std::string& name, const std::string& in, int k, int stride = 0,
                       int pad = 0) {
    return Pool(name, in, true, k, stride, pad);
  }

  SpecBuilder& GlobalAvgPool(const std::string& name, const std::string& in) {
    g_.GlobalAvgPool(name, in);
    shapes_[name] = {1, 1, shapes_.at(in).c};
    return *this;
  }

  SpecBuilder& Upsample(const std::string& name, const std::string& in, const std::string& mode,
                        int scale) {
    const Shape s = shapes_.at(in);
    g_.Upsample(name, in, mode == "nearest" ? UpsampleMode::kNearest : UpsampleMode::kBilinear,
                scale, scale);
    shapes_[name] = {s.h * scale, s.w * scale, s.c};
    return *this;
  }

  SpecBuilder& Concat(const std::string& name, const std::vector<std::string>& ins) {
    Shape s = shapes_.at(ins[0]);
    s.c = 0;
    for (const auto& i : ins) s.c += shapes_.at(i).c;
    g_.Concat(name, ins);
    shapes_[name] = s;
    return *this;
  }

  SpecBuilder& Add(const std::string& name, const std::string& a, const std::string& b,
                   const std::string& act = "none") {
    g_.Add(name, a, b, Act(act));
    shapes_[name] = shapes_.at(a);
    return *this;
  }

  // in0 * in1, in1 of in0's shape or 1 x 1 x C.
  SpecBuilder& Mul(const std::string& name, const std::string& a, const std::string& b,
                   const std::string& act = "none") {
    g_.Mul(name, a, b, Act(act));
    shapes_[name] = shapes_.at(a);
    return *this;
  }

  // Per-position Gaussian: weight [h, w, c, c] (whitening, about 1 / sqrt(c)),
  // bias [h, w, c] (means).
  SpecBuilder& PositionMahalanobis(const std::string& name, const std::string& in) {
    const Shape s = shapes_.at(in);
    TensorData w = Weight({s.h, s.w, s.c, s.c}, s.c * 6);
    std::vector<float> mean(static_cast<size_t>(s.elements()));
    for (float& v : mean) v = 0.5f * rng_.Uniform();
    g_.PositionMahalanobis(name, in, std::move(w), {{s.h, s.w, s.c}, std::move(mean)});
    shapes_[name] = {s.h, s.w, 1};
    return *this;
  }

  SpecBuilder& ReduceChannels(const std::string& name, const std::string& in,
                              const std::string& mode) {
    const Shape s = shapes_.at(in);
    ReduceMode m = ReduceMode::kSumSquares;
    if (mode == "min") m = ReduceMode::kMin;
    else if (mode == "max") m = ReduceMode::kMax;
    else if (mode == "mean") m = ReduceMode::kMean;
    else if (mode != "sum_squares") Misuse("reduce mode", mode);
    g_.ReduceChannels(name, in, m);
    shapes_[name] = {s.h, s.w, 1};
    return *this;
  }

  // An extra tensor (e.g. postprocess cell maps).
  SpecBuilder& Tensor(const std::string& name, std::vector<int64_t> shape,
                      std::vector<float> data) {
    g_.AddTensor(name, {std::move(shape), std::move(data)});
    return *this;
  }

  ModelSpec Build(const std::string& output, const PreprocessConfig& pre,
                  const std::string& postprocess_json = "{}",
                  const std::string& calibration_json = "{}",
                  const std::string& card_json = "{}") const {
    return g_.Spec(output, PreprocessToJson(pre), postprocess_json, calibration_json, card_json);
  }

 private:
  // A builder call with a name no model file has: a bug in the test.
  [[noreturn]] static void Misuse(const char* what, const std::string& name) {
    std::fprintf(stderr, "SpecBuilder: unknown %s '%s'\n", what, name.c_str());
    std::abort();
  }
  static flawlens::Activation Act(const std::string& name) {
    flawlens::Activation a;
    if (!ParseActivation(name, &a)) Misuse("activation", name);
    return a;
  }
  // Uniform in +-sqrt(6 / fan_in) (He-uniform-like).
  TensorData Weight(std::vector<int64_t> shape, int64_t fan_in) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    const float bound = std::sqrt(6.0f / static_cast<float>(fan_in));
    std::vector<float> data(static_cast<size_t>(n));
    for (float& v : data) v = bound * rng_.Uniform();
    return {std::move(shape), std::move(data)};
  }
  std::vector<float> Bias(int n) {
    std::vector<float> data(static_cast<size_t>(n));
    for (float& v : data) v = 0.05f * rng_.Uniform();
    return data;
  }

  ::flawlens::GraphBuilder g_;
  std::map<std::string, Shape> shapes_;
  Rng rng_;
};

// The seed model: conv3x3 32 valid + relu -> maxpool2 -> conv3x3 64 valid +
// relu -> maxpool2 -> dense 128 + relu -> dense 1 + sigmoid.
//   with_seed_crop = true:  the seed's preprocessing, resize 64x64, crop
//                           rows/cols 16..48, /255 -> 32x32x3 input.
//   with_seed_crop = false: anchor net A, resize 64x64, no crop -> 64x64x3.
inline ModelSpec SeedCnnSpec(bool with_seed_crop, uint64_t seed = 42) {
  const int side = with_seed_crop ? 32 : 64;
  SpecBuilder b(side, side, 3, seed);
  b.Conv("conv1", "input", 32, 3, 1, 0, "relu")
      .MaxPool("pool1", "conv1", 2)
      .Conv("conv2", "pool1", 64, 3, 1, 0, "relu")
      .MaxPool("pool2", "conv2", 2)
      .Dense("fc1", "pool2", 128, "relu")
      .Dense("fc2", "fc1", 1, "sigmoid");
  PreprocessConfig pre;
  pre.resize_w = pre.resize_h = 64;
  if (with_seed_crop) pre.crop = {16, 16, 32, 32};
  pre.channels = 3;
  pre.scale = 1.0f / 255.0f;
  const std::string card = with_seed_crop
                               ? R"({"name":"seed-cnn","description":"seed CNN, 32x32 crop"})"
                               : R"({"name":"anchor-a","description":"seed CNN on 64x64"})";
  return b.Build("fc2", pre, R"({"reduce":"max"})", "{}", card);
}

// A small fully-convolutional net that uses every op: conv (stride 2,
// dilation, depthwise, 1x1 without bias), every activation, max/avg/global
// pools, dense, upsample (bilinear and nearest), concat, add,
// reduce_channels. 32x32x3 -> 32x32x1 map, with postprocess cell maps and a
// calibration.
inline ModelSpec TinyUnetSpec(uint64_t seed = 7) {
  SpecBuilder b(32, 32, 3, seed);
  b.Conv("enc1", "input", 8, 3, 1, 1, "relu")                       // 32x32x8
      .Conv("enc2", "enc1", 16, 3, 2, 1, "leaky_relu", 1, 1, true, 0.1f)  // 16x16x16
      .Conv("dw", "enc2", 16, 3, 1, 1, "silu", /*groups=*/16)        // depthwise
      .Conv("pw", "dw", 16, 1, 1, 0, "none", 1, 1, /*bias=*/false)
      .Add("res", "pw", "enc2", "relu")                              // 16x16x16
      .MaxPool("mp", "res", 2)                                       // 8x8x16
      .Pool("ap", "mp", /*max=*/false, 3, 1, 1, /*count_include_pad=*/false)
      .GlobalAvgPool("gap", "mp")                                    // 1x1x16
      .Dense("se", "gap", 16, "sigmoid")                             // 1x1x16
      .Upsample("se_up", "se", "nearest", 8)                         // 8x8x16
      .Add("gated", "ap", "se_up")                                   // 8x8x16
      .Upsample("up1", "gated", "bilinear", 2)                       // 16x16x16
      .Concat("cat1", {"up1", "res"})                                // 16x16x32
      .Conv("dec1", "cat1", 8, 3, 1, 1, "relu")                      // 16x16x8
      .Upsample("up2", "dec1", "nearest", 2)                         // 32x32x8
      .Concat("cat2", {"up2", "enc1"})                               // 32x32x16
      .Conv("dec2", "cat2", 4, 3, 1, 2, "none", 1, /*dilation=*/2)   // 32x32x4
      .Activation("act", "dec2", "sigmoid")
      .Activation("act2", "act", "leaky_relu", 0.2f)
      .ReduceChannels("head", "act2", "mean");                       // 32x32x1
  std::vector<float> cell_mean(32 * 32), cell_std(32 * 32);
  for (int i = 0; i < 32 * 32; ++i) {
    cell_mean[i] = 0.5f + 0.001f * static_cast<float>(i % 32);
    cell_std[i] = 0.1f + 0.0005f * static_cast<float>(i / 32);
  }
  b.Tensor("post.cell_mean", {32, 32}, cell_mean).Tensor("post.cell_std", {32, 32}, cell_std);
  PreprocessConfig pre;
  pre.resize_w = pre.resize_h = 40;
  pre.crop = {4, 4, 32, 32};
  pre.channels = 3;
  pre.scale = 1.0f / 255.0f;
  const float mean[3] = {0.485f, 0.456f, 0.406f}, stdev[3] = {0.229f, 0.224f, 0.225f};
  for (int c = 0; c < 3; ++c) {
    pre.mean[c] = mean[c];
    pre.std[c] = stdev[c];
  }
  PostprocessConfig post;
  post.sigmoid = false;
  post.blur_sigma = 1.0f;
  post.reduce = ScoreReduce::kTopKMean;
  post.topk_fraction = 0.05f;
  Calibration cal;
  cal.offset = 0.1f;
  cal.scale = 0.5f;
  cal.threshold = 2.0f;
  cal.f1_threshold = 1.5f;
  cal.map_low = 0.0f;
  cal.map_high = 4.0f;
  nlohmann::json postj = {{"sigmoid", post.sigmoid},     {"blur_sigma", post.blur_sigma},
                          {"reduce", "topk_mean"},       {"topk_fraction", post.topk_fraction},
                          {"cell_mean", "post.cell_mean"}, {"cell_std", "post.cell_std"}};
  return b.Build("head", pre, postj.dump(), CalibrationToJson(cal),
                 R"({"name":"tiny-unet","notes":"test model using every op"})");
}

// A MobileNetV3 block as the TF.js importer writes it, with the density head
// on top: stem 3x3 s2 "SAME" + hard_swish (default alpha), 1x1 expand +
// relu6, depthwise 5x5 s2 + hard_swish (TF's float16-rounded 1/6),
// squeeze-excitation (global pool, 1x1 + relu, 1x1 + hard_sigmoid, mul), 1x1
// project, a standalone relu6, position_mahalanobis. 32x32x3 -> 8x8x1.
inline ModelSpec MobileNetV3BlockSpec(uint64_t seed = 11) {
  SpecBuilder b(32, 32, 3, seed);
  b.ConvSame("stem", "input", 16, 3, 2, "hard_swish")                     // 16x16x16
      .ConvSame("expand", "stem", 72, 1, 1, "relu6")                      // 16x16x72
      .ConvSame("dw", "expand", 72, 5, 2, "hard_swish", 72, 0.1666259765625f)  // 8x8x72
      .GlobalAvgPool("se_pool", "dw")                                     // 1x1x72
      .ConvSame("se_squeeze", "se_pool", 24, 1, 1, "relu")                // 1x1x24
      .ConvSame("se_excite", "se_squeeze", 72, 1, 1, "hard_sigmoid")      // 1x1x72
      .Mul("se_mul", "dw", "se_excite")                                   // 8x8x72
      .ConvSame("project", "se_mul", 24, 1, 1, "none")                    // 8x8x24
      .Activation("clip", "project", "relu6")
      .PositionMahalanobis("density", "clip");                            // 8x8x1
  PreprocessConfig pre;
  pre.resize_w = pre.resize_h = 32;
  pre.channels = 3;
  pre.scale = 1.0f / 255.0f;
  return b.Build("density", pre, R"({"reduce":"max"})", "{}",
                 R"({"name":"mobilenet-v3-block"})");
}

// A very small valid model (one 3x3 conv on 4x4x1, 2 channels, + reduce),
// for exhaustive tests such as truncation at every byte.
inline ModelSpec MicroSpec(uint64_t seed = 3) {
  SpecBuilder b(4, 4, 1, seed);
  b.Conv("c", "input", 2, 3, 1, 1, "relu").ReduceChannels("r", "c", "max");
  PreprocessConfig pre;
  pre.resize_w = pre.resize_h = 4;
  pre.channels = 1;
  return b.Build("r", pre, R"({"reduce":"mean"})", R"({"offset":0.5,"scale":2,"threshold":1})",
                 R"({"name":"micro"})");
}

}  // namespace testing
}  // namespace flawlens
