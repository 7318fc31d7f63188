// Model file format: round trip and one test per class of malformed file,
// each asserting its specific ErrorCode (model/FORMAT.md "Validation").
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/limits.h"
#include "core/status.h"
#include "model/json_util.h"
#include "model/model.h"
#include "model/safetensors.h"
#include "test_models.h"

namespace flawlens {
namespace {

using testing::MobileNetV3BlockSpec;
using testing::MicroSpec;
using testing::SeedCnnSpec;
using testing::TinyUnetSpec;
using Json = nlohmann::json;  // test-side file surgery (src/ reads with JsonValue)

// ---- file surgery helpers ------------------------------------------------------

struct FileParts {
  Json header;
  std::vector<uint8_t> data;
};

// The framing through the one safetensors reader (model/safetensors.h); the
// header as nlohmann JSON, which the tests edit.
FileParts Split(const std::vector<uint8_t>& bytes) {
  FileParts p;
  Result<SafetensorsHeader> h = ReadSafetensorsHeader(bytes.data(), bytes.size());
  EXPECT_TRUE(h.ok()) << h.status().ToString();
  if (!h.ok()) return p;
  p.header = Json::parse(bytes.begin() + 8, bytes.begin() + static_cast<ptrdiff_t>(h->data_offset),
                         nullptr, false);
  p.data.assign(bytes.begin() + static_cast<ptrdiff_t>(h->data_offset), bytes.end());
  return p;
}

std::vector<uint8_t> Assemble(std::string header, const std::vector<uint8_t>& data) {
  header.append((8 - header.size() % 8) % 8, ' ');
  std::vector<uint8_t> out(8 + header.size() + data.size());
  WriteHeaderLength(header.size(), out.data());
  std::memcpy(out.data() + 8, header.data(), header.size());
  if (!data.empty()) std::memcpy(out.data() + 8 + header.size(), data.data(), data.size());
  return out;
}

std::vector<uint8_t> Assemble(const FileParts& p) { return Assemble(p.header.dump(), p.data); }

// Write `spec`, let `edit` change the header (and data), reassemble.
std::vector<uint8_t> Edited(const ModelSpec& spec, const std::function<void(FileParts&)>& edit) {
  FileParts p = Split(WriteModel(spec));
  EXPECT_FALSE(p.header.is_discarded());
  edit(p);
  return Assemble(p);
}

// Edit one metadata JSON section (parsed, changed, re-serialised).
std::vector<uint8_t> EditedMeta(const ModelSpec& spec, const char* key,
                                const std::function<void(Json&)>& edit) {
  return Edited(spec, [&](FileParts& p) {
    Json& meta = p.header["__metadata__"];
    Json section = Json::parse(meta[key].get<std::string>(), nullptr, false);
    ASSERT_FALSE(section.is_discarded());
    edit(section);
    meta[key] = section.dump();
  });
}

// Node `name` of a graph JSON.
Json& NodeNamed(Json& graph, const std::string& name) {
  for (Json& n : graph["nodes"]) {
    if (n["name"] == name) return n;
  }
  ADD_FAILURE() << "no node " << name;
  static Json none;
  return none;
}

Status LoadStatus(const std::vector<uint8_t>& bytes) {
  auto r = LoadModel(bytes.data(), bytes.size());
  return r.ok() ? Status::Ok() : r.status();
}

#define EXPECT_LOAD_ERROR(bytes, code_)                                   \
  do {                                                                    \
    Status _st = LoadStatus(bytes);                                       \
    EXPECT_EQ(_st.code(), code_) << _st.ToString();                       \
    EXPECT_FALSE(_st.message().empty());                                  \
    std::printf("  [%s] %s\n", #code_, _st.ToString().c_str());           \
  } while (0)

// ---- round trip -----------------------------------------------------------------

const ModelTensor& SpecTensor(const ModelSpec& spec, const std::string& name) {
  for (const ModelTensor& t : spec.tensors) {
    if (t.name == name) return t;
  }
  ADD_FAILURE() << "no tensor " << name;
  return spec.tensors.front();
}

void ExpectTensorEq(const TensorRef& ref, const ModelTensor& t) {
  ASSERT_NE(ref.data, nullptr) << t.name;
  EXPECT_EQ(reinterpret_cast<uintptr_t>(ref.data) % 16, 0u) << t.name << " not 16-byte aligned";
  EXPECT_EQ(ref.shape, t.shape) << t.name;
  ASSERT_EQ(ref.elements(), static_cast<int64_t>(t.data.size())) << t.name;
  EXPECT_EQ(std::memcmp(ref.data, t.data.data(), t.data.size() * sizeof(float)), 0) << t.name;
}

TEST(ModelFormat, RoundTripTinyUnet) {
  const ModelSpec spec = TinyUnetSpec();
  const std::vector<uint8_t> bytes = WriteModel(spec);
  auto r = LoadModel(bytes.data(), bytes.size());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const Model& m = **r;

  // Graph: every node as declared in the JSON.
  const Json g = Json::parse(spec.graph_json);
  ASSERT_EQ(m.graph.nodes.size(), g["nodes"].size());
  EXPECT_EQ(m.graph.input, (Shape{32, 32, 3}));
  EXPECT_EQ(m.graph.output_shape(), (Shape{32, 32, 1}));
  EXPECT_EQ(m.graph.output, static_cast<int>(m.graph.nodes.size()));
  bool seen_op[10] = {};
  for (size_t i = 0; i < m.graph.nodes.size(); ++i) {
    const Node& n = m.graph.nodes[i];
    const Json& jn = g["nodes"][i];
    EXPECT_EQ(n.name, jn["name"].get<std::string>());
    EXPECT_STREQ(OpTypeName(n.op), jn["op"].get<std::string>().c_str());
    seen_op[static_cast<int>(n.op)] = true;
    ASSERT_EQ(n.inputs.size(), jn["inputs"].size());
    for (size_t k = 0; k < n.inputs.size(); ++k) {
      const std::string in = jn["inputs"][k];
      const int expected = in == "input" ? 0 : [&] {
        for (size_t j = 0; j < i; ++j)
          if (m.graph.nodes[j].name == in) return static_cast<int>(j) + 1;
        return -1;
      }();
      EXPECT_EQ(n.inputs[k], expected) << n.name;
    }
    if (jn.contains("weight")) ExpectTensorEq(n.weight, SpecTensor(spec, jn["weight"]));
    if (jn.contains("bias")) {
      ExpectTensorEq(n.bias, SpecTensor(spec, jn["bias"]));
    } else {
      EXPECT_EQ(n.bias.data, nullptr);
    }
    if (jn.contains("activation")) {
      EXPECT_STREQ(ActivationName(n.activation), jn["activation"].get<std::string>().c_str());
    }
  }
  for (bool s : seen_op) EXPECT_TRUE(s) << "TinyUnetSpec should use every op";

  // Attributes of a few nodes.
  const Node& enc2 = m.graph.nodes[1];
  EXPECT_EQ(enc2.stride_h, 2);
  EXPECT_EQ(enc2.pad_left, 1);
  EXPECT_EQ(enc2.activation, Activation::kLeakyRelu);
  EXPECT_FLOAT_EQ(enc2.alpha, 0.1f);
  EXPECT_EQ(m.graph.nodes[2].groups, 16);
  EXPECT_EQ(m.graph.shapes[2], (Shape{16, 16, 16}));
  for (const Node& n : m.graph.nodes) {
    if (n.name == "ap") {
      EXPECT_FALSE(n.count_include_pad);
      EXPECT_EQ(n.kernel_h, 3);
      EXPECT_EQ(n.stride_w, 1);
    }
    if (n.name == "mp") {
      EXPECT_EQ(n.stride_h, 2);  // defaults to the kernel
    }
    if (n.name == "se_up") {
      EXPECT_EQ(n.upsample_mode, UpsampleMode::kNearest);
      EXPECT_EQ(n.scale_w, 8);
    }
    if (n.name == "up1") {
      EXPECT_EQ(n.upsample_mode, UpsampleMode::kBilinear);
    }
    if (n.name == "dec2") {
      EXPECT_EQ(n.dilation_w, 2);
    }
    if (n.name == "head") {
      EXPECT_EQ(n.reduce_mode, ReduceMode::kMean);
    }
  }

  // Configs: the writers are the exact inverse of the parsers.
  EXPECT_EQ(PreprocessToJson(m.preprocess), spec.preprocess_json);
  EXPECT_EQ(CalibrationToJson(m.calibration), spec.calibration_json);
  EXPECT_EQ(m.preprocess.crop.x, 4);
  EXPECT_EQ(m.preprocess.resize_w, 40);
  EXPECT_FLOAT_EQ(m.preprocess.std[2], 0.225f);
  EXPECT_EQ(m.postprocess.reduce, ScoreReduce::kTopKMean);
  EXPECT_FLOAT_EQ(m.postprocess.topk_fraction, 0.05f);
  EXPECT_FLOAT_EQ(m.postprocess.blur_sigma, 1.0f);
  ExpectTensorEq(m.postprocess.cell_mean, SpecTensor(spec, "post.cell_mean"));
  ExpectTensorEq(m.postprocess.cell_std, SpecTensor(spec, "post.cell_std"));
  EXPECT_FLOAT_EQ(m.calibration.scale, 0.5f);
  EXPECT_FLOAT_EQ(m.calibration.f1_threshold, 1.5f);
  EXPECT_EQ(m.name, "tiny-unet");
  EXPECT_EQ(Json::parse(m.card_json), Json::parse(spec.card_json));

  // Deterministic writer.
  EXPECT_EQ(WriteModel(spec), bytes);
  EXPECT_EQ(WriteModel(TinyUnetSpec()), bytes);
}

TEST(ModelFormat, RoundTripSeedCnn) {
  for (bool crop : {true, false}) {
    const ModelSpec spec = SeedCnnSpec(crop);
    const std::vector<uint8_t> bytes = WriteModel(spec);
    auto r = LoadModel(bytes.data(), bytes.size());
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    const Model& m = **r;
    const int side = crop ? 32 : 64;
    EXPECT_EQ(m.graph.input, (Shape{side, side, 3}));
    EXPECT_EQ(m.graph.output_shape(), (Shape{1, 1, 1}));
    ASSERT_EQ(m.graph.nodes.size(), 6u);
    EXPECT_EQ(m.graph.shapes[4], (Shape{crop ? 6 : 14, crop ? 6 : 14, 64}));
    EXPECT_EQ(m.graph.nodes[4].weight.shape, (std::vector<int64_t>{128, crop ? 2304 : 12544}));
    EXPECT_EQ(m.graph.nodes[5].activation, Activation::kSigmoid);
    EXPECT_EQ(m.preprocess.resize_w, 64);
    EXPECT_EQ(m.preprocess.out_w(), side);
    EXPECT_EQ(m.preprocess.crop.y, crop ? 16 : 0);
    EXPECT_FLOAT_EQ(m.preprocess.scale, 1.0f / 255.0f);
    EXPECT_EQ(m.name, crop ? "seed-cnn" : "anchor-a");
    EXPECT_TRUE(std::isnan(m.calibration.f1_threshold));
    EXPECT_EQ(CalibrationToJson(m.calibration), CalibrationToJson(Calibration{}));
    for (const Node& n : m.graph.nodes) {
      if (n.weight.data != nullptr) ExpectTensorEq(n.weight, SpecTensor(spec, n.name + ".weight"));
    }
  }
}

// The canonical layout that the safetensors library expects.
TEST(ModelFormat, CanonicalSafetensorsLayout) {
  const ModelSpec spec = TinyUnetSpec();
  const std::vector<uint8_t> bytes = WriteModel(spec);
  Result<SafetensorsHeader> h = ReadSafetensorsHeader(bytes.data(), bytes.size());
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  EXPECT_EQ(h->length % 8, 0u);
  EXPECT_TRUE(h->has_metadata);
  EXPECT_TRUE(CheckFlawlensMetadata(*h).ok());
  const std::string header(bytes.begin() + 8, bytes.begin() + static_cast<ptrdiff_t>(h->data_offset));
  EXPECT_EQ(header.rfind("{\"__metadata__\":{", 0), 0u) << header.substr(0, 40);
  const size_t last = header.find_last_not_of(' ');
  EXPECT_EQ(header[last], '}');
  FileParts p = Split(bytes);
  ASSERT_TRUE(p.header.is_object());
  // Tensors sorted by name, contiguous, F32.
  std::vector<std::string> names;
  uint64_t expected = 0;
  size_t pos = 0;
  for (const ModelTensor& t : spec.tensors) names.push_back(t.name);
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    const size_t at = header.find("\"" + name + "\":{", pos);
    ASSERT_NE(at, std::string::npos) << name << " out of order";
    pos = at;
    const Json& e = p.header[name];
    EXPECT_EQ(e["dtype"], "F32");
    EXPECT_EQ(e["data_offsets"][0].get<uint64_t>(), expected);
    expected = e["data_offsets"][1].get<uint64_t>();
  }
  EXPECT_EQ(expected, p.data.size());
  const Json& meta = p.header["__metadata__"];
  EXPECT_EQ(meta["format"], "flawlens");
  EXPECT_EQ(meta["format_version"], "1");
  for (const char* k : {"graph", "preprocess", "postprocess", "calibration", "card"}) {
    EXPECT_TRUE(meta[k].is_string()) << k;
  }
}

// The JS writer of the tests and benchmarks (tools/bench/lib/model_writer.mjs)
// follows the same spec as WriteModel: the same spec gives the same bytes.
// Native only (it runs node); skipped where node is not installed.
TEST(ModelFormat, JsWriterWritesTheSameBytes) {
#if defined(__EMSCRIPTEN__)
  GTEST_SKIP() << "runs node from the native test";
#else
  if (std::system("node --version > /dev/null 2>&1") != 0) GTEST_SKIP() << "no node";
  const std::string dir = ::testing::TempDir();
  int k = 0;
  for (const ModelSpec& spec : {MicroSpec(), TinyUnetSpec(), SeedCnnSpec(true)}) {
    Json j = {{"graph", spec.graph_json},         {"preprocess", spec.preprocess_json},
              {"postprocess", spec.postprocess_json}, {"calibration", spec.calibration_json},
              {"card", spec.card_json},           {"tensors", Json::array()}};
    for (const ModelTensor& t : spec.tensors)
      j["tensors"].push_back({{"name", t.name}, {"shape", t.shape}, {"data", t.data}});
    const std::string in = dir + "/js_writer_spec" + std::to_string(k) + ".json";
    const std::string out = dir + "/js_writer_out" + std::to_string(k++) + ".safetensors";
    {
      FILE* f = std::fopen(in.c_str(), "wb");
      ASSERT_NE(f, nullptr) << in;
      const std::string text = j.dump();
      ASSERT_EQ(std::fwrite(text.data(), 1, text.size(), f), text.size());
      std::fclose(f);
    }
    const std::string cmd = std::string("node ") + FLAWLENS_SOURCE_DIR +
                            "/tests/js/write_model.mjs '" + in + "' '" + out + "'";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    std::vector<uint8_t> js;
    {
      FILE* f = std::fopen(out.c_str(), "rb");
      ASSERT_NE(f, nullptr) << out;
      uint8_t buf[65536];
      size_t n;
      while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) js.insert(js.end(), buf, buf + n);
      std::fclose(f);
    }
    const std::vector<uint8_t> cpp = WriteModel(spec);
    ASSERT_EQ(js.size(), cpp.size()) << "spec " << k - 1;
    EXPECT_TRUE(js == cpp) << "spec " << k - 1 << ": the two writers differ";
  }
#endif
}

TEST(ModelFormat, DefaultsAndForwardCompatibility) {
  // Optional sections absent, unknown keys everywhere: still loads.
  ModelSpec spec = MicroSpec();
  Json g = Json::parse(spec.graph_json);
  g["future_graph_key"] = {1, 2, 3};
  g["nodes"][0]["future_attr"] = "x";
  spec.graph_json = g.dump();
  spec.postprocess_json = "{}";
  spec.calibration_json = R"({"offset":1,"some_new_stat":5})";
  spec.card_json = "{}";
  std::vector<uint8_t> bytes = Edited(spec, [](FileParts& p) {
    p.header["__metadata__"]["future_section"] = "{}";
    p.header["__metadata__"].erase("postprocess");
    p.header["__metadata__"].erase("card");
    // Only channels: resize defaults to the network input, the rest to defaults.
    const Json pre = {{"channels", 1}, {"new_norm_option", true}};
    p.header["__metadata__"]["preprocess"] = pre.dump();
  });
  auto r = LoadModel(bytes.data(), bytes.size());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)->name, "unnamed");
  EXPECT_EQ((*r)->preprocess.resize_w, 4);
  EXPECT_EQ((*r)->preprocess.resize_h, 4);
  EXPECT_EQ((*r)->postprocess.reduce, ScoreReduce::kMax);
  EXPECT_FLOAT_EQ((*r)->calibration.offset, 1.0f);
  EXPECT_FLOAT_EQ((*r)->calibration.scale, 1.0f);
  EXPECT_EQ((*r)->card_json, "{}");
  // Attribute shorthands: scalar kernel/stride/pad.
  bytes = EditedMeta(MicroSpec(), "graph", [](Json& gr) {
    Json& c = gr["nodes"][0];
    c["kernel"] = 3;
    c["stride"] = 1;
    c["pad"] = 1;
    c.erase("out_channels");  // defaults to weight shape
  });
  r = LoadModel(bytes.data(), bytes.size());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)->graph.nodes[0].pad_bottom, 1);
  EXPECT_EQ((*r)->graph.nodes[0].out_channels, 2);
}

// The spellings of the MobileNetV3 path: relu6 / hard_swish / hard_sigmoid
// (alpha defaults to 1/6 for the hard_* ones), mul with a 1x1xC operand,
// position_mahalanobis, TF "SAME" padding.
TEST(ModelFormat, RoundTripMobileNetV3Block) {
  const ModelSpec spec = MobileNetV3BlockSpec();
  const std::vector<uint8_t> bytes = WriteModel(spec);
  auto r = LoadModel(bytes.data(), bytes.size());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const Graph& g = (*r)->graph;
  ASSERT_EQ(g.nodes.size(), 10u);
  auto node = [&g](const std::string& name) -> const Node& {
    for (const Node& n : g.nodes) {
      if (n.name == name) return n;
    }
    ADD_FAILURE() << "no node " << name;
    return g.nodes.front();
  };
  const Node& stem = node("stem");
  EXPECT_EQ(stem.activation, Activation::kHardSwish);
  EXPECT_EQ(stem.alpha, 1.0f / 6.0f);  // not given: the hard_swish default
  EXPECT_EQ(stem.pad_top, 0);
  EXPECT_EQ(stem.pad_left, 0);
  EXPECT_EQ(stem.pad_bottom, 1);
  EXPECT_EQ(stem.pad_right, 1);
  EXPECT_EQ(node("expand").activation, Activation::kRelu6);
  const Node& dw = node("dw");
  EXPECT_EQ(dw.groups, 72);
  EXPECT_EQ(dw.alpha, 0.1666259765625f);  // given: kept bit for bit
  EXPECT_EQ(dw.pad_top, 1);
  EXPECT_EQ(dw.pad_bottom, 2);
  EXPECT_EQ(node("se_squeeze").alpha, 0.01f);  // the leaky_relu default for the others
  EXPECT_EQ(node("se_excite").activation, Activation::kHardSigmoid);
  EXPECT_EQ(node("se_excite").alpha, 1.0f / 6.0f);
  const Node& mul = node("se_mul");
  EXPECT_EQ(mul.op, OpType::kMul);
  ASSERT_EQ(mul.inputs.size(), 2u);
  EXPECT_EQ(g.shapes[mul.inputs[1]], (Shape{1, 1, 72}));
  EXPECT_EQ(node("clip").op, OpType::kActivation);
  EXPECT_EQ(node("clip").activation, Activation::kRelu6);
  const Node& pm = node("density");
  EXPECT_EQ(pm.op, OpType::kPositionMahalanobis);
  ExpectTensorEq(pm.weight, SpecTensor(spec, "density.weight"));
  ExpectTensorEq(pm.bias, SpecTensor(spec, "density.bias"));
  EXPECT_EQ(g.output_shape(), (Shape{8, 8, 1}));
  EXPECT_EQ(g.shapes[g.nodes.size() - 1], (Shape{8, 8, 24}));
}

TEST(ModelFormat, MobileNetV3OpErrors) {
  const ModelSpec spec = MobileNetV3BlockSpec();
  ASSERT_TRUE(LoadStatus(WriteModel(spec)).ok());
  auto graph_error = [&spec](const std::function<void(Json&)>& edit, ErrorCode code,
                             const std::string& fragment) {
    const Status st = LoadStatus(EditedMeta(spec, "graph", edit));
    EXPECT_EQ(st.code(), code) << st.ToString();
    EXPECT_NE(st.message().find(fragment), std::string::npos) << st.ToString();
    std::printf("  [%s] %s\n", ErrorCodeName(code), st.ToString().c_str());
  };
  // Unknown spellings stay errors.
  graph_error([](Json& g) { NodeNamed(g, "stem")["activation"] = "hardswish"; },
              ErrorCode::kBadGraph, "unknown activation");
  graph_error([](Json& g) { NodeNamed(g, "se_mul")["op"] = "multiply"; }, ErrorCode::kBadGraph,
              "unknown op 'multiply'");
  graph_error([](Json& g) { NodeNamed(g, "stem")["alpha"] = "1/6"; }, ErrorCode::kBadGraph,
              "'alpha' must be a number");
  // mul: arity, shapes, no weights.
  graph_error([](Json& g) { NodeNamed(g, "se_mul")["inputs"] = {"dw"}; }, ErrorCode::kBadGraph,
              "takes 2 inputs");
  graph_error([](Json& g) { NodeNamed(g, "se_mul")["inputs"] = {"dw", "expand"}; },
              ErrorCode::kBadShape, "input 1 is 16x16x72; it must be 8x8x72");
  graph_error([](Json& g) { NodeNamed(g, "se_mul")["inputs"] = {"se_excite", "dw"}; },
              ErrorCode::kBadShape, "input 1 is 8x8x72");
  graph_error([](Json& g) { NodeNamed(g, "se_mul")["weight"] = "dw.weight"; },
              ErrorCode::kBadGraph, "takes no weight");
  graph_error([](Json& g) { NodeNamed(g, "se_mul")["activation"] = "tanh"; },
              ErrorCode::kBadGraph, "unknown activation");
  // position_mahalanobis: both tensors, shapes of this input exactly.
  graph_error([](Json& g) { NodeNamed(g, "density").erase("bias"); }, ErrorCode::kBadGraph,
              "needs \"bias\"");
  graph_error([](Json& g) { NodeNamed(g, "density").erase("weight"); }, ErrorCode::kBadGraph,
              "needs \"weight\"");
  graph_error([](Json& g) { NodeNamed(g, "density")["bias"] = "project.bias"; },
              ErrorCode::kBadShape, "bias has shape [24], expected [h, w, c]");
  graph_error([](Json& g) { NodeNamed(g, "density")["weight"] = "dw.weight"; },
              ErrorCode::kBadShape, "'density' (position_mahalanobis): weight has shape [72, 5, 5, 1]");
  graph_error([](Json& g) { NodeNamed(g, "density")["inputs"] = {"se_mul"}; },
              ErrorCode::kBadShape, "expected [8, 8, 72, 72]");
  graph_error([](Json& g) { NodeNamed(g, "density")["inputs"] = {"stem"}; },
              ErrorCode::kBadShape, "'density'");
  ModelSpec wrong = spec;
  for (ModelTensor& t : wrong.tensors) {
    if (t.name == "density.bias") t.shape = {8, 24, 8};
  }
  Status st = LoadStatus(WriteModel(wrong));
  EXPECT_EQ(st.code(), ErrorCode::kBadShape) << st.ToString();
  EXPECT_NE(st.message().find("bias has shape [8, 24, 8], expected [8, 8, 24]"), std::string::npos)
      << st.ToString();
}

// With FLAWLENS_MODEL_DUMP_DIR set (native), writes the test models there so
// that they can be inspected with the python3 snippet of model/FORMAT.md.
TEST(ModelFormat, DumpModelsIfAsked) {
  const char* dir = std::getenv("FLAWLENS_MODEL_DUMP_DIR");
  if (dir == nullptr || *dir == 0) GTEST_SKIP() << "FLAWLENS_MODEL_DUMP_DIR not set";
  const std::pair<const char*, ModelSpec> models[] = {{"tiny_unet", TinyUnetSpec()},
                                                      {"seed_cnn", SeedCnnSpec(true)},
                                                      {"anchor_a", SeedCnnSpec(false)},
                                                      {"micro", MicroSpec()},
                                                      {"mobilenet_v3_block", MobileNetV3BlockSpec()}};
  for (const auto& m : models) {
    const std::vector<uint8_t> bytes = WriteModel(m.second);
    const std::string path = std::string(dir) + "/" + m.first + ".safetensors";
    FILE* f = std::fopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr) << path;
    EXPECT_EQ(std::fwrite(bytes.data(), 1, bytes.size(), f), bytes.size());
    std::fclose(f);
    std::printf("  wrote %s (%zu bytes)\n", path.c_str(), bytes.size());
  }
}

// ---- malformed files ---------------------------------------------------------------

TEST(ModelFormat, TruncatedAtEveryByte) {
  const std::vector<uint8_t> bytes = WriteModel(MicroSpec());
  ASSERT_TRUE(LoadStatus(bytes).ok()) << LoadStatus(bytes).ToString();
  for (size_t len = 0; len < bytes.size(); ++len) {
    // A fresh heap copy of exactly `len` bytes so that ASan sees any overread.
    std::unique_ptr<uint8_t[]> prefix(new uint8_t[len == 0 ? 1 : len]);
    if (len) std::memcpy(prefix.get(), bytes.data(), len);
    auto r = LoadModel(len ? prefix.get() : nullptr, len);
    ASSERT_FALSE(r.ok()) << "prefix of " << len << " bytes loaded";
    const ErrorCode expected = len == 0 ? ErrorCode::kInvalidArgument : ErrorCode::kTruncated;
    ASSERT_EQ(r.status().code(), expected) << len << ": " << r.status().ToString();
  }
  std::printf("  %zu prefixes rejected, e.g. [%s]\n", bytes.size(),
              LoadStatus(std::vector<uint8_t>(bytes.begin(), bytes.end() - 5)).ToString().c_str());
}

TEST(ModelFormat, TruncatedLargerModel) {
  // Every prefix through the header and the first tensor, then a stride.
  const std::vector<uint8_t> bytes = WriteModel(TinyUnetSpec());
  const uint64_t n = ReadHeaderLength(bytes.data());
  for (size_t len = 1; len < bytes.size(); len += (len < n + 256 ? 1 : 97)) {
    std::vector<uint8_t> prefix(bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(len));
    prefix.shrink_to_fit();
    Status st = LoadStatus(prefix);
    ASSERT_EQ(st.code(), ErrorCode::kTruncated) << len << ": " << st.ToString();
  }
}

TEST(ModelFormat, WrongMagic) {
  const uint8_t png[] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 'I', 'H', 'D', 'R'};
  EXPECT_LOAD_ERROR(std::vector<uint8_t>(png, png + sizeof png), ErrorCode::kBadMagic);
  // Plain safetensors without flawlens metadata.
  EXPECT_LOAD_ERROR(Edited(MicroSpec(), [](FileParts& p) { p.header.erase("__metadata__"); }),
                    ErrorCode::kBadMagic);
  EXPECT_LOAD_ERROR(
      Edited(MicroSpec(), [](FileParts& p) { p.header["__metadata__"]["format"] = "onnx"; }),
      ErrorCode::kBadMagic);
  EXPECT_LOAD_ERROR(
      Edited(MicroSpec(), [](FileParts& p) { p.header["__metadata__"].erase("format"); }),
      ErrorCode::kBadMagic);
  // JSON header that is an array.
  EXPECT_LOAD_ERROR(Assemble("[1,2,3]", {}), ErrorCode::kBadMagic);
}

TEST(ModelFormat, WrongVersion) {
  std::vector<uint8_t> bytes = Edited(
      MicroSpec(), [](FileParts& p) { p.header["__metadata__"]["format_version"] = "3"; });
  Status st = LoadStatus(bytes);
  EXPECT_EQ(st.code(), ErrorCode::kBadVersion);
  EXPECT_NE(st.message().find("'3'"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("'1' to '2'"), std::string::npos) << st.message();
  // Version 2 (version 1 plus preprocess.geometry keep_aspect) is read.
  EXPECT_TRUE(LoadStatus(Edited(MicroSpec(), [](FileParts& p) {
                p.header["__metadata__"]["format_version"] = "2";
              })).ok());
  std::printf("  [kBadVersion] %s\n", st.ToString().c_str());
  EXPECT_LOAD_ERROR(
      Edited(MicroSpec(), [](FileParts& p) { p.header["__metadata__"].erase("format_version"); }),
      ErrorCode::kBadVersion);
}

TEST(ModelFormat, HeaderLength) {
  std::vector<uint8_t> bytes = WriteModel(MicroSpec());
  auto set_len = [&](uint64_t n) {
    std::vector<uint8_t> b = bytes;
    WriteHeaderLength(n, b.data());
    return b;
  };
  EXPECT_LOAD_ERROR(set_len(uint64_t{1} << 40), ErrorCode::kLimitExceeded);
  EXPECT_LOAD_ERROR(set_len(~uint64_t{0}), ErrorCode::kLimitExceeded);
  EXPECT_LOAD_ERROR(set_len(kMaxHeaderBytes + 1), ErrorCode::kLimitExceeded);
  EXPECT_LOAD_ERROR(set_len(bytes.size() - 7), ErrorCode::kTruncated);  // one past the end
  EXPECT_LOAD_ERROR(set_len(1), ErrorCode::kBadHeader);
  EXPECT_LOAD_ERROR(set_len(20), ErrorCode::kBadHeader);  // header cut mid-JSON
  // File larger than kMaxModelBytes: rejected from its size alone, before any
  // byte is read (the buffer is smaller than the size claimed: ASan would
  // catch a read).
  Status st = [&] {
    auto r = LoadModel(bytes.data(), static_cast<size_t>(kMaxModelBytes) + 1);
    return r.ok() ? Status::Ok() : r.status();
  }();
  EXPECT_EQ(st.code(), ErrorCode::kLimitExceeded) << st.ToString();
  EXPECT_EQ(LoadStatus({}).code(), ErrorCode::kInvalidArgument);
}

TEST(ModelFormat, MalformedHeaderJson) {
  EXPECT_LOAD_ERROR(Assemble("{\"a\": [1, 2", {}), ErrorCode::kBadHeader);
  EXPECT_LOAD_ERROR(Assemble(std::string("{\"x\":") + std::string(100, '[') +
                                 std::string(100, ']') + "}",
                             {}),
                    ErrorCode::kBadHeader);  // nested too deep
  EXPECT_LOAD_ERROR(
      Edited(MicroSpec(), [](FileParts& p) { p.header["__metadata__"]["graph"] = 5; }),
      ErrorCode::kBadHeader);
  EXPECT_LOAD_ERROR(
      Edited(MicroSpec(), [](FileParts& p) { p.header["__metadata__"]["graph"] = "{nope"; }),
      ErrorCode::kBadHeader);
  EXPECT_LOAD_ERROR(Edited(MicroSpec(), [](FileParts& p) { p.header["__metadata__"] = "x"; }),
                    ErrorCode::kBadHeader);
  EXPECT_LOAD_ERROR(
      Edited(MicroSpec(), [](FileParts& p) { p.header["__metadata__"].erase("preprocess"); }),
      ErrorCode::kBadHeader);
  EXPECT_LOAD_ERROR(Edited(MicroSpec(), [](FileParts& p) { p.header["c.weight"] = 3; }),
                    ErrorCode::kBadHeader);
  EXPECT_LOAD_ERROR(Edited(MicroSpec(), [](FileParts& p) { p.header["c.weight"].erase("shape"); }),
                    ErrorCode::kBadHeader);
  EXPECT_LOAD_ERROR(EditedMeta(MicroSpec(), "card", [](Json& c) { c = Json::array(); }),
                    ErrorCode::kBadHeader);
  // The same tensor declared twice (nlohmann would silently keep the last).
  FileParts p = Split(WriteModel(MicroSpec()));
  std::string h = p.header.dump();
  const std::string entry = "\"c.bias\":" + p.header["c.bias"].dump();
  h.insert(h.size() - 1, "," + entry);
  EXPECT_LOAD_ERROR(Assemble(h, p.data), ErrorCode::kBadHeader);
}

TEST(ModelFormat, BadShapes) {
  auto with_shape = [](Json shape) {
    return Edited(MicroSpec(), [&](FileParts& p) { p.header["c.bias"]["shape"] = shape; });
  };
  EXPECT_LOAD_ERROR(with_shape({-2}), ErrorCode::kBadShape);
  EXPECT_LOAD_ERROR(with_shape({0}), ErrorCode::kBadShape);
  EXPECT_LOAD_ERROR(with_shape({int64_t{1} << 40}), ErrorCode::kBadShape);
  EXPECT_LOAD_ERROR(with_shape({uint64_t{1} << 63}), ErrorCode::kBadShape);
  EXPECT_LOAD_ERROR(with_shape({65536, 65536, 65536, 65536}), ErrorCode::kBadShape);  // overflow-ish
  EXPECT_LOAD_ERROR(with_shape({1 << 13, 1 << 14}), ErrorCode::kBadShape);  // 2^27 > limit
  EXPECT_LOAD_ERROR(with_shape({1, 1, 1, 1, 2}), ErrorCode::kBadShape);      // rank 5
  EXPECT_LOAD_ERROR(with_shape({2.5}), ErrorCode::kBadShape);
  EXPECT_LOAD_ERROR(with_shape({"2"}), ErrorCode::kBadShape);
  EXPECT_LOAD_ERROR(with_shape(1e300), ErrorCode::kBadHeader);  // not an array
  // Valid tensor, but not the shape the graph needs.
  EXPECT_LOAD_ERROR(with_shape({1, 2}), ErrorCode::kBadShape);
}

TEST(ModelFormat, BadOffsets) {
  auto with_offsets = [](const char* name, Json offsets) {
    return Edited(MicroSpec(), [&](FileParts& p) { p.header[name]["data_offsets"] = offsets; });
  };
  // MicroSpec: c.bias [0, 8), c.weight [8, 80) (2x3x3x1 floats).
  EXPECT_LOAD_ERROR(with_offsets("c.weight", {1000, 1072}), ErrorCode::kBadOffset);  // past end
  EXPECT_LOAD_ERROR(with_offsets("c.weight", {uint64_t{1} << 62, (uint64_t{1} << 62) + 72}),
                    ErrorCode::kBadOffset);
  EXPECT_LOAD_ERROR(with_offsets("c.weight", {-8, 64}), ErrorCode::kBadOffset);
  EXPECT_LOAD_ERROR(with_offsets("c.weight", {80, 8}), ErrorCode::kBadOffset);  // end < begin
  EXPECT_LOAD_ERROR(with_offsets("c.weight", {8, 76}), ErrorCode::kBadOffset);  // wrong span
  EXPECT_LOAD_ERROR(with_offsets("c.weight", {4, 76}), ErrorCode::kBadOffset);  // overlap
  EXPECT_LOAD_ERROR(with_offsets("c.bias", {72, 80}), ErrorCode::kBadOffset);   // overlap
  EXPECT_LOAD_ERROR(with_offsets("c.weight", {8}), ErrorCode::kBadOffset);
  EXPECT_LOAD_ERROR(with_offsets("c.weight", "8"), ErrorCode::kBadOffset);
  // Trailing bytes after the last tensor.
  EXPECT_LOAD_ERROR(Edited(MicroSpec(), [](FileParts& p) { p.data.resize(p.data.size() + 4); }),
                    ErrorCode::kBadOffset);
  // Both tensors in the same bytes.
  EXPECT_LOAD_ERROR(Edited(MicroSpec(),
                           [](FileParts& p) {
                             p.header["c.bias"]["data_offsets"] = {8, 16};
                             p.data.resize(p.data.size() - 8);
                           }),
                    ErrorCode::kBadOffset);
}

TEST(ModelFormat, WrongDtype) {
  for (const char* dtype : {"F16", "I64", "BF16", "F64", "f32"}) {
    EXPECT_LOAD_ERROR(
        Edited(MicroSpec(), [&](FileParts& p) { p.header["c.weight"]["dtype"] = dtype; }),
        ErrorCode::kBadDtype);
  }
  EXPECT_LOAD_ERROR(Edited(MicroSpec(), [&](FileParts& p) { p.header["c.weight"]["dtype"] = 32; }),
                    ErrorCode::kBadHeader);
}

TEST(ModelFormat, NonFiniteWeights) {
  const float values[] = {std::numeric_limits<float>::quiet_NaN(),
                          std::numeric_limits<float>::infinity(),
                          -std::numeric_limits<float>::infinity()};
  for (float v : values) {
    ModelSpec spec = TinyUnetSpec();
    for (ModelTensor& t : spec.tensors) {
      if (t.name == "dec1.weight") t.data[17] = v;
    }
    const std::vector<uint8_t> bytes = WriteModel(spec);
    Status st = LoadStatus(bytes);
    EXPECT_EQ(st.code(), ErrorCode::kNonFinite) << st.ToString();
    EXPECT_NE(st.message().find("'dec1.weight'"), std::string::npos) << st.message();
    EXPECT_NE(st.message().find("element 17"), std::string::npos) << st.message();
    std::printf("  [kNonFinite] %s\n", st.ToString().c_str());
  }
}

TEST(ModelFormat, TooManyTensors) {
  ModelSpec spec = MicroSpec();
  for (int i = 0; i < kMaxTensors; ++i) {
    spec.tensors.push_back({"extra." + std::to_string(i), {1}, {0.0f}});
  }
  EXPECT_LOAD_ERROR(WriteModel(spec), ErrorCode::kLimitExceeded);
  spec.tensors.resize(kMaxTensors);  // exactly at the limit: fine (unused tensors are allowed)
  EXPECT_TRUE(LoadStatus(WriteModel(spec)).ok()) << LoadStatus(WriteModel(spec)).ToString();
}

TEST(ModelFormat, DanglingInputs) {
  std::vector<uint8_t> bytes = EditedMeta(
      MicroSpec(), "graph", [](Json& g) { NodeNamed(g, "r")["inputs"] = {"nope"}; });
  Status st = LoadStatus(bytes);
  EXPECT_EQ(st.code(), ErrorCode::kBadGraph);
  EXPECT_EQ(st.message(), "node 'r' reads 'nope' which is not defined before it");
  // A forward reference is the same error (no cycles possible).
  bytes = EditedMeta(MicroSpec(), "graph", [](Json& g) { NodeNamed(g, "c")["inputs"] = {"r"}; });
  st = LoadStatus(bytes);
  EXPECT_EQ(st.code(), ErrorCode::kBadGraph);
  EXPECT_EQ(st.message(), "node 'c' reads 'r' which is not defined before it");
  std::printf("  [kBadGraph] %s\n", st.ToString().c_str());
  EXPECT_LOAD_ERROR(EditedMeta(MicroSpec(), "graph", [](Json& g) { g["output"] = "zzz"; }),
                    ErrorCode::kBadGraph);
  EXPECT_LOAD_ERROR(
      EditedMeta(MicroSpec(), "graph", [](Json& g) { NodeNamed(g, "r")["inputs"] = {"c", "c"}; }),
      ErrorCode::kBadGraph);  // arity
  EXPECT_LOAD_ERROR(
      EditedMeta(MicroSpec(), "graph", [](Json& g) { NodeNamed(g, "r")["inputs"] = {3}; }),
      ErrorCode::kBadGraph);
  EXPECT_LOAD_ERROR(EditedMeta(MicroSpec(), "graph", [](Json& g) { g["nodes"] = Json::array(); }),
                    ErrorCode::kBadGraph);
}

TEST(ModelFormat, UnknownOpAndBadAttributes) {
  EXPECT_LOAD_ERROR(
      EditedMeta(MicroSpec(), "graph", [](Json& g) { NodeNamed(g, "r")["op"] = "softmax"; }),
      ErrorCode::kBadGraph);
  EXPECT_LOAD_ERROR(EditedMeta(MicroSpec(), "graph",
                               [](Json& g) { NodeNamed(g, "c")["activation"] = "gelu"; }),
                    ErrorCode::kBadGraph);
  EXPECT_LOAD_ERROR(
      EditedMeta(MicroSpec(), "graph", [](Json& g) { NodeNamed(g, "c")["stride"] = "1"; }),
      ErrorCode::kBadGraph);
  EXPECT_LOAD_ERROR(
      EditedMeta(MicroSpec(), "graph", [](Json& g) { NodeNamed(g, "c")["pad"] = {1, 1, 1}; }),
      ErrorCode::kBadGraph);
  EXPECT_LOAD_ERROR(
      EditedMeta(MicroSpec(), "graph", [](Json& g) { NodeNamed(g, "c")["pad"] = -1; }),
      ErrorCode::kBadGraph);
  EXPECT_LOAD_ERROR(
      EditedMeta(MicroSpec(), "graph", [](Json& g) { NodeNamed(g, "r")["mode"] = "median"; }),
      ErrorCode::kBadGraph);
  EXPECT_LOAD_ERROR(
      EditedMeta(MicroSpec(), "graph", [](Json& g) { NodeNamed(g, "r")["weight"] = "c.weight"; }),
      ErrorCode::kBadGraph);
  EXPECT_LOAD_ERROR(EditedMeta(MicroSpec(), "graph",
                               [](Json& g) { NodeNamed(g, "c")["stride"] = kMaxStride + 1; }),
                    ErrorCode::kLimitExceeded);
  EXPECT_LOAD_ERROR(EditedMeta(MicroSpec(), "graph",
                               [](Json& g) { NodeNamed(g, "c")["dilation"] = {1, 0}; }),
                    ErrorCode::kBadGraph);
  EXPECT_LOAD_ERROR(EditedMeta(MicroSpec(), "graph",
                               [](Json& g) { NodeNamed(g, "c")["pad"] = {0, kMaxPad + 1}; }),
                    ErrorCode::kLimitExceeded);
  EXPECT_LOAD_ERROR(EditedMeta(MicroSpec(), "graph",
                               [](Json& g) { NodeNamed(g, "c")["pad"] = {1, 1e9}; }),
                    ErrorCode::kBadGraph);
  EXPECT_LOAD_ERROR(
      EditedMeta(MicroSpec(), "graph", [](Json& g) { g["input"]["h"] = kMaxModelInputSide + 1; }),
      ErrorCode::kLimitExceeded);
  EXPECT_LOAD_ERROR(EditedMeta(MicroSpec(), "graph",
                               [](Json& g) {
                                 for (int i = 0; i < kMaxNodes; ++i) {
                                   g["nodes"].push_back({{"name", "a" + std::to_string(i)},
                                                         {"op", "activation"},
                                                         {"inputs", {"r"}},
                                                         {"activation", "relu"}});
                                 }
                               }),
                    ErrorCode::kLimitExceeded);
}

TEST(ModelFormat, DuplicateNames) {
  EXPECT_LOAD_ERROR(
      EditedMeta(MicroSpec(), "graph", [](Json& g) { NodeNamed(g, "r")["name"] = "c"; }),
      ErrorCode::kBadGraph);
  EXPECT_LOAD_ERROR(
      EditedMeta(MicroSpec(), "graph", [](Json& g) { NodeNamed(g, "c")["name"] = "input"; }),
      ErrorCode::kBadGraph);
  EXPECT_LOAD_ERROR(
      EditedMeta(MicroSpec(), "graph", [](Json& g) { NodeNamed(g, "c")["name"] = ""; }),
      ErrorCode::kBadGraph);
}

TEST(ModelFormat, MissingWeightTensor) {
  Status st = LoadStatus(
      EditedMeta(MicroSpec(), "graph", [](Json& g) { NodeNamed(g, "c")["weight"] = "c.w"; }));
  EXPECT_EQ(st.code(), ErrorCode::kBadGraph);
  EXPECT_NE(st.message().find("'c.w'"), std::string::npos) << st.message();
  std::printf("  [kBadGraph] %s\n", st.ToString().c_str());
  EXPECT_LOAD_ERROR(
      EditedMeta(MicroSpec(), "graph", [](Json& g) { NodeNamed(g, "c").erase("weight"); }),
      ErrorCode::kBadGraph);
  EXPECT_LOAD_ERROR(
      EditedMeta(MicroSpec(), "graph", [](Json& g) { NodeNamed(g, "c")["bias"] = "c.b"; }),
      ErrorCode::kBadGraph);
}

TEST(ModelFormat, WeightShapeMismatch) {
  // Declared out_channels / kernel disagree with the weight.
  EXPECT_LOAD_ERROR(
      EditedMeta(MicroSpec(), "graph", [](Json& g) { NodeNamed(g, "c")["out_channels"] = 3; }),
      ErrorCode::kBadShape);
  EXPECT_LOAD_ERROR(EditedMeta(MicroSpec(), "graph",
                               [](Json& g) {
                                 NodeNamed(g, "c")["kernel"] = {1, 1};
                                 NodeNamed(g, "c")["pad"] = 0;
                               }),
                    ErrorCode::kBadShape);
  // Weight input channels disagree with the actual input (found by Finalize).
  ModelSpec spec = TinyUnetSpec();
  for (ModelTensor& t : spec.tensors) {
    if (t.name == "dec1.weight") {
      t.shape = {8, 3, 3, 16};  // cat1 has 32 channels
      t.data.resize(8 * 3 * 3 * 16);
    }
  }
  Status st = LoadStatus(WriteModel(spec));
  EXPECT_EQ(st.code(), ErrorCode::kBadShape) << st.ToString();
  std::printf("  [kBadShape] %s\n", st.ToString().c_str());
  // Dense weight of the wrong input size.
  spec = SeedCnnSpec(true);
  for (ModelTensor& t : spec.tensors) {
    if (t.name == "fc1.weight") {
      t.shape = {128, 2000};
      t.data.resize(128 * 2000);
    }
  }
  EXPECT_LOAD_ERROR(WriteModel(spec), ErrorCode::kBadShape);
  // Bias of the wrong length, weight of the wrong rank.
  spec = MicroSpec();
  for (ModelTensor& t : spec.tensors) {
    if (t.name == "c.bias") t.shape = {1, 2};
  }
  EXPECT_LOAD_ERROR(WriteModel(spec), ErrorCode::kBadShape);
  spec = MicroSpec();
  for (ModelTensor& t : spec.tensors) {
    if (t.name == "c.weight") t.shape = {2, 9};
  }
  EXPECT_LOAD_ERROR(WriteModel(spec), ErrorCode::kBadShape);
  // Data length disagrees with the shape: caught as an offset error.
  spec = MicroSpec();
  spec.tensors[0].data.pop_back();
  EXPECT_LOAD_ERROR(WriteModel(spec), ErrorCode::kBadOffset);
}

TEST(ModelFormat, PreprocessNetworkMismatch) {
  Status st = LoadStatus(EditedMeta(TinyUnetSpec(), "preprocess", [](Json& p) {
    p["crop"] = {{"x", 0}, {"y", 0}, {"w", 30}, {"h", 30}};
  }));
  EXPECT_EQ(st.code(), ErrorCode::kBadShape);
  std::printf("  [kBadShape] %s\n", st.ToString().c_str());
  EXPECT_LOAD_ERROR(EditedMeta(TinyUnetSpec(), "preprocess", [](Json& p) { p["channels"] = 1; }),
                    ErrorCode::kBadShape);
  EXPECT_LOAD_ERROR(EditedMeta(SeedCnnSpec(false), "preprocess",
                               [](Json& p) { p["resize_w"] = 48; }),
                    ErrorCode::kBadShape);
  // Invalid on its own.
  EXPECT_LOAD_ERROR(EditedMeta(TinyUnetSpec(), "preprocess",
                               [](Json& p) { p["crop"]["x"] = 20; }),  // outside the 40x40 image
                    ErrorCode::kBadHeader);
  EXPECT_LOAD_ERROR(EditedMeta(TinyUnetSpec(), "preprocess", [](Json& p) { p["std"] = {1, 0, 1}; }),
                    ErrorCode::kBadHeader);
  EXPECT_LOAD_ERROR(EditedMeta(TinyUnetSpec(), "preprocess", [](Json& p) { p["norm"] = "zca"; }),
                    ErrorCode::kBadHeader);
  EXPECT_LOAD_ERROR(EditedMeta(TinyUnetSpec(), "preprocess", [](Json& p) { p["scale"] = "1"; }),
                    ErrorCode::kBadHeader);
  EXPECT_LOAD_ERROR(EditedMeta(TinyUnetSpec(), "preprocess", [](Json& p) { p = 3; }),
                    ErrorCode::kBadHeader);
  // Fixed pixel scale: in range, a number, and never with a crop.
  for (Json bad : {Json(-0.5), Json(65), Json("1")}) {
    EXPECT_LOAD_ERROR(EditedMeta(MicroSpec(), "preprocess", [&](Json& p) { p["pixel_scale"] = bad; }),
                      ErrorCode::kBadHeader);
  }
  EXPECT_LOAD_ERROR(EditedMeta(TinyUnetSpec(), "preprocess", [](Json& p) { p["pixel_scale"] = 1; }),
                    ErrorCode::kBadHeader);  // TinyUnet crops
  EXPECT_TRUE(
      LoadStatus(EditedMeta(MicroSpec(), "preprocess", [](Json& p) { p["pixel_scale"] = 0.75; }))
          .ok());
}

// Edge calibration tables: square [S, S], S even, 2 <= S <= 128, the same S
// for mean and std, std > 0, present in the file.
TEST(ModelFormat, EdgeCalibrationTables) {
  auto with_tables = [](std::vector<int64_t> mshape, std::vector<int64_t> sshape, float std0) {
    ModelSpec spec = MicroSpec();
    int64_t mn = 1, sn = 1;
    for (int64_t d : mshape) mn *= d;
    for (int64_t d : sshape) sn *= d;
    spec.tensors.push_back({"e.mean", mshape, std::vector<float>(size_t(mn), 0.5f)});
    std::vector<float> sd(size_t(sn), 1.0f);
    sd[0] = std0;
    spec.tensors.push_back({"e.std", sshape, sd});
    spec.postprocess_json = R"({"edge_mean":"e.mean","edge_std":"e.std"})";
    return WriteModel(spec);
  };
  EXPECT_TRUE(LoadStatus(with_tables({4, 4}, {4, 4}, 1.0f)).ok());
  EXPECT_LOAD_ERROR(with_tables({3, 3}, {3, 3}, 1.0f), ErrorCode::kBadShape);  // odd
  EXPECT_LOAD_ERROR(with_tables({4, 2}, {4, 2}, 1.0f), ErrorCode::kBadShape);
  EXPECT_LOAD_ERROR(with_tables({130, 130}, {130, 130}, 1.0f), ErrorCode::kBadShape);
  EXPECT_LOAD_ERROR(with_tables({16}, {16}, 1.0f), ErrorCode::kBadShape);
  EXPECT_LOAD_ERROR(with_tables({4, 4}, {2, 2}, 1.0f), ErrorCode::kBadShape);
  EXPECT_LOAD_ERROR(with_tables({4, 4}, {4, 4}, 0.0f), ErrorCode::kBadHeader);
  EXPECT_LOAD_ERROR(with_tables({4, 4}, {4, 4}, -1.0f), ErrorCode::kBadHeader);
  EXPECT_LOAD_ERROR(EditedMeta(MicroSpec(), "postprocess",
                               [](Json& p) { p["edge_mean"] = "no.such"; }),
                    ErrorCode::kBadHeader);
}

TEST(ModelFormat, PostprocessChecks) {
  EXPECT_LOAD_ERROR(EditedMeta(TinyUnetSpec(), "postprocess",
                               [](Json& p) { p["cell_mean"] = "enc1.bias"; }),
                    ErrorCode::kBadShape);
  EXPECT_LOAD_ERROR(EditedMeta(TinyUnetSpec(), "postprocess",
                               [](Json& p) { p["cell_std"] = "no.such"; }),
                    ErrorCode::kBadHeader);
  EXPECT_LOAD_ERROR(EditedMeta(TinyUnetSpec(), "postprocess", [](Json& p) { p["reduce"] = "p99"; }),
                    ErrorCode::kBadHeader);
  EXPECT_LOAD_ERROR(
      EditedMeta(TinyUnetSpec(), "postprocess", [](Json& p) { p["topk_fraction"] = 0; }),
      ErrorCode::kBadHeader);
  EXPECT_LOAD_ERROR(
      EditedMeta(TinyUnetSpec(), "postprocess", [](Json& p) { p["blur_sigma"] = -1; }),
      ErrorCode::kBadHeader);
  EXPECT_LOAD_ERROR(
      EditedMeta(TinyUnetSpec(), "postprocess", [](Json& p) { p["blur_sigma"] = 11; }),
      ErrorCode::kBadHeader);  // radius 33 >= 32x32 map
  EXPECT_TRUE(LoadStatus(EditedMeta(TinyUnetSpec(), "postprocess",
                                    [](Json& p) { p["blur_sigma"] = 10; }))
                  .ok());  // radius 30 fits
  EXPECT_LOAD_ERROR(EditedMeta(TinyUnetSpec(), "postprocess", [](Json& p) { p["sigmoid"] = 1; }),
                    ErrorCode::kBadHeader);
  // cell_std must be > 0.
  ModelSpec spec = TinyUnetSpec();
  for (ModelTensor& t : spec.tensors) {
    if (t.name == "post.cell_std") t.data[5] = 0.0f;
  }
  EXPECT_LOAD_ERROR(WriteModel(spec), ErrorCode::kBadHeader);
  // Cell maps on a network whose output is not a 1-channel map.
  spec = SeedCnnSpec(true);
  spec.tensors.push_back({"cm", {1, 1}, {0.0f}});
  spec.postprocess_json = R"({"cell_mean":"cm"})";
  EXPECT_TRUE(LoadStatus(WriteModel(spec)).ok()) << LoadStatus(WriteModel(spec)).ToString();
  spec.tensors.back().shape = {1, 2};
  spec.tensors.back().data = {0.0f, 0.0f};
  EXPECT_LOAD_ERROR(WriteModel(spec), ErrorCode::kBadShape);
}

TEST(ModelFormat, BadCalibration) {
  for (Json scale : {Json(0), Json(-1.0), Json("2"), Json(nullptr), Json(1e-60), Json(1e300)}) {
    Status st = LoadStatus(
        EditedMeta(MicroSpec(), "calibration", [&](Json& c) { c["scale"] = scale; }));
    EXPECT_EQ(st.code(), ErrorCode::kBadHeader) << scale.dump() << ": " << st.ToString();
  }
  std::printf("  [kBadHeader] %s\n",
              LoadStatus(EditedMeta(MicroSpec(), "calibration", [](Json& c) { c["scale"] = 0; }))
                  .ToString()
                  .c_str());
  EXPECT_LOAD_ERROR(
      EditedMeta(MicroSpec(), "calibration", [](Json& c) { c["threshold"] = "high"; }),
      ErrorCode::kBadHeader);
  EXPECT_LOAD_ERROR(EditedMeta(MicroSpec(), "calibration",
                               [](Json& c) {
                                 c["map_low"] = 2;
                                 c["map_high"] = 1;
                               }),
                    ErrorCode::kBadHeader);
  // f1_threshold: null means absent.
  auto r = [&] {
    std::vector<uint8_t> b =
        EditedMeta(MicroSpec(), "calibration", [](Json& c) { c["f1_threshold"] = nullptr; });
    return LoadModel(b.data(), b.size());
  }();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(std::isnan((*r)->calibration.f1_threshold));
}

// Random single-byte corruptions: any result is fine except a crash (run
// under ASan/UBSan to make "crash" include every out-of-bounds read).
TEST(ModelFormat, RandomCorruptionNeverCrashes) {
  const std::vector<uint8_t> base = WriteModel(MicroSpec());
  testing::Rng rng(1234);
  int rejected = 0;
  const int kTrials = 4000;
  for (int i = 0; i < kTrials; ++i) {
    std::vector<uint8_t> b = base;
    const int flips = 1 + static_cast<int>(rng.Next() % 3);
    for (int f = 0; f < flips; ++f) {
      b[rng.Next() % b.size()] = static_cast<uint8_t>(rng.Next());
    }
    auto r = LoadModel(b.data(), b.size());
    if (!r.ok()) {
      ++rejected;
      EXPECT_FALSE(r.status().message().empty());
    }
  }
  std::printf("  %d of %d corrupted files rejected\n", rejected, kTrials);
  EXPECT_GT(rejected, kTrials / 4);
}

// Structured corruption: one JSON value of the graph / configs / a tensor entry
// replaced by a hostile value. Reaches the deep checks (attributes, shapes,
// Graph::Finalize) that byte flips rarely get past the JSON parser to.
TEST(ModelFormat, RandomStructuredMutationsNeverCrash) {
  const ModelSpec spec = TinyUnetSpec();
  const FileParts base = Split(WriteModel(spec));
  const Json values[] = {0,       -1,         1,          2,          3,
                         17,      65,         2049,       8193,       int64_t{1} << 31,
                         -(int64_t{1} << 31), int64_t{1} << 62, 1e300, 2.5, -0.0,
                         "x",     "relu",     "input",    "enc1",     "nearest",
                         nullptr, true,       Json::array(), Json::array({1}),
                         Json::array({1, 2}), Json::array({1, 2, 3, 4}), Json::array({0, 0}),
                         Json::array({-1, -1}), Json::array({1 << 30, 1 << 30}),
                         Json::object(), Json::array({"enc1", "enc1"})};
  const char* node_keys[] = {"name",   "op",     "inputs",   "out_channels", "kernel",
                             "stride", "dilation", "pad",    "groups",       "activation",
                             "alpha",  "mode",   "scale",    "count_include_pad", "weight",
                             "bias"};
  const char* sections[] = {"graph", "preprocess", "postprocess", "calibration", "card"};
  testing::Rng rng(99);
  int accepted = 0;
  const int kTrials = 3000;
  for (int trial = 0; trial < kTrials; ++trial) {
    FileParts p = base;
    const Json& v = values[rng.Next() % (sizeof values / sizeof values[0])];
    const int where = static_cast<int>(rng.Next() % 8);
    if (where == 0) {  // a tensor entry field
      auto it = p.header.begin();
      std::advance(it, static_cast<ptrdiff_t>(rng.Next() % p.header.size()));
      if (it.key() == "__metadata__") continue;
      const char* keys[] = {"dtype", "shape", "data_offsets"};
      it.value()[keys[rng.Next() % 3]] = v;
    } else {
      Json& meta = p.header["__metadata__"];
      const char* section = where <= 4 ? "graph" : sections[rng.Next() % 5];
      Json j = Json::parse(meta[section].get<std::string>(), nullptr, false);
      ASSERT_FALSE(j.is_discarded());
      if (std::string(section) == "graph") {
        if (where == 1) {
          const char* gk[] = {"h", "w", "c"};
          j["input"][gk[rng.Next() % 3]] = v;
        } else {
          Json& node = j["nodes"][rng.Next() % j["nodes"].size()];
          node[node_keys[rng.Next() % (sizeof node_keys / sizeof node_keys[0])]] = v;
          if (rng.Next() % 4 == 0) j["output"] = v;
        }
      } else if (j.is_object() && !j.empty() && rng.Next() % 2) {
        auto it = j.begin();
        std::advance(it, static_cast<ptrdiff_t>(rng.Next() % j.size()));
        it.value() = v;
      } else {
        j["scale"] = v;
      }
      meta[section] = j.dump();
    }
    const std::vector<uint8_t> bytes = Assemble(p);
    auto r = LoadModel(bytes.data(), bytes.size());
    if (r.ok()) {
      ++accepted;
      EXPECT_EQ((*r)->graph.shapes.size(), (*r)->graph.nodes.size() + 1);
    } else {
      EXPECT_FALSE(r.status().message().empty());
    }
  }
  std::printf("  %d of %d mutated models still valid\n", accepted, kTrials);
  EXPECT_LT(accepted, kTrials / 2);
}

}  // namespace
}  // namespace flawlens
