// flawlens import-tfjs MODEL.json --outputs NODE[,NODE...] --out BACKBONE.safetensors:
// a TensorFlow.js graph model's feature layers become a flawlens backbone
// (the library is tfjs_import.{h,cc}; this file is only the CLI11 wiring, the
// options it shares with import-onnx are backbone_flags.h).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>

#include "commands.h"
#include "import/backbone_flags.h"
#include "import/tfjs_import.h"

namespace flawlens::cli {
namespace {

int RunImportTfjs(const BackboneFlags& flags) {
  tfjs::ImportOptions options;
  if (int rc = ToBackboneOptions("import-tfjs", flags, &options)) return rc;
  Result<tfjs::ImportResult> result = tfjs::ImportTfjsFile(flags.model, options);
  if (!result.ok()) {
    std::fprintf(stderr, "flawlens %s\n", result.status().message().c_str());
    return 1;
  }
  return WriteBackbone("import-tfjs", flags.out, *result,
                       std::to_string(result->tf_nodes_used) + " TF nodes -> ");
}

}  // namespace

void AddImportTfjsCommand(CLI::App& app) {
  auto flags = std::make_shared<BackboneFlags>();
  flags->input = "256x256";
  CLI::App* cmd = app.add_subcommand(
      "import-tfjs", "Turn a TensorFlow.js graph model's feature layers into a flawlens backbone");
  cmd->add_option("model", flags->model, "model.json of the graph model (shards next to it)")
      ->required();
  AddBackboneFlags(cmd, flags.get(),
                   {"TF node names", "TF SAME padding computed for it",
                    "package@1.0.0 models/x.json", /*required=*/true});
  cmd->callback([flags] { ExitCode() = RunImportTfjs(*flags); });
}

}  // namespace flawlens::cli
