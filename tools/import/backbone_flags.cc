#include "import/backbone_flags.h"

#include <cstdio>
#include <sstream>

#include "cli/cli_util.h"

namespace flawlens::cli {

void AddBackboneFlags(CLI::App* cmd, BackboneFlags* flags, const BackboneFlagHelp& help) {
  CLI::Option* outputs = cmd->add_option(
      "--outputs", flags->outputs,
      std::string("feature layers (") + help.outputs +
          ", comma-separated); coarser ones are upsampled to the finest and concatenated");
  CLI::Option* out = cmd->add_option("--out", flags->out, "backbone file to write (.safetensors)");
  if (help.required) {
    outputs->required();
    out->required();
  }
  CLI::Option* input = cmd->add_option("--input", flags->input,
                                        std::string("network input WxH (") + help.input + ")");
  if (!flags->input.empty()) input->capture_default_str();
  cmd->add_option("--name", flags->name, "card name (default: the file name)");
  cmd->add_option("--licence", flags->licence, "licence of the weights, recorded on the card");
  cmd->add_option("--origin", flags->origin,
                  std::string("where the weights come from, e.g. '") + help.origin + "'");
  cmd->add_option(
         "--scale", flags->scale,
         "preprocess pixel multiplier (1: values 0..255; torchvision: 0.00392156862745098)")
      ->capture_default_str();
  cmd->add_option("--mean", flags->mean,
                  "preprocess mean, one value or r,g,b (torchvision: 0.485,0.456,0.406)")
      ->capture_default_str();
  cmd->add_option("--std", flags->std,
                  "preprocess std, one value or r,g,b (torchvision: 0.229,0.224,0.225)")
      ->capture_default_str();
}

int ToBackboneOptions(const char* command, const BackboneFlags& flags,
                      import::BackboneOptions* options, const char* alternative) {
  std::stringstream list(flags.outputs);
  for (std::string name; std::getline(list, name, ',');) {
    if (!name.empty()) options->outputs.push_back(name);
  }
  if (options->outputs.empty() || flags.out.empty()) {
    std::fprintf(stderr, "flawlens %s: --outputs and --out are required%s%s%s\n", command,
                 alternative ? " (or " : "", alternative ? alternative : "", alternative ? ")" : "");
    return 2;
  }
  Status st = Status::Ok();
  if (!flags.input.empty())
    st = import::ParseInputSize(command, flags.input, &options->input_w, &options->input_h);
  if (st.ok()) st = import::ParseChannelTriple(command, flags.mean, "--mean", options->mean);
  if (st.ok()) st = import::ParseChannelTriple(command, flags.std, "--std", options->std);
  if (!st.ok()) {
    std::fprintf(stderr, "flawlens %s\n", st.message().c_str());
    return 2;
  }
  options->name = flags.name;
  options->licence = flags.licence;
  options->origin = flags.origin;
  options->scale = flags.scale;
  return 0;
}

int WriteBackbone(const char* command, const std::string& out, const import::Backbone& result,
                  const std::string& what) {
  Status st = WriteFileBytes(out, result.bytes);
  if (!st.ok()) {
    std::fprintf(stderr, "flawlens %s: %s\n", command, st.ToString().c_str());
    return 1;
  }
  std::printf("%s: %s%d engine nodes, input %dx%dx%d, output %dx%dx%d, %zu bytes\n", out.c_str(),
              what.c_str(), result.engine_nodes, result.in_w, result.in_h, result.in_c,
              result.out_w, result.out_h, result.out_c, result.bytes.size());
  for (const import::FeatureLayer& f : result.features) {
    std::printf("  %s: stride %d, %d channels (%dx%d), output channels %d..%d\n", f.node.c_str(),
                f.stride_h, f.channels, f.w, f.h, f.offset, f.offset + f.channels - 1);
  }
  return 0;
}

}  // namespace flawlens::cli
