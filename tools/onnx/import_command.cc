// flawlens import-onnx MODEL.onnx --outputs NAME[,NAME...] --out BACKBONE.safetensors:
// an ONNX model's feature tensors become a flawlens backbone (the library is
// onnx_import.h; this file is only the CLI11 wiring, the options it shares
// with import-tfjs are import/backbone_flags.h).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>

#include "commands.h"
#include "import/backbone_flags.h"
#include "onnx/onnx_import.h"

namespace flawlens::cli {
namespace {

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

int RunImportOnnx(const BackboneFlags& flags, bool list) {
  if (list) return ListTensors(flags.model);
  onnx_import::ImportOptions options;
  if (int rc = ToBackboneOptions("import-onnx", flags, &options, "--list")) return rc;
  Result<onnx_import::ImportResult> result = onnx_import::ImportOnnxFile(flags.model, options);
  if (!result.ok()) {
    std::fprintf(stderr, "flawlens %s\n", result.status().message().c_str());
    return 1;
  }
  return WriteBackbone("import-onnx", flags.out, *result,
                       "opset " + std::to_string(result->opset) + ", " +
                           std::to_string(result->onnx_nodes_used) + " ONNX nodes -> ");
}

}  // namespace

void AddImportOnnxCommand(CLI::App& app) {
  auto flags = std::make_shared<BackboneFlags>();
  auto list = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand(
      "import-onnx", "Turn an ONNX model's feature tensors into a flawlens backbone");
  cmd->add_option("model", flags->model, ".onnx file (opset 11-17, weights inside)")->required();
  cmd->add_flag("--list", *list, "print every tensor a node computes (to choose --outputs)");
  AddBackboneFlags(cmd, flags.get(),
                   {"ONNX tensor names", "default: the model's fixed size, else 256x256",
                    "torchvision resnet18, own fine-tuning", /*required=*/false});
  cmd->callback([flags, list] { ExitCode() = RunImportOnnx(*flags, *list); });
}

}  // namespace flawlens::cli
