// flawlens import-onnx MODEL.onnx --outputs NAME[,NAME...] --out BACKBONE.safetensors:
// an ONNX model's feature tensors become a flawlens backbone (the library is
// onnx_import.{h,cc}; this file is only the CLI11 wiring).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <sstream>

#include "cli/cli_util.h"
#include "commands.h"
#include "import/tfjs_import.h"
#include "onnx/onnx_import.h"

namespace flawlens::cli {
namespace {

struct ImportOnnxCliOptions {
  std::string model, outputs, out, input, name, licence, origin, mean = "0", std = "1";
  float scale = 1.0f;
  bool list = false;
};

int ListTensors(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    std::fprintf(stderr, "flawlens import-onnx: '%s' cannot be opened\n", path.c_str());
    return 1;
  }
  const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)),
                                   std::istreambuf_iterator<char>());
  Result<std::vector<onnx_import::TensorEntry>> list =
      onnx_import::ListOnnxTensors(bytes.data(), bytes.size());
  if (!list.ok()) {
    std::fprintf(stderr, "flawlens %s\n", list.status().message().c_str());
    return 1;
  }
  for (const onnx_import::TensorEntry& e : *list) {
    std::printf("%-40s %-20s %s\n", e.tensor.c_str(), e.op.c_str(), e.node.c_str());
  }
  return 0;
}

int RunImportOnnx(const ImportOnnxCliOptions& opt) {
  if (opt.list) return ListTensors(opt.model);
  onnx_import::ImportOptions options;
  std::stringstream list(opt.outputs);
  for (std::string tensor; std::getline(list, tensor, ',');) {
    if (!tensor.empty()) options.outputs.push_back(tensor);
  }
  if (options.outputs.empty() || opt.out.empty()) {
    std::fprintf(stderr, "flawlens import-onnx: --outputs and --out are required (or --list)\n");
    return 2;
  }
  Status st = Status::Ok();
  if (!opt.input.empty()) {
    st = tfjs::ParseInputSize(opt.input, &options.input_w, &options.input_h);
    if (!st.ok()) {
      std::fprintf(stderr, "flawlens %s\n", st.message().c_str());
      return 2;
    }
  }
  st = onnx_import::ParseChannelTriple(opt.mean, "--mean", options.mean);
  if (st.ok()) st = onnx_import::ParseChannelTriple(opt.std, "--std", options.std);
  if (!st.ok()) {
    std::fprintf(stderr, "flawlens %s\n", st.message().c_str());
    return 2;
  }
  options.name = opt.name;
  options.licence = opt.licence;
  options.origin = opt.origin;
  options.scale = opt.scale;
  Result<onnx_import::ImportResult> result = onnx_import::ImportOnnxFile(opt.model, options);
  if (!result.ok()) {
    std::fprintf(stderr, "flawlens %s\n", result.status().message().c_str());
    return 1;
  }
  st = WriteFileBytes(opt.out, result->bytes);
  if (!st.ok()) {
    std::fprintf(stderr, "flawlens import-onnx: %s\n", st.ToString().c_str());
    return 1;
  }
  std::printf(
      "%s: opset %lld, %d ONNX nodes -> %d engine nodes, input %dx%dx%d, output %dx%dx%d, "
      "%zu bytes\n",
      opt.out.c_str(), static_cast<long long>(result->opset), result->onnx_nodes_used,
      result->engine_nodes, result->in_w, result->in_h, result->in_c, result->out_w, result->out_h,
      result->out_c, result->bytes.size());
  for (const onnx_import::FeatureLayer& f : result->features) {
    std::printf("  %s: stride %d, %d channels (%dx%d), output channels %d..%d\n", f.tensor.c_str(),
                f.stride_h, f.channels, f.w, f.h, f.offset, f.offset + f.channels - 1);
  }
  return 0;
}

}  // namespace

void AddImportOnnxCommand(CLI::App& app) {
  auto opt = std::make_shared<ImportOnnxCliOptions>();
  CLI::App* cmd = app.add_subcommand(
      "import-onnx", "Turn an ONNX model's feature tensors into a flawlens backbone");
  cmd->add_option("model", opt->model, ".onnx file (opset 11-17, weights inside)")->required();
  cmd->add_option("--outputs", opt->outputs,
                  "feature tensors (ONNX tensor names, comma-separated); coarser ones are "
                  "upsampled to the finest and concatenated");
  cmd->add_option("--out", opt->out, "backbone file to write (.safetensors)");
  cmd->add_flag("--list", opt->list, "print every tensor a node computes (to choose --outputs)");
  cmd->add_option("--input", opt->input,
                  "network input WxH (default: the model's fixed size, else 256x256)");
  cmd->add_option("--name", opt->name, "card name (default: the file name)");
  cmd->add_option("--licence", opt->licence, "licence of the weights, recorded on the card");
  cmd->add_option("--origin", opt->origin,
                  "where the weights come from, e.g. 'torchvision resnet18, own fine-tuning'");
  cmd->add_option(
         "--scale", opt->scale,
         "preprocess pixel multiplier (1: values 0..255; torchvision: 0.00392156862745098)")
      ->capture_default_str();
  cmd->add_option("--mean", opt->mean,
                  "preprocess mean, one value or r,g,b (torchvision: 0.485,0.456,0.406)")
      ->capture_default_str();
  cmd->add_option("--std", opt->std,
                  "preprocess std, one value or r,g,b (torchvision: 0.229,0.224,0.225)")
      ->capture_default_str();
  cmd->callback([opt] { ExitCode() = RunImportOnnx(*opt); });
}

}  // namespace flawlens::cli
