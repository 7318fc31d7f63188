// flawlens export-onnx MODEL --out MODEL.onnx [--input pixels|unit|normalized]
//                      [--metadata-out metadata.json]
//                      [--test-data FILE.json --test-images PATHS...] [--no-roi]
//
// The model as an ONNX graph (the library is onnx_export.{h,cc}; this file is
// the CLI11 wiring). --test-data writes, for each image, the tensor the ONNX
// graph reads (the engine's preprocessing) and what the engine's detector
// gives for it (the score and map `flawlens score` computes), so that any
// ONNX runtime can be checked against the engine (tests/onnx_export/).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/cli_util.h"
#include "cli/dataset.h"
#include "commands.h"
#include "onnx/onnx_export.h"

namespace flawlens::cli {
namespace {

struct ExportCliOptions {
  std::string model, out, input = "pixels", metadata_out, test_data;
  std::vector<std::string> test_images;
  bool no_roi = false;
};

std::string FloatsBase64(const std::vector<float>& v) {
  std::vector<uint8_t> bytes(v.size() * sizeof(float));
  if (!v.empty()) std::memcpy(bytes.data(), v.data(), bytes.size());
  return Base64(bytes);
}

Status WriteText(const std::string& path, const std::string& text) {
  return WriteFileBytes(path, std::vector<uint8_t>(text.begin(), text.end()));
}

// The engine's input and outputs for each test image (see the file comment).
int WriteTestData(const ExportCliOptions& opt, const LoadedModel& loaded, onnx_export::InputMode mode,
                  const onnx_export::ExportResult& exported) {
  std::vector<std::string> files, rel;
  Status st = CollectImageInputs(opt.test_images, &files, &rel);
  if (!st.ok()) {
    std::fprintf(stderr, "flawlens export-onnx: --test-images: %s\n", st.ToString().c_str());
    return 1;
  }
  RectF roi;
  auto has_roi = opt.no_roi ? Result<bool>(false) : CardRoi(*loaded.model, &roi);
  if (!has_roi.ok()) {
    std::fprintf(stderr, "flawlens export-onnx: %s\n", has_roi.status().ToString().c_str());
    return 1;
  }
  auto detectors = MakeDetectors(loaded, 1);
  if (!detectors.ok()) {
    std::fprintf(stderr, "flawlens export-onnx: %s\n", detectors.status().ToString().c_str());
    return 1;
  }
  Detector& det = *(*detectors)[0];
  nlohmann::json images = nlohmann::json::array();
  for (const std::string& path : files) {
    auto bytes = ReadFileBytes(path);
    auto image = bytes.ok() ? DecodeImage(bytes->data(), bytes->size()) : Result<Image>(bytes.status());
    if (!image.ok()) {
      std::fprintf(stderr, "flawlens export-onnx: %s: %s\n", path.c_str(),
                   image.status().ToString().c_str());
      return 1;
    }
    const RectF region = *has_roi ? RoiPixels(roi, image->width, image->height) : RectF{};
    auto input = onnx_export::ExportInput(*loaded.model, mode, image->view(), region);
    auto d = det.Detect(image->view(), region);
    if (!input.ok() || !d.ok()) {
      std::fprintf(stderr, "flawlens export-onnx: %s: %s\n", path.c_str(),
                   (input.ok() ? d.status() : input.status()).ToString().c_str());
      return 1;
    }
    const Detection& r = **d;
    images.push_back({{"path", path},
                      {"input", FloatsBase64(*input)},
                      {"score", r.score},
                      {"raw_score", r.raw_score},
                      {"anomalous", r.anomalous},
                      {"map", FloatsBase64(r.map)}});
  }
  const nlohmann::json doc = {
      {"model", opt.model},
      {"onnx", opt.out},
      {"input_mode", onnx_export::InputModeName(mode)},
      {"input_name", onnx_export::kInputName},
      {"input_shape", {1, exported.input_c, exported.input_h, exported.input_w}},
      {"map_shape", {1, 1, exported.map_h, exported.map_w}},
      {"threshold", det.threshold()},
      {"calibration_scale", loaded.model->calibration.scale},
      {"roi", *has_roi},  // the card's region of interest was applied
      {"encoding", "base64 float32 little-endian"},
      {"images", images}};
  st = WriteText(opt.test_data, doc.dump());
  if (!st.ok()) {
    std::fprintf(stderr, "flawlens export-onnx: %s\n", st.ToString().c_str());
    return 1;
  }
  std::printf("%s: engine input and outputs of %zu images\n", opt.test_data.c_str(), files.size());
  return 0;
}

int RunExportOnnx(const ExportCliOptions& opt) {
  auto mode = onnx_export::ParseInputMode(opt.input);
  if (!mode.ok()) {
    std::fprintf(stderr, "flawlens export-onnx: --input: %s\n", mode.status().message().c_str());
    return 2;
  }
  if (opt.test_data.empty() != opt.test_images.empty()) {
    std::fprintf(stderr, "flawlens export-onnx: --test-data and --test-images go together\n");
    return 2;
  }
  auto loaded = LoadModelFile(opt.model);
  if (!loaded.ok()) {
    std::fprintf(stderr, "flawlens export-onnx: %s\n", loaded.status().ToString().c_str());
    return 1;
  }
  onnx_export::ExportOptions options;
  options.input = *mode;
  auto exported = onnx_export::ExportOnnx(loaded->bytes.data(), loaded->bytes.size(), options);
  if (!exported.ok()) {
    std::fprintf(stderr, "flawlens export-onnx: %s: %s\n", opt.model.c_str(),
                 exported.status().ToString().c_str());
    return 1;
  }
  Status st = WriteText(opt.out, exported->onnx);
  if (st.ok() && !opt.metadata_out.empty()) st = WriteText(opt.metadata_out, exported->metadata_json);
  if (!st.ok()) {
    std::fprintf(stderr, "flawlens export-onnx: %s\n", st.ToString().c_str());
    return 1;
  }
  std::printf("%s: opset %d, %d engine nodes -> %d ONNX nodes, %lld weights, input '%s' "
              "[batch, %d, %d, %d] (%s), outputs %s [batch], %s [batch, 1, %d, %d], %s [batch], "
              "%zu bytes\n",
              opt.out.c_str(), onnx_export::kOpset, exported->engine_nodes, exported->onnx_nodes,
              static_cast<long long>(exported->initializer_floats), onnx_export::kInputName,
              exported->input_c, exported->input_h, exported->input_w,
              onnx_export::InputModeName(*mode), onnx_export::kScoreName, onnx_export::kMapName,
              exported->map_h, exported->map_w, onnx_export::kLabelName, exported->onnx.size());
  if (!opt.test_data.empty()) return WriteTestData(opt, *loaded, *mode, *exported);
  return 0;
}

}  // namespace

void AddExportOnnxCommand(CLI::App& app) {
  auto opt = std::make_shared<ExportCliOptions>();
  CLI::App* cmd = app.add_subcommand(
      "export-onnx", "Write a model as an ONNX graph (opset 17): image -> anomaly map and score");
  cmd->add_option("model", opt->model, "flawlens model (.safetensors)")->required();
  cmd->add_option("--out", opt->out, "ONNX file to write")->required();
  cmd->add_option("--input", opt->input,
                  "what the graph reads: pixels (resized RGB/gray 0..255, default), unit (0..1), "
                  "or normalized (the engine's network input)");
  cmd->add_option("--metadata-out", opt->metadata_out,
                  "also write the metadata (anomalib's metadata.json) to this file");
  cmd->add_option("--test-data", opt->test_data,
                  "write the graph's input and the engine's score and map for --test-images "
                  "(JSON) to check a runtime against the engine");
  cmd->add_option("--test-images", opt->test_images, "images and/or folders for --test-data");
  cmd->add_flag("--no-roi", opt->no_roi,
                "--test-data: whole images, not the region of interest in the model card");
  cmd->callback([opt] { ExitCode() = RunExportOnnx(*opt); });
}

}  // namespace flawlens::cli
