// flawlens adapt: the LibTorch interpreter of a model graph computes what the
// core engine computes; writing its untouched weights back reproduces the
// file; an adaptation run changes only the trained layers, is repeatable with
// --steps and --seed, and its output is a backbone `flawlens train` fits on.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "train/adapt/adapt.h"
#include "train/adapt/graph_module.h"
#include "cli/cli_util.h"
#include "cli/dataset.h"
#include "model/model.h"
#include "nn/executor.h"
#include "kernels/backends.h"

namespace fs = std::filesystem;
using namespace flawlens;
using json = nlohmann::json;

namespace {

ModelTensor Random(const std::string& name, std::vector<int64_t> shape, std::mt19937* rng,
                   float scale) {
  ModelTensor t;
  t.name = name;
  t.shape = shape;
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  std::normal_distribution<float> g(0.0f, scale);
  for (int64_t i = 0; i < n; ++i) t.data.push_back(g(*rng));
  return t;
}

// A small backbone with every op MobileNetV3 uses and the attributes that
// change the arithmetic: asymmetric padding, stride, dilation, groups,
// squeeze-excitation (global pool, 1x1 conv, broadcast mul), residual add,
// pools with and without padding counted, bilinear upsampling, concat.
ModelSpec TinyBackbone(int side, int out_channels, uint32_t seed) {
  std::mt19937 rng(seed);
  json nodes = json::array();
  ModelSpec spec;
  auto conv = [&](const std::string& name, const std::string& in, int in_c, int out_c, int k,
                  int stride, int dil, std::vector<int> pad, int groups, const std::string& act) {
    nodes.push_back({{"name", name}, {"op", "conv2d"}, {"inputs", {in}}, {"out_channels", out_c},
                     {"kernel", {k, k}}, {"stride", {stride, stride}}, {"dilation", {dil, dil}},
                     {"pad", pad}, {"groups", groups}, {"activation", act},
                     {"weight", name + ".weight"}, {"bias", name + ".bias"}});
    if (act == "hard_swish" || act == "hard_sigmoid") nodes.back()["alpha"] = 0.1666259765625;
    spec.tensors.push_back(
        Random(name + ".weight", {out_c, k, k, in_c / groups}, &rng, 1.0f / std::sqrt(float(k * k * in_c / groups))));
    spec.tensors.push_back(Random(name + ".bias", {out_c}, &rng, 0.1f));
  };
  conv("stem", "input", 3, 8, 3, 2, 1, {0, 0, 1, 1}, 1, "hard_swish");
  conv("dw", "stem", 8, 8, 3, 1, 2, {2, 2, 2, 2}, 8, "relu6");
  nodes.push_back({{"name", "gap"}, {"op", "global_avgpool"}, {"inputs", {"dw"}}});
  conv("se", "gap", 8, 8, 1, 1, 1, {0, 0, 0, 0}, 1, "hard_sigmoid");
  nodes.push_back({{"name", "scaled"}, {"op", "mul"}, {"inputs", {"dw", "se"}}});
  conv("pw", "stem", 8, 8, 1, 1, 1, {0, 0, 0, 0}, 1, "none");
  nodes.push_back({{"name", "res"}, {"op", "add"}, {"inputs", {"scaled", "pw"}}});
  nodes.push_back({{"name", "mp"}, {"op", "maxpool2d"}, {"inputs", {"res"}}, {"kernel", {3, 3}},
                   {"stride", {2, 2}}, {"pad", {1, 1, 1, 1}}});
  nodes.push_back({{"name", "ap"}, {"op", "avgpool2d"}, {"inputs", {"res"}}, {"kernel", {3, 3}},
                   {"stride", {1, 1}}, {"pad", {1, 1, 1, 1}}, {"count_include_pad", false}});
  conv("deep", "mp", 8, 12, 3, 1, 1, {1, 1, 1, 1}, 1, "relu");
  nodes.push_back({{"name", "up"}, {"op", "upsample"}, {"inputs", {"deep"}}, {"mode", "bilinear"},
                   {"scale", {2, 2}}});
  nodes.push_back({{"name", "act"}, {"op", "activation"}, {"inputs", {"ap"}}, {"activation", "leaky_relu"},
                   {"alpha", 0.2}});
  nodes.push_back({{"name", "cat"}, {"op", "concat"}, {"inputs", {"act", "up"}}});
  conv("head", "cat", 20, out_channels, 1, 1, 1, {0, 0, 0, 0}, 1, "hard_swish");
  json graph = {{"input", {{"h", side}, {"w", side}, {"c", 3}}}, {"nodes", nodes}, {"output", "head"}};
  spec.graph_json = graph.dump();
  PreprocessConfig pre;
  pre.resize_w = side;
  pre.resize_h = side;
  pre.channels = 3;
  pre.scale = 1.0f / 255.0f;
  pre.mean[0] = 0.4f;
  pre.std[0] = 0.25f;
  spec.preprocess_json = PreprocessToJson(pre);
  spec.card_json = json({{"name", "tiny"}, {"kind", "backbone"}}).dump();
  return spec;
}

std::unique_ptr<Model> Load(const std::vector<uint8_t>& bytes) {
  auto m = LoadModel(bytes.data(), bytes.size());
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  return m.ok() ? std::move(*m) : nullptr;
}

const ModelTensor* FindTensor(const ModelSpec& spec, const std::string& name) {
  for (const ModelTensor& t : spec.tensors)
    if (t.name == name) return &t;
  return nullptr;
}

void WriteRgb(const fs::path& p, int w, int h, std::mt19937* rng) {
  std::vector<uint8_t> px(size_t(w) * h * 3);
  std::uniform_real_distribution<float> u(0, 1);
  const float ph = u(*rng) * 6.28f;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c)
        px[(size_t(y) * w + x) * 3 + c] = uint8_t(std::clamp(
            110.0f + 10.0f * c + 40.0f * std::sin(0.5f * x + ph) * std::cos(0.35f * y) + 25.0f * u(*rng),
            0.0f, 255.0f));
  std::vector<uint8_t> png = cli::EncodePng(px.data(), w, h, 3);
  ASSERT_FALSE(png.empty());
  std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(png.data()), png.size());
}

// train/good images and a backbone file in a fresh temporary folder.
fs::path MakeData(int side) {
  fs::path root = fs::temp_directory_path() / ("flawlens_adapt_test_" + std::to_string(getpid()));
  fs::remove_all(root);
  fs::create_directories(root / "data/train/good");
  std::mt19937 rng(3);
  for (int i = 0; i < 24; ++i)
    WriteRgb(root / "data/train/good" / ("g" + std::to_string(i) + ".png"), 40, 36, &rng);
  std::vector<uint8_t> bytes = WriteModel(TinyBackbone(side, 128, 11));
  std::ofstream(root / "tiny.safetensors", std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  return root;
}

std::vector<uint8_t> ReadAll(const fs::path& p) {
  auto b = cli::ReadFileBytes(p.string());
  EXPECT_TRUE(b.ok()) << p;
  return b.ok() ? *b : std::vector<uint8_t>{};
}

}  // namespace

// The interpreter's output equals the engine's (reference kernels) on random
// inputs, to float32 accumulation order.
TEST(AdaptGraphModule, MatchesTheEngine) {
  for (int side : {16, 24}) {
    SCOPED_TRACE("side " + std::to_string(side));
    std::vector<uint8_t> bytes = WriteModel(TinyBackbone(side, 40, 7));
    std::unique_ptr<Model> model = Load(bytes);
    ASSERT_NE(model, nullptr);
    auto module = adapt::GraphModuleImpl::Create(*model);
    ASSERT_TRUE(module.ok()) << module.status().ToString();
    ExecutorOptions eo;
    eo.backend = BackendKind::kReference;
    auto exec = CreateExecutor(model->graph, eo);
    ASSERT_TRUE(exec.ok()) << exec.status().ToString();
    const Shape out = model->graph.output_shape();
    torch::manual_seed(1);
    for (int trial = 0; trial < 3; ++trial) {
      torch::Tensor x = torch::randn({1, 3, side, side}) * 2.0;
      torch::Tensor ref;
      {
        torch::NoGradGuard ng;
        ref = (*module)->forward(x)[0].permute({1, 2, 0}).contiguous();  // HWC
      }
      ASSERT_EQ(ref.size(0), out.h);
      ASSERT_EQ(ref.size(1), out.w);
      ASSERT_EQ(ref.size(2), out.c);
      torch::Tensor hwc = x[0].permute({1, 2, 0}).contiguous();
      std::copy(hwc.data_ptr<float>(), hwc.data_ptr<float>() + hwc.numel(), (*exec)->input());
      (*exec)->Run();
      float max_diff = 0, max_ref = 0;
      for (int64_t i = 0; i < ref.numel(); ++i) {
        max_diff = std::max(max_diff, std::fabs((*exec)->output()[i] - ref.data_ptr<float>()[i]));
        max_ref = std::max(max_ref, std::fabs(ref.data_ptr<float>()[i]));
      }
      EXPECT_GT(max_ref, 0.1f);
      EXPECT_LE(max_diff, 1e-4f * std::max(1.0f, max_ref));
    }
  }
}

// Untrained weights written back give the file byte for byte; a changed
// weight lands, in OHWI, in the tensor of its node.
TEST(AdaptGraphModule, ExportWritesTheWeightsBack) {
  std::vector<uint8_t> bytes = WriteModel(TinyBackbone(16, 40, 5));
  std::unique_ptr<Model> model = Load(bytes);
  ASSERT_NE(model, nullptr);
  auto module = adapt::GraphModuleImpl::Create(*model);
  ASSERT_TRUE(module.ok());
  auto parts = adapt::ReadModelFileParts(bytes);
  ASSERT_TRUE(parts.ok()) << parts.status().ToString();
  ASSERT_TRUE((*module)->ExportWeights(&*parts).ok());
  EXPECT_EQ(WriteModel(parts->spec), bytes);

  const int deep = (*module)->FindNode("deep");
  ASSERT_GE(deep, 0);
  {
    torch::NoGradGuard ng;
    for (auto& p : (*module)->named_parameters()) {
      if (p.key() == "w" + std::to_string(deep)) p.value()[2][1][0][1] = 42.0f;  // OIHW: o 2, i 1, y 0, x 1
    }
  }
  ASSERT_TRUE((*module)->ExportWeights(&*parts).ok());
  const ModelTensor* w = FindTensor(parts->spec, "deep.weight");
  ASSERT_NE(w, nullptr);
  // OHWI [12][3][3][8]: o 2, y 0, x 1, i 1.
  EXPECT_EQ(w->data[((2 * 3 + 0) * 3 + 1) * 8 + 1], 42.0f);
  std::unique_ptr<Model> back = Load(WriteModel(parts->spec));
  ASSERT_NE(back, nullptr);
}

TEST(AdaptGraphModule, ReadModelFilePartsRejectsBrokenFiles) {
  std::vector<uint8_t> bytes = WriteModel(TinyBackbone(16, 40, 5));
  EXPECT_FALSE(adapt::ReadModelFileParts(std::vector<uint8_t>(bytes.begin(), bytes.begin() + 5)).ok());
  std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + 40);
  auto r = adapt::ReadModelFileParts(cut);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kTruncated);
}

// --steps and --seed repeat the run bit for bit; another seed differs; the
// frozen layers are untouched, the trained ones moved; the card says so.
TEST(AdaptRun, StepsAndSeedRepeatTheRunAndOnlyTrainedLayersMove) {
  fs::path root = MakeData(24);
  adapt::AdaptOptions opt;
  opt.data = (root / "data").string();
  opt.backbone = (root / "tiny.safetensors").string();
  opt.steps = 3;
  opt.batch = 2;
  opt.lr = 1e-2f;
  opt.train_from = "deep";
  opt.compact_weight = 1.0f;
  opt.quiet = true;
  std::vector<std::vector<uint8_t>> runs;
  for (int seed : {4, 4, 5}) {
    opt.seed = seed;
    opt.out = (root / ("a" + std::to_string(runs.size()) + ".safetensors")).string();
    adapt::AdaptReport report;
    Status st = adapt::RunAdaptation(opt, &report);
    ASSERT_TRUE(st.ok()) << st.ToString();
    EXPECT_EQ(report.steps, 3);
    EXPECT_EQ(report.images, 24);
    EXPECT_EQ(report.first_trained_node, "deep");
    runs.push_back(ReadAll(opt.out));
  }
  EXPECT_EQ(runs[0], runs[1]);
  EXPECT_NE(runs[0], runs[2]);

  auto original = adapt::ReadModelFileParts(ReadAll(root / "tiny.safetensors"));
  auto adapted = adapt::ReadModelFileParts(runs[0]);
  ASSERT_TRUE(original.ok() && adapted.ok());
  EXPECT_EQ(original->spec.graph_json, adapted->spec.graph_json);
  for (const char* frozen : {"stem.weight", "dw.weight", "se.bias", "pw.weight"})
    EXPECT_EQ(FindTensor(original->spec, frozen)->data, FindTensor(adapted->spec, frozen)->data) << frozen;
  for (const char* trained : {"deep.weight", "head.weight"})
    EXPECT_NE(FindTensor(original->spec, trained)->data, FindTensor(adapted->spec, trained)->data) << trained;
  json card = json::parse(adapted->spec.card_json);
  EXPECT_EQ(card["kind"], "backbone");
  EXPECT_EQ(card["adapted"]["steps"], 3);
  EXPECT_EQ(card["adapted"]["seed"], 4);
  EXPECT_NE(Load(runs[0]), nullptr);
  fs::remove_all(root);
}

TEST(AdaptRun, ClearErrors) {
  fs::path root = MakeData(16);
  adapt::AdaptOptions opt;
  opt.data = (root / "data").string();
  opt.backbone = (root / "tiny.safetensors").string();
  opt.out = (root / "a.safetensors").string();
  opt.steps = 1;
  opt.quiet = true;
  {
    adapt::AdaptOptions o = opt;
    o.train_from = "no_such_node";
    Status st = adapt::RunAdaptation(o);
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.message().find("no_such_node"), std::string::npos) << st.ToString();
  }
  {
    adapt::AdaptOptions o = opt;
    o.data = (root / "missing").string();
    EXPECT_FALSE(adapt::RunAdaptation(o).ok());
  }
  {
    adapt::AdaptOptions o = opt;
    o.crop = 5;  // not a multiple of the stride 2
    Status st = adapt::RunAdaptation(o);
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.message().find("--crop"), std::string::npos) << st.ToString();
  }
  {
    adapt::AdaptOptions o = opt;
    std::ofstream(root / "junk.safetensors") << "not a model";
    o.backbone = (root / "junk.safetensors").string();
    EXPECT_FALSE(adapt::RunAdaptation(o).ok());
  }
  fs::remove_all(root);
}

// `flawlens train --adapt-steps N --backbone FILE` writes the adapted
// backbone beside the model and fits the model on it.
TEST(AdaptCli, TrainAdaptWritesTheBackboneAndFitsOnIt) {
  fs::path root = MakeData(24);
  const std::string model = (root / "m.safetensors").string();
  const std::string cmd = std::string(FLAWLENS_CLI) + " train " + (root / "data").string() +
                          " --out " + model + " --backbone " + (root / "tiny.safetensors").string() +
                          " --adapt-steps 2 --seed 3 --quiet > " + (root / "log.txt").string() +
                          " 2>&1";
  const int rc = std::system(cmd.c_str());
  std::ifstream log(root / "log.txt");
  std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  ASSERT_EQ(rc, 0) << text;
  auto adapted = adapt::ReadModelFileParts(ReadAll(root / "m.backbone.safetensors"));
  ASSERT_TRUE(adapted.ok());
  EXPECT_EQ(json::parse(adapted->spec.card_json)["adapted"]["steps"], 2);
  auto m = cli::LoadModelFile(model);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_NE(m->model->card_json.find("(adapted)"), std::string::npos) << m->model->card_json;
  fs::remove_all(root);
}
