// `flawlens synth OUT`: write a procedural folder dataset (see synth.h).
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "commands.h"
#include "synth/synth.h"

namespace flawlens::cli {
namespace {

struct SynthArgs {
  std::string out;
  std::string size = "256x256";
  synth::SynthOptions options;
};

bool ParseSize(const std::string& s, int* w, int* h) {
  int a = 0, b = 0;
  char x = 0, extra = 0;
  if (std::sscanf(s.c_str(), "%d%c%d%c", &a, &x, &b, &extra) != 3 || (x != 'x' && x != 'X'))
    return false;
  *w = a;
  *h = b;
  return true;
}

void RunSynth(const SynthArgs& args) {
  synth::SynthOptions o = args.options;
  if (!ParseSize(args.size, &o.width, &o.height)) {
    std::fprintf(stderr, "synth: --size '%s' is not WxH (e.g. 256x256)\n", args.size.c_str());
    ExitCode() = 2;
    return;
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto result = synth::WriteSynthDataset(args.out, o);
  if (!result.ok()) {
    std::fprintf(stderr, "%s\n", result.status().ToString().c_str());
    ExitCode() = 1;
    return;
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("synth: kind=%s size=%dx%d seed=%llu -> %s\n", o.kind.c_str(), o.width, o.height,
              static_cast<unsigned long long>(o.seed), args.out.c_str());
  std::printf("  train/good %d, val/good %d, val defects %d (%d each: ", result->train_good,
              result->val_good, result->val_defect, o.val_defect);
  const auto& defects = synth::SynthDefects();
  for (size_t i = 0; i < defects.size(); ++i)
    std::printf("%s%s", i ? ", " : "", defects[i].c_str());
  std::printf("), %zu files in %.2f s\n", result->files.size(), secs);
}

}  // namespace

void AddSynthCommand(CLI::App& app) {
  auto args = std::make_shared<SynthArgs>();
  std::string kinds_help = "material:";
  for (const auto& k : synth::SynthKinds())
    kinds_help += " " + k + " (" + synth::SynthKindDescription(k) + ");";
  kinds_help.back() = ' ';
  CLI::App* cmd = app.add_subcommand(
      "synth", "Write a procedural defect dataset (train/good, val/good, val/<defect>, val/masks)");
  cmd->add_option("out", args->out, "output folder")->required();
  cmd->add_option("--kind", args->options.kind, kinds_help)
      ->check(CLI::IsMember(synth::SynthKinds()))
      ->capture_default_str();
  cmd->add_option("--train", args->options.train, "train/good images")->capture_default_str();
  cmd->add_option("--val-good", args->options.val_good, "val/good images")->capture_default_str();
  cmd->add_option("--val-defect", args->options.val_defect, "val images per defect type")
      ->capture_default_str();
  cmd->add_option("--size", args->size, "image size WxH")->capture_default_str();
  cmd->add_option("--seed", args->options.seed, "random seed (same seed -> same bytes)")
      ->capture_default_str();
  cmd->add_flag("--overwrite", args->options.overwrite,
                "replace OUT/train and OUT/val if they already exist");
  cmd->callback([args]() { RunSynth(*args); });
}

}  // namespace flawlens::cli
