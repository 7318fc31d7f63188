// flawlens import-tfjs MODEL.json --outputs NODE[,NODE...] --out BACKBONE.safetensors:
// a TensorFlow.js graph model's feature layers become a flawlens backbone
// (the library is tfjs_import.{h,cc}; this file is only the CLI11 wiring).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <sstream>

#include "cli/cli_util.h"
#include "commands.h"
#include "import/tfjs_import.h"

namespace flawlens::cli {
namespace {

struct ImportCliOptions {
  std::string model_json, outputs, out, input = "256x256", name, licence, origin;
  float scale = 1.0f, mean = 0.0f, std = 1.0f;
};

int RunImportTfjs(const ImportCliOptions& opt) {
  tfjs::ImportOptions options;
  std::stringstream list(opt.outputs);
  for (std::string node; std::getline(list, node, ',');) {
    if (!node.empty()) options.outputs.push_back(node);
  }
  Status st = tfjs::ParseInputSize(opt.input, &options.input_w, &options.input_h);
  if (!st.ok()) {
    std::fprintf(stderr, "flawlens %s\n", st.message().c_str());
    return 2;
  }
  options.name = opt.name;
  options.licence = opt.licence;
  options.origin = opt.origin;
  options.scale = opt.scale;
  options.mean = opt.mean;
  options.std = opt.std;
  Result<tfjs::ImportResult> result = tfjs::ImportTfjsFile(opt.model_json, options);
  if (!result.ok()) {
    std::fprintf(stderr, "flawlens %s\n", result.status().message().c_str());
    return 1;
  }
  st = WriteFileBytes(opt.out, result->bytes);
  if (!st.ok()) {
    std::fprintf(stderr, "flawlens import-tfjs: %s\n", st.ToString().c_str());
    return 1;
  }
  std::printf("%s: %d TF nodes -> %d engine nodes, input %dx%dx%d, output %dx%dx%d, %zu bytes\n",
              opt.out.c_str(), result->tf_nodes_used, result->engine_nodes, options.input_w,
              options.input_h, result->in_c, result->out_w, result->out_h, result->out_c,
              result->bytes.size());
  for (const tfjs::FeatureLayer& f : result->features) {
    std::printf("  %s: stride %d, %d channels (%dx%d), output channels %d..%d\n", f.node.c_str(),
                f.stride_h, f.channels, f.w, f.h, f.offset, f.offset + f.channels - 1);
  }
  return 0;
}

}  // namespace

void AddImportTfjsCommand(CLI::App& app) {
  auto opt = std::make_shared<ImportCliOptions>();
  CLI::App* cmd = app.add_subcommand(
      "import-tfjs", "Turn a TensorFlow.js graph model's feature layers into a flawlens backbone");
  cmd->add_option("model", opt->model_json, "model.json of the graph model (shards next to it)")
      ->required();
  cmd->add_option("--outputs", opt->outputs,
                  "feature layers (TF node names, comma-separated); coarser ones are upsampled "
                  "to the finest and concatenated")
      ->required();
  cmd->add_option("--out", opt->out, "backbone file to write (.safetensors)")->required();
  cmd->add_option("--input", opt->input, "network input WxH (TF SAME padding computed for it)")
      ->capture_default_str();
  cmd->add_option("--name", opt->name, "card name (default: the model.json file name)");
  cmd->add_option("--licence", opt->licence, "licence of the weights, recorded on the card");
  cmd->add_option("--origin", opt->origin,
                  "where the model comes from, e.g. 'package@1.0.0 models/x.json'");
  cmd->add_option("--scale", opt->scale, "preprocess pixel multiplier (1: values 0..255)")
      ->capture_default_str();
  cmd->add_option("--mean", opt->mean, "preprocess mean (all channels)")->capture_default_str();
  cmd->add_option("--std", opt->std, "preprocess std (all channels)")->capture_default_str();
  cmd->callback([opt] { ExitCode() = RunImportTfjs(*opt); });
}

}  // namespace flawlens::cli
