// flawlens export-onnx: the graph's structure (parsed back with Debian's ONNX
// protobuf: ops, shapes, weights, metadata), clear errors for models a fixed
// ONNX graph cannot express, and, when tests/onnx_export/node_modules is
// installed (`npm ci --ignore-scripts --prefix tests/onnx_export`), ONNX
// Runtime against the engine on every op, both input modes, the postprocess
// steps and taught models.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>  // onnx-ml.pb.h (ONNX_ML), namespace onnx
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "../test_models.h"
#include "cli/cli_util.h"
#include "cli/dataset.h"
#include "fit/teacher.h"
#include "model/model.h"
#include "onnx/onnx_export.h"

namespace flawlens::onnx_export {
namespace {
namespace fs = std::filesystem;
using flawlens::testing::SpecBuilder;
using Json = nlohmann::json;

struct Exported {
  ExportResult result;
  onnx::ModelProto proto;
};

Exported ExportBytes(const std::vector<uint8_t>& bytes, InputMode mode = InputMode::kPixels) {
  Exported e;
  ExportOptions o;
  o.input = mode;
  auto r = ExportOnnx(bytes.data(), bytes.size(), o);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  if (!r.ok()) return e;
  e.result = *r;
  EXPECT_TRUE(e.proto.ParseFromString(e.result.onnx));
  return e;
}

Exported ExportSpec(const ModelSpec& spec, InputMode mode = InputMode::kPixels) {
  return ExportBytes(WriteModel(spec), mode);
}

std::map<std::string, std::string> Meta(const onnx::ModelProto& p) {
  std::map<std::string, std::string> m;
  for (const auto& e : p.metadata_props()) m[e.key()] = e.value();
  return m;
}

std::multiset<std::string> OpTypes(const onnx::ModelProto& p) {
  std::multiset<std::string> s;
  for (const auto& n : p.graph().node()) s.insert(n.op_type());
  return s;
}

// Dimensions, -1 for the symbolic batch dimension.
std::vector<int64_t> Dims(const onnx::ValueInfoProto& v) {
  std::vector<int64_t> d;
  for (const auto& dim : v.type().tensor_type().shape().dim()) {
    d.push_back(dim.dim_param() == kBatchDim ? -1 : dim.dim_value());
  }
  return d;
}

const onnx::TensorProto* Initializer(const onnx::ModelProto& p, const std::string& name) {
  for (const auto& t : p.graph().initializer()) {
    if (t.name() == name) return &t;
  }
  return nullptr;
}

std::vector<float> FloatData(const onnx::TensorProto& t) {
  std::vector<float> v(t.raw_data().size() / sizeof(float));
  std::memcpy(v.data(), t.raw_data().data(), v.size() * sizeof(float));
  return v;
}

// What every exported graph must satisfy: opset 17 / IR 8, one input
// "image" NCHW, the three outputs, nodes in topological order reading only
// the input, initializers or earlier outputs, unique names, initializer
// bytes matching their dims.
void ExpectWellFormed(const onnx::ModelProto& p, const std::vector<int64_t>& input,
                      const std::vector<int64_t>& map) {
  EXPECT_EQ(p.ir_version(), 8);
  ASSERT_EQ(p.opset_import_size(), 1);
  EXPECT_EQ(p.opset_import(0).domain(), "");
  EXPECT_EQ(p.opset_import(0).version(), 17);
  const onnx::GraphProto& g = p.graph();
  ASSERT_EQ(g.input_size(), 1);
  EXPECT_EQ(g.input(0).name(), "image");
  EXPECT_EQ(Dims(g.input(0)), input);
  ASSERT_EQ(g.output_size(), 3);
  EXPECT_EQ(g.output(0).name(), "pred_score");
  EXPECT_EQ(Dims(g.output(0)), (std::vector<int64_t>{-1}));
  EXPECT_EQ(g.output(1).name(), "anomaly_map");
  EXPECT_EQ(Dims(g.output(1)), map);
  EXPECT_EQ(g.output(2).name(), "pred_label");
  EXPECT_EQ(g.output(2).type().tensor_type().elem_type(), onnx::TensorProto::BOOL);

  std::set<std::string> defined = {"image"};
  for (const auto& t : g.initializer()) {
    EXPECT_TRUE(defined.insert(t.name()).second) << "initializer " << t.name() << " twice";
    int64_t n = 1;
    for (int64_t d : t.dims()) n *= d;
    const size_t elem = t.data_type() == onnx::TensorProto::INT64 ? 8 : 4;
    EXPECT_EQ(t.raw_data().size(), size_t(n) * elem) << t.name();
  }
  std::set<std::string> node_names;
  for (const auto& n : g.node()) {
    EXPECT_TRUE(node_names.insert(n.name()).second) << "node " << n.name() << " twice";
    for (const std::string& in : n.input()) {
      if (in.empty()) continue;  // an omitted optional input
      EXPECT_TRUE(defined.count(in)) << n.op_type() << " '" << n.name() << "' reads '" << in
                                     << "' before it is defined";
    }
    for (const std::string& out : n.output()) {
      EXPECT_TRUE(defined.insert(out).second) << "value " << out << " defined twice";
    }
  }
  for (const auto& o : g.output()) EXPECT_TRUE(defined.count(o.name())) << o.name();
}

// ---- structure --------------------------------------------------------------

TEST(OnnxExport, EveryOpOfTheTinyUnet) {
  const ModelSpec spec = testing::TinyUnetSpec();
  Exported e = ExportSpec(spec);
  ExpectWellFormed(e.proto, {-1, 3, 32, 32}, {-1, 1, 32, 32});
  const auto ops = OpTypes(e.proto);
  for (const char* op : {"Conv", "Relu", "LeakyRelu", "Sigmoid", "Mul", "Add", "MaxPool",
                         "AveragePool", "GlobalAveragePool", "Flatten", "Gemm", "Reshape",
                         "Resize", "Concat", "ReduceMean", "Gather", "Sub", "Div", "TopK",
                         "GreaterOrEqual"}) {
    EXPECT_TRUE(ops.count(op)) << "no " << op;
  }
  // Both upsample modes, with the engine's coordinate rules.
  int nearest = 0, linear = 0;
  for (const auto& n : e.proto.graph().node()) {
    if (n.op_type() != "Resize") continue;
    std::map<std::string, std::string> a;
    for (const auto& at : n.attribute()) a[at.name()] = at.s();
    if (a["mode"] == "nearest") {
      ++nearest;
      EXPECT_EQ(a["coordinate_transformation_mode"], "asymmetric");
      EXPECT_EQ(a["nearest_mode"], "floor");
    } else {
      ++linear;
      EXPECT_EQ(a["mode"], "linear");
      EXPECT_EQ(a["coordinate_transformation_mode"], "half_pixel");
    }
  }
  EXPECT_EQ(nearest, 2);
  EXPECT_EQ(linear, 1);
  // Every engine node's value keeps the node's name and its NCHW shape.
  std::map<std::string, std::vector<int64_t>> info;
  for (const auto& v : e.proto.graph().value_info()) info[v.name()] = Dims(v);
  EXPECT_EQ(info["enc2"], (std::vector<int64_t>{-1, 16, 16, 16}));
  EXPECT_EQ(info["se"], (std::vector<int64_t>{-1, 16, 1, 1}));
  EXPECT_EQ(info["cat1"], (std::vector<int64_t>{-1, 32, 16, 16}));
  EXPECT_EQ(info["head"], (std::vector<int64_t>{-1, 1, 32, 32}));
  EXPECT_EQ(e.result.engine_nodes, 20);
}

TEST(OnnxExport, ConvWeightsBecomeOihwAndDenseColumnsChw) {
  const ModelSpec spec = testing::SeedCnnSpec(/*with_seed_crop=*/true);
  Exported e = ExportSpec(spec);
  ExpectWellFormed(e.proto, {-1, 3, 32, 32}, {-1, 1, 1, 1});
  std::map<std::string, const ModelTensor*> src;
  for (const ModelTensor& t : spec.tensors) src[t.name] = &t;
  // conv1: OHWI [32, 3, 3, 3] -> OIHW.
  const onnx::TensorProto* c = Initializer(e.proto, "conv1.weight");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(std::vector<int64_t>(c->dims().begin(), c->dims().end()),
            (std::vector<int64_t>{32, 3, 3, 3}));
  const std::vector<float> cw = FloatData(*c);
  const std::vector<float>& ow = src["conv1.weight"]->data;
  for (int o : {0, 17, 31})
    for (int y = 0; y < 3; ++y)
      for (int x = 0; x < 3; ++x)
        for (int i = 0; i < 3; ++i) {
          ASSERT_EQ(cw[((size_t(o) * 3 + i) * 3 + y) * 3 + x], ow[((size_t(o) * 3 + y) * 3 + x) * 3 + i]);
        }
  // fc1 reads pool2 (6x6x64): columns (y*6 + x)*64 + c -> c*36 + y*6 + x.
  const onnx::TensorProto* d = Initializer(e.proto, "fc1.weight");
  ASSERT_NE(d, nullptr);
  const std::vector<float> dw = FloatData(*d);
  const std::vector<float>& odw = src["fc1.weight"]->data;
  const int n = 6 * 6 * 64;
  ASSERT_EQ(dw.size(), size_t(128) * n);
  for (int o : {0, 127})
    for (int p : {0, 7, 35})
      for (int ch : {0, 5, 63}) ASSERT_EQ(dw[size_t(o) * n + ch * 36 + p], odw[size_t(o) * n + p * 64 + ch]);
}

TEST(OnnxExport, MetadataIsAnomalibStyle) {
  Exported e = ExportSpec(testing::TinyUnetSpec());
  auto m = Meta(e.proto);
  for (const char* k : {"task", "image_threshold", "pixel_threshold", "threshold", "input_size",
                        "transform", "mean", "std", "normalization", "input_range", "metadata",
                        "flawlens.preprocess", "flawlens.postprocess", "flawlens.calibration",
                        "flawlens.card"}) {
    EXPECT_TRUE(m.count(k)) << "no metadata '" << k << "'";
  }
  EXPECT_EQ(m["task"], "segmentation");
  EXPECT_EQ(std::stof(m["image_threshold"]), 2.0f);  // TinyUnetSpec's calibration
  EXPECT_EQ(std::stof(m["pixel_threshold"]), 2.0f);
  EXPECT_EQ(Json::parse(m["input_size"]), Json::parse("[32, 32]"));
  EXPECT_EQ(m["input_range"], "0..255");
  const Json norm = Json::parse(m["normalization"]);
  EXPECT_EQ(norm["in_graph"], true);
  EXPECT_FLOAT_EQ(norm["mean"][0].get<float>(), 0.485f);
  EXPECT_FLOAT_EQ(norm["std"][2].get<float>(), 0.225f);
  // The transform the caller applies: resize 40x40, crop 4..36; no
  // Normalize (it is in the graph).
  const Json tf = Json::parse(m["transform"]);
  const Json& steps = tf["transform"]["transforms"];
  ASSERT_EQ(steps.size(), 3u);
  EXPECT_EQ(steps[0]["__class_fullname__"], "Resize");
  EXPECT_EQ(steps[0]["height"], 40);
  EXPECT_EQ(steps[1]["__class_fullname__"], "Crop");
  EXPECT_EQ(steps[1]["x_min"], 4);
  EXPECT_EQ(steps[1]["x_max"], 36);
  EXPECT_EQ(steps[2]["__class_fullname__"], "ToTensorV2");
  const Json all = Json::parse(m["metadata"]);
  EXPECT_EQ(all["map_size"], Json::parse("[32, 32]"));
  EXPECT_FLOAT_EQ(all["score_calibration"]["scale"].get<float>(), 0.5f);
  EXPECT_EQ(Json::parse(m["flawlens.card"])["name"], "tiny-unet");
  EXPECT_EQ(Json::parse(e.result.metadata_json), all);
}

TEST(OnnxExport, InputModes) {
  const ModelSpec spec = testing::TinyUnetSpec();
  // normalized: the image goes straight into the first conv.
  Exported n = ExportSpec(spec, InputMode::kNormalized);
  ExpectWellFormed(n.proto, {-1, 3, 32, 32}, {-1, 1, 32, 32});
  for (const auto& node : n.proto.graph().node()) {
    for (const std::string& in : node.input()) {
      if (in == "image") EXPECT_EQ(node.op_type(), "Conv") << node.name();
    }
  }
  auto nm = Meta(n.proto);
  EXPECT_EQ(nm["input_range"], "normalized");
  EXPECT_EQ(Json::parse(nm["normalization"])["in_graph"], false);
  const Json steps = Json::parse(nm["transform"])["transform"]["transforms"];
  ASSERT_EQ(steps.size(), 4u);
  EXPECT_EQ(steps[2]["__class_fullname__"], "Normalize");
  EXPECT_FLOAT_EQ(steps[2]["max_pixel_value"].get<float>(), 255.0f);
  // unit: x 255 first.
  Exported u = ExportSpec(spec, InputMode::kUnit);
  bool scaled = false;
  for (const auto& node : u.proto.graph().node()) {
    if (node.input_size() == 2 && node.input(0) == "image" && node.op_type() == "Mul") {
      const onnx::TensorProto* k = Initializer(u.proto, node.input(1));
      ASSERT_NE(k, nullptr);
      scaled = FloatData(*k) == std::vector<float>{255.0f};
    }
  }
  EXPECT_TRUE(scaled);
  EXPECT_EQ(Meta(u.proto)["input_range"], "0..1");
  EXPECT_EQ(ParseInputMode("nope").status().code(), ErrorCode::kInvalidArgument);
}

TEST(OnnxExport, NonDefaultHardAlphasAreSpelledOut) {
  Exported e = ExportSpec(testing::MobileNetV3BlockSpec());
  ExpectWellFormed(e.proto, {-1, 3, 32, 32}, {-1, 1, 8, 8});
  const auto ops = OpTypes(e.proto);
  EXPECT_EQ(ops.count("HardSwish"), 1u);    // stem, alpha 1/6
  EXPECT_EQ(ops.count("HardSigmoid"), 1u);  // se_excite, alpha 1/6
  EXPECT_GE(ops.count("Clip"), 2u);         // relu6 twice + dw's spelled-out hard_swish
  EXPECT_EQ(ops.count("MatMul"), 1u);       // position_mahalanobis
  EXPECT_EQ(ops.count("ReduceSumSquare"), 1u);
  // dw's alpha (TF's float16 1/6) survives exactly.
  bool found = false;
  for (const auto& n : e.proto.graph().node()) {
    if (n.name() != "dw") continue;
    const onnx::TensorProto* k = Initializer(e.proto, n.input(1));
    ASSERT_NE(k, nullptr);
    found = FloatData(*k) == std::vector<float>{0.1666259765625f};
  }
  EXPECT_TRUE(found);
}

// Teaching helpers: a tiny gray backbone (64x64 -> 16x16x16) and striped images.
std::vector<uint8_t> TinyBackbone() {
  SpecBuilder b(64, 64, 1, 21);
  b.Conv("c1", "input", 8, 3, 2, 1, "relu").Conv("c2", "c1", 16, 3, 2, 1, "relu");
  b.Conv("unused", "c2", 4, 1);
  PreprocessConfig pre;
  pre.resize_w = pre.resize_h = 64;
  pre.channels = 1;
  return WriteModel(b.Build("c2", pre, "{}", "{}", R"({"kind":"backbone","name":"tiny"})"));
}

std::vector<uint8_t> StripedGray(uint64_t seed, int w = 64, int h = 64, bool defect = false) {
  testing::Rng rng(seed);
  const float phase = 3.14159f * rng.Uniform(), amp = 30 + 5 * rng.Uniform();
  std::vector<uint8_t> px(size_t(w) * h);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      float v = 128 + amp * std::sin(0.35f * x + 0.2f * y + phase) + 8 * rng.Uniform();
      if (defect && x >= w / 2 && x < w / 2 + 10 && y >= h / 4 && y < h / 4 + 10) v = 250;
      px[size_t(y) * w + x] = uint8_t(std::clamp(v, 0.0f, 255.0f));
    }
  return px;
}

Result<fit::FitResult> Teach(const fit::FitOptions& fo) {
  const std::vector<uint8_t> backbone = TinyBackbone();
  fit::TeacherOptions to;
  to.dims = 8;
  FLAWLENS_ASSIGN_OR_RETURN(auto t, fit::Teacher::Create(backbone.data(), backbone.size(), to));
  for (int i = 0; i < 30; ++i) {
    const std::vector<uint8_t> px = StripedGray(1000 + uint64_t(i));
    FLAWLENS_RETURN_IF_ERROR(t->AddImage(ImageView{px.data(), 64, 64, PixelFormat::kGray8, 0}).status());
  }
  return t->Fit(fo);
}

// The graph JSON and tensor shapes of a model file (its safetensors header).
Json Header(const std::vector<uint8_t>& bytes) {
  return Json::parse(std::string(reinterpret_cast<const char*>(bytes.data()) + 8,
                                 ReadHeaderLength(bytes.data())));
}

// The exported graph of a taught model has the engine nodes' ONNX forms:
// as many AveragePool as avgpool2d nodes, a MatMul per position_mahalanobis
// with its whitening matrices stored once per region, a Conv per conv2d.
void ExpectTaughtStructure(const std::vector<uint8_t>& model) {
  Exported e = ExportBytes(model);
  ExpectWellFormed(e.proto, {-1, 1, 64, 64}, {-1, 1, 16, 16});
  const Json header = Header(model);
  const Json graph = Json::parse(header["__metadata__"]["graph"].get<std::string>());
  std::map<std::string, size_t> engine;
  for (const Json& n : graph["nodes"]) {
    if (n["name"] != "unused") ++engine[n["op"].get<std::string>()];
    if (n["op"] == "position_mahalanobis") {
      const Json& shape = header[n["weight"].get<std::string>()]["shape"];
      const onnx::TensorProto* w = Initializer(e.proto, n["name"].get<std::string>() + ".weight");
      ASSERT_NE(w, nullptr);
      EXPECT_EQ(std::vector<int64_t>(w->dims().begin(), w->dims().end()),
                (std::vector<int64_t>{shape[0].get<int64_t>() * shape[1].get<int64_t>(),
                                      shape[2].get<int64_t>(), shape[3].get<int64_t>()}));
    }
  }
  const auto ops = OpTypes(e.proto);
  EXPECT_EQ(ops.count("AveragePool"), engine["avgpool2d"]);
  EXPECT_EQ(ops.count("MatMul"), engine["position_mahalanobis"]);
  EXPECT_EQ(ops.count("Conv"), engine["conv2d"] + 2);  // + the map blur's two passes
  // The unused backbone node is not exported.
  for (const auto& n : e.proto.graph().node()) EXPECT_NE(n.name(), "unused");
}

TEST(OnnxExport, TaughtModels) {
  fit::FitOptions per_position;
  auto a = Teach(per_position);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ExpectTaughtStructure(a->model);
  // The threshold's promise travels in the metadata.
  Exported ea = ExportBytes(a->model);
  EXPECT_FLOAT_EQ(std::stof(Meta(ea.proto)["false_alarm_rate"]), float(per_position.false_alarm_rate));
  fit::FitOptions shared;
  shared.density = fit::DensityKind::kShared;
  auto b = Teach(shared);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  ExpectTaughtStructure(b->model);
}

// position_mahalanobis with its whitening matrices on a 3x2 grid over an
// 8x8 map: cell (y, x) uses region (y * 3 / 8, x * 2 / 8); regions of 2x4,
// 3x4 and 3x4 cells.
std::vector<uint8_t> CoarseGridModel() {
  SpecBuilder b(8, 8, 3, 5);
  b.Conv("c", "input", 4, 1, 1, 0, "none");
  PreprocessConfig pre;
  pre.resize_w = pre.resize_h = 8;
  std::vector<float> a(3 * 2 * 4 * 4), mu(8 * 8 * 4);
  for (size_t i = 0; i < a.size(); ++i) a[i] = 0.1f * float(i % 7) - 0.2f;
  for (size_t i = 0; i < mu.size(); ++i) mu[i] = 0.01f * float(i % 11);
  b.Tensor("d.weight", {3, 2, 4, 4}, a).Tensor("d.bias", {8, 8, 4}, mu);
  ModelSpec spec = b.Build("c", pre);
  Json g = Json::parse(spec.graph_json);
  g["nodes"].push_back({{"name", "d"}, {"op", "position_mahalanobis"}, {"inputs", {"c"}},
                        {"weight", "d.weight"}, {"bias", "d.bias"}});
  g["output"] = "d";
  spec.graph_json = g.dump();
  return WriteModel(spec);
}

TEST(OnnxExport, CoarseWhiteningGridIsGatheredPerCell) {
  const std::vector<uint8_t> bytes = CoarseGridModel();
  Exported e = ExportBytes(bytes);
  ExpectWellFormed(e.proto, {-1, 3, 8, 8}, {-1, 1, 8, 8});
  const onnx::TensorProto* w = Initializer(e.proto, "d.weight");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(std::vector<int64_t>(w->dims().begin(), w->dims().end()),
            (std::vector<int64_t>{6, 4, 4}));  // the grid, not one per cell
  // Cells grouped by region (batches of the MatMul), and back.
  auto ints = [&](const char* name) {
    const onnx::TensorProto* t = Initializer(e.proto, name);
    EXPECT_NE(t, nullptr) << name;
    std::vector<int64_t> v(t ? t->raw_data().size() / 8 : 0);
    if (t) std::memcpy(v.data(), t->raw_data().data(), t->raw_data().size());
    return v;
  };
  const std::vector<int64_t> gather = ints("d/region_cells"), back = ints("d/cell_slots");
  ASSERT_EQ(back.size(), 64u);
  ASSERT_EQ(gather.size() % 6, 0u);
  const size_t slots = gather.size() / 6;  // the largest region: 3 x 4 cells
  EXPECT_EQ(slots, 12u);
  for (int y = 0; y < 8; ++y)
    for (int x = 0; x < 8; ++x) {
      const int64_t p = y * 8 + x, slot = back[size_t(p)];
      EXPECT_EQ(gather[size_t(slot)], p);
      EXPECT_EQ(slot / int64_t(slots), (y * 3 / 8) * 2 + x * 2 / 8) << "cell " << y << "," << x;
    }
  for (size_t i = 0; i < gather.size(); ++i) {  // padding repeats a cell of the same region
    const int64_t q = gather[i];
    EXPECT_EQ(back[size_t(q)] / int64_t(slots), int64_t(i / slots));
  }
}

// ---- models a fixed graph cannot express, hostile bytes ---------------------

TEST(OnnxExport, ClearErrors) {
  // Empty, truncated, not a model: LoadModel's errors pass through.
  auto empty = ExportOnnx(nullptr, 0);
  EXPECT_EQ(empty.status().code(), ErrorCode::kInvalidArgument);
  std::vector<uint8_t> bytes = WriteModel(testing::TinyUnetSpec());
  auto cut = ExportOnnx(bytes.data(), bytes.size() - 10);
  EXPECT_EQ(cut.status().code(), ErrorCode::kTruncated) << cut.status().ToString();
  const std::string png = "\x89PNG\r\n\x1a\nxxxxxxxxxxxxxxxxxx";
  auto junk = ExportOnnx(reinterpret_cast<const uint8_t*>(png.data()), png.size());
  EXPECT_FALSE(junk.ok());

  // A fixed pixel scale or a kept aspect ratio: the map cells scored depend on
  // each image's shape.
  for (const bool keep_aspect : {false, true}) {
    SpecBuilder b(16, 16, 3, 1);
    b.Conv("c", "input", 1, 3, 1, 1, "none");
    PreprocessConfig pre;
    pre.resize_w = pre.resize_h = 16;
    if (keep_aspect) {
      pre.keep_aspect = true;
    } else {
      pre.pixel_scale = 0.5f;
    }
    const std::vector<uint8_t> m = WriteModel(b.Build("c", pre));
    auto r = ExportOnnx(m.data(), m.size());
    EXPECT_EQ(r.status().code(), ErrorCode::kUnsupported);
    EXPECT_NE(r.status().message().find(keep_aspect ? "'keep_aspect'" : "'pixel_scale'"),
              std::string::npos)
        << r.status().message();
  }
  // Not a detector: a 4-channel output, named.
  {
    SpecBuilder b(8, 8, 3, 1);
    b.Conv("features", "input", 4, 3, 1, 1, "relu");
    PreprocessConfig pre;
    pre.resize_w = pre.resize_h = 8;
    const std::vector<uint8_t> m = WriteModel(b.Build("features", pre));
    auto r = ExportOnnx(m.data(), m.size());
    EXPECT_EQ(r.status().code(), ErrorCode::kBadGraph);
    EXPECT_NE(r.status().message().find("'features' has 4 channels"), std::string::npos)
        << r.status().message();
  }
  // A max-pool window that reads only padding (dilation 2 over one row).
  {
    ModelSpec spec;
    spec.graph_json = R"({"input":{"h":1,"w":4,"c":1},"nodes":[
      {"name":"holey","op":"maxpool2d","inputs":["input"],"kernel":[2,1],"stride":[1,1],
       "dilation":[2,1],"pad":[1,0,1,0]}],"output":"holey"})";
    spec.preprocess_json = R"({"resize_w":4,"resize_h":1,"channels":1})";
    const std::vector<uint8_t> m = WriteModel(spec);
    auto loaded = LoadModel(m.data(), m.size());
    ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
    auto r = ExportOnnx(m.data(), m.size());
    EXPECT_EQ(r.status().code(), ErrorCode::kUnsupported);
    EXPECT_NE(r.status().message().find("node 'holey' (maxpool2d)"), std::string::npos)
        << r.status().message();
  }
  // Node names that collide with the graph's own names stay distinct.
  {
    SpecBuilder b(8, 8, 3, 1);
    b.Conv("image", "input", 2, 3, 1, 1, "relu").ReduceChannels("pred_score", "image", "max");
    PreprocessConfig pre;
    pre.resize_w = pre.resize_h = 8;
    Exported e = ExportSpec(b.Build("pred_score", pre));
    ExpectWellFormed(e.proto, {-1, 3, 8, 8}, {-1, 1, 8, 8});
  }
}

// Every truncation of a small model gives an error or a well-formed graph,
// never a crash.
TEST(OnnxExport, TruncatedFilesNeverCrash) {
  const std::vector<uint8_t> bytes = WriteModel(testing::MicroSpec());
  for (size_t n = 0; n < bytes.size(); n += 7) {
    auto r = ExportOnnx(bytes.data(), n);
    EXPECT_FALSE(r.ok()) << n;
  }
  Exported e = ExportBytes(bytes);
  ExpectWellFormed(e.proto, {-1, 1, 4, 4}, {-1, 1, 4, 4});
}

// Random byte flips in the header and tensors of a model that uses every op:
// each variant is refused by the loader, refused by the exporter with a
// named reason, or exported as a well-formed graph; never a crash.
TEST(OnnxExport, MutatedModelsNeverCrash) {
  const std::vector<uint8_t> bytes = WriteModel(testing::TinyUnetSpec());
  const size_t header = size_t(ReadHeaderLength(bytes.data())) + 8;
  testing::Rng rng(2026);
  int exported = 0, refused = 0;
  for (int i = 0; i < 400; ++i) {
    std::vector<uint8_t> m = bytes;
    const int flips = 1 + int(rng.Next() % 4);
    for (int k = 0; k < flips; ++k) {
      // Mostly the JSON header (attributes, shapes, postprocess), some weights.
      const size_t at = (rng.Next() % 4 != 0) ? rng.Next() % header : rng.Next() % m.size();
      m[at] = static_cast<uint8_t>(rng.Next());
    }
    auto r = ExportOnnx(m.data(), m.size());
    if (!r.ok()) {
      EXPECT_FALSE(r.status().message().empty());
      ++refused;
      continue;
    }
    onnx::ModelProto p;
    ASSERT_TRUE(p.ParseFromString(r->onnx));
    ExpectWellFormed(p, {-1, r->input_c, r->input_h, r->input_w}, {-1, 1, r->map_h, r->map_w});
    ++exported;
  }
  EXPECT_GT(exported, 0);
  EXPECT_GT(refused, 0);
}

// ---- ONNX Runtime against the engine -----------------------------------------

struct RunResult {
  int code = -1;
  std::string out;
};

RunResult RunShell(const std::string& cmd) {
  RunResult r;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

class OnnxRuntimeCompare : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const fs::path dir = fs::path(FLAWLENS_SOURCE_DIR) / "tests" / "onnx_export";
    script_ = (dir / "compare.mjs").string();
    if (!fs::exists(dir / "node_modules" / "onnxruntime-node")) {
      skip_ = "onnxruntime-node is not installed (npm ci --ignore-scripts --prefix tests/onnx_export)";
      return;
    }
    if (RunShell("node --version").code != 0) {
      skip_ = "node is not installed";
      return;
    }
    char tmpl[] = "/tmp/flawlens_onnx_export_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    tmp_ = tmpl;
    // RGB and gray images of a few sizes (the resize shrinks and enlarges).
    int k = 0;
    for (auto [w, h] : std::vector<std::pair<int, int>>{{64, 64}, {90, 70}, {30, 40}}) {
      for (bool defect : {false, true}) {
        const std::vector<uint8_t> gray = StripedGray(77 + k, w, h, defect);
        std::vector<uint8_t> rgb(gray.size() * 3);
        for (size_t i = 0; i < gray.size(); ++i) {
          rgb[3 * i] = gray[i];
          rgb[3 * i + 1] = uint8_t(255 - gray[i]);
          rgb[3 * i + 2] = uint8_t((gray[i] * 7 + i) & 255);
        }
        const std::string name = tmp_ + "/img" + std::to_string(k++) + ".png";
        ASSERT_TRUE(cli::WriteFileBytes(name, cli::EncodePng(rgb.data(), w, h, 3)).ok());
        images_ += " " + name;
      }
    }
  }
  static void TearDownTestSuite() {
    if (!tmp_.empty()) fs::remove_all(tmp_);
  }
  void SetUp() override {
    if (!skip_.empty()) GTEST_SKIP() << skip_;
  }

  // Exports `model`, writes the engine's reference for the images, and runs
  // ONNX Runtime on them; `flawlens score` is compared too.
  void Compare(const std::vector<uint8_t>& model, const std::string& name,
               const std::string& mode = "pixels", const std::string& images = "",
               int image_count = 6) {
    const std::string m = tmp_ + "/" + name + ".safetensors";
    const std::string onnx = tmp_ + "/" + name + ".onnx", data = tmp_ + "/" + name + ".json";
    ASSERT_TRUE(cli::WriteFileBytes(m, model).ok());
    RunResult ex = RunShell(std::string(FLAWLENS_CLI) + " export-onnx " + m + " --out " + onnx +
                       " --input " + mode + " --test-data " + data + " --test-images" +
                       (images.empty() ? images_ : images));
    ASSERT_EQ(ex.code, 0) << ex.out;
    RunResult cmp = RunShell("node " + script_ + " " + onnx + " " + data + " --tol 1e-4 --cli " +
                        FLAWLENS_CLI + " --model " + m);
    EXPECT_EQ(cmp.code, 0) << name << ":\n" << cmp.out;
    const size_t last = cmp.out.rfind("{\"onnx\"");
    ASSERT_NE(last, std::string::npos) << cmp.out;
    const Json summary = Json::parse(cmp.out.substr(last));
    EXPECT_EQ(summary["images"], image_count);
    std::printf("  %-24s %-10s raw score rel %.2e, map rel %.2e, cli rel %.2e, batch of %d: "
                "%.2e, %.2e\n",
                name.c_str(), mode.c_str(), summary["max_raw_score_rel"].get<double>(),
                summary["max_map_rel"].get<double>(), summary["max_cli_raw_score_rel"].get<double>(),
                image_count, summary["batch_max_raw_score_rel"].get<double>(),
                summary["batch_max_map_rel"].get<double>());
  }

  static std::string tmp_, images_, script_, skip_;
};
std::string OnnxRuntimeCompare::tmp_, OnnxRuntimeCompare::images_, OnnxRuntimeCompare::script_,
    OnnxRuntimeCompare::skip_;

TEST_F(OnnxRuntimeCompare, EveryOp) {
  Compare(WriteModel(testing::TinyUnetSpec()), "tiny_unet");
  Compare(WriteModel(testing::TinyUnetSpec()), "tiny_unet_unit", "unit");
  Compare(WriteModel(testing::MobileNetV3BlockSpec()), "mobilenet_v3_block", "normalized");
  Compare(WriteModel(testing::SeedCnnSpec(true)), "seed_cnn");
  Compare(CoarseGridModel(), "coarse_grid");
}

// Gray, local contrast normalisation with a radius larger than the input
// (the mirror repeats), a hard_sigmoid with another slope, sigmoid + blur +
// edge tables + mean reduction.
std::vector<uint8_t> LcnEdgesModel() {
  SpecBuilder b(24, 24, 1, 9);
  b.Conv("c1", "input", 6, 3, 1, 1, "hard_sigmoid")
      .Pool("p", "c1", /*max=*/true, 3, 1, 1)
      .Conv("c2", "p", 4, 3, 1, 1, "relu6")
      .ReduceChannels("r", "c2", "sum_squares");
  std::vector<float> em(16), es(16);
  for (int i = 0; i < 16; ++i) {
    em[size_t(i)] = 0.05f * float(i % 5);
    es[size_t(i)] = 0.8f + 0.03f * float(i);
  }
  b.Tensor("post.edge_mean", {4, 4}, em).Tensor("post.edge_std", {4, 4}, es);
  PreprocessConfig pre;
  pre.resize_w = pre.resize_h = 24;
  pre.channels = 1;
  pre.norm = NormMode::kLocalContrast;
  pre.lcn_sigma = 10.0f;
  pre.mean[0] = 0.1f;
  pre.std[0] = 2.0f;
  ModelSpec spec = b.Build("r", pre,
                           R"({"sigmoid":true,"reduce":"mean","blur_sigma":0.8,
                               "edge_mean":"post.edge_mean","edge_std":"post.edge_std"})",
                           R"({"offset":0.3,"scale":0.25,"threshold":1.5})");
  Json g = Json::parse(spec.graph_json);
  g["nodes"][0]["alpha"] = 0.2;  // hard_sigmoid with another slope: spelled out
  spec.graph_json = g.dump();
  return WriteModel(spec);
}

TEST_F(OnnxRuntimeCompare, LocalContrastEdgeTablesAndPostprocess) {
  Compare(LcnEdgesModel(), "lcn_edges");
}

TEST_F(OnnxRuntimeCompare, TaughtModels) {
  fit::FitOptions per_position;
  auto a = Teach(per_position);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  Compare(a->model, "taught_per_position");
  Compare(a->model, "taught_per_position_n", "normalized");
  fit::FitOptions shared;
  shared.density = fit::DensityKind::kShared;
  auto b = Teach(shared);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  Compare(b->model, "taught_shared", "unit");
}

// The page's default model and the demo images, when the build has made
// them (model/build_default.sh; FLAWLENS_DEFAULT_MODEL names another file).
std::string FindBuilt(const char* env, const std::string& rel) {
  if (const char* e = std::getenv(env); e && *e) return fs::exists(e) ? e : "";
  for (const fs::path& dir : {fs::path(FLAWLENS_BINARY_DIR), fs::path(FLAWLENS_SOURCE_DIR) / "build"}) {
    if (fs::exists(dir / rel)) return (dir / rel).string();
  }
  return "";
}

std::string DemoImages() {
  std::string list;
  const fs::path demo = fs::path(FLAWLENS_SOURCE_DIR) / "model" / "demo";
  for (const char* f : {"good_1", "good_2", "scratch", "crack", "stain", "hole", "smear",
                        "contamination"}) {
    list += " " + (demo / (std::string(f) + ".png")).string();
  }
  return list;
}

TEST_F(OnnxRuntimeCompare, DefaultModelOnTheDemoImages) {
  const std::string path = FindBuilt("FLAWLENS_DEFAULT_MODEL", "model/default.safetensors");
  if (path.empty()) GTEST_SKIP() << "no default model (model/build_default.sh builds it)";
  auto bytes = cli::ReadFileBytes(path);
  ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
  Compare(*bytes, "default", "pixels", DemoImages(), 8);
}

// Taught as the page teaches (src/api/web_teacher.cc): the Teacher's
// defaults on the default backbone, camera frames (group "") inside a
// region of interest that the card keeps; per position (the page's
// default) and shared (its `density: "shared"`).
TEST_F(OnnxRuntimeCompare, PageTaughtOnTheDefaultBackbone) {
  const std::string backbone = FindBuilt("FLAWLENS_BACKBONE", "backbones/centernet.safetensors");
  if (backbone.empty()) GTEST_SKIP() << "no centernet backbone (model/build_default.sh converts it)";
  auto bytes = cli::ReadFileBytes(backbone);
  ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
  const std::string frames = tmp_ + "/frames";
  RunResult synth = RunShell(std::string(FLAWLENS_CLI) + " synth " + frames +
                             " --kind metal --train 24 --val-good 0 --val-defect 0 --seed 5");
  ASSERT_EQ(synth.code, 0) << synth.out;
  const RectF roi_fraction{0.0625f, 0.125f, 0.875f, 0.8125f};
  const char* roi_json = R"({"x":0.0625,"y":0.125,"w":0.875,"h":0.8125})";
  for (const char* density : {"per_position", "shared"}) {
    auto t = fit::Teacher::Create(bytes->data(), bytes->size());
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    int added = 0;
    for (const auto& f : fs::directory_iterator(frames + "/train/good")) {
      auto file = cli::ReadFileBytes(f.path().string());
      ASSERT_TRUE(file.ok());
      auto image = DecodeImage(file->data(), file->size());
      ASSERT_TRUE(image.ok()) << image.status().ToString();
      const RectF roi = cli::RoiPixels(roi_fraction, image->width, image->height);
      ASSERT_TRUE((*t)->AddImage(image->view(), roi, "").ok());
      ++added;
    }
    ASSERT_EQ(added, 24);
    fit::FitOptions fo;
    fo.taught_by = "flawlens page";
    fo.name = std::string("page ") + density;
    auto kind = fit::ParseDensityKind(density);
    ASSERT_TRUE(kind.ok());
    fo.density = *kind;
    fo.card_extra_json = std::string(R"({"taught":{"where":"browser","source":"camera"},"roi":)") +
                         roi_json + "}";
    auto fitted = (*t)->Fit(fo);
    ASSERT_TRUE(fitted.ok()) << fitted.status().ToString();
    Compare(fitted->model, std::string("page_") + density, "pixels", DemoImages(), 8);
  }
}

// The ONNX project's checker (full check: operator schemas of opset 17 and
// strict shape inference) on every kind of exported graph, when python3 has
// the onnx module (Debian: python3-onnx).
TEST(OnnxExportChecker, OnnxProjectAcceptsTheGraphs) {
  std::string python;
  for (const char* p : {"python3", "/usr/bin/python3"}) {
    if (RunShell(std::string(p) + " -c 'import onnx'").code == 0) {
      python = p;
      break;
    }
  }
  if (python.empty()) GTEST_SKIP() << "no python3 with the onnx module (python3-onnx)";
  char tmpl[] = "/tmp/flawlens_onnx_check_XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  fit::FitOptions per_position, shared;
  shared.density = fit::DensityKind::kShared;
  auto a = Teach(per_position);
  auto b = Teach(shared);
  ASSERT_TRUE(a.ok() && b.ok());
  const std::vector<std::pair<std::string, std::vector<uint8_t>>> models = {
      {"tiny_unet", WriteModel(testing::TinyUnetSpec())},
      {"mobilenet_v3_block", WriteModel(testing::MobileNetV3BlockSpec())},
      {"seed_cnn", WriteModel(testing::SeedCnnSpec(true))},
      {"micro", WriteModel(testing::MicroSpec())},
      {"lcn_edges", LcnEdgesModel()},
      {"taught_per_position", a->model},
      {"taught_shared", b->model},
      {"coarse_grid", CoarseGridModel()}};
  std::string files;
  for (const auto& [name, bytes] : models) {
    for (InputMode mode : {InputMode::kPixels, InputMode::kNormalized}) {
      Exported e = ExportBytes(bytes, mode);
      const std::string path = dir + "/" + name + "_" + InputModeName(mode) + ".onnx";
      ASSERT_TRUE(cli::WriteFileBytes(path, std::vector<uint8_t>(e.result.onnx.begin(),
                                                                 e.result.onnx.end()))
                      .ok());
      files += " " + path;
    }
  }
  const RunResult r = RunShell(python + " " + FLAWLENS_SOURCE_DIR +
                               "/tests/onnx_export/check_model.py" + files);
  EXPECT_EQ(r.code, 0) << r.out;
  size_t ok = 0;
  for (size_t at = r.out.find(": ok ("); at != std::string::npos; at = r.out.find(": ok (", at + 1)) ++ok;
  EXPECT_EQ(ok, models.size() * 2) << r.out;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace flawlens::onnx_export
