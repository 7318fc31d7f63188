// `flawlens train DATA --out MODEL`: CLI wiring of tools/fit/backbone_train.h
// (frozen pretrained features, no LibTorch: the default, on the centernet
// backbone) and, with --from-scratch, of tools/train/trainer.h (a network
// trained from scratch, LibTorch). The backbone is the default because it
// wins on every set measured (docs/METHOD-backbone.md). This file compiles
// with and without LibTorch (FLAWLENS_TORCH = 1 / 0, tools/CMakeLists.txt).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "fit/backbone_train.h"
#include "train/trainer.h"

#if !defined(FLAWLENS_TORCH)
#error "FLAWLENS_TORCH must be defined to 0 or 1 (tools/CMakeLists.txt)"
#endif

namespace flawlens::cli {
namespace {

// The backbone `flawlens train` fits on unless told otherwise.
constexpr char kDefaultBackbone[] = "centernet";

// The options both ways of training take.
constexpr char kSharedOptions[] =
    "--seed, --sensitivity, --holdout, --threads, --val-split, --name, --quiet";

struct TrainArgs {
  train::TrainOptions options;
  std::string backbone;  // "" = kDefaultBackbone (unless from_scratch)
  bool from_scratch = false;
  // Options that only mean something when training from scratch: given
  // without --from-scratch they are an error, not silently ignored.
  std::vector<CLI::Option*> scratch_only;
};

Status TrainFromScratch(const train::TrainOptions& options) {
#if FLAWLENS_TORCH
  return train::RunTraining(options);
#else
  (void)options;
  return MakeError(ErrorCode::kUnsupported,
                   "this flawlens was built without LibTorch: --from-scratch needs it "
                   "(tools/setup.sh test installs it; cmake -DFLAWLENS_TORCH=ON); without "
                   "--from-scratch, train fits on the %s backbone (or --backbone NAME|FILE)",
                   kDefaultBackbone);
#endif
}

// The scratch-only options given on the command line, comma-separated.
std::string GivenScratchOptions(const TrainArgs& args) {
  std::string given;
  for (const CLI::Option* o : args.scratch_only) {
    if (o->count() > 0) given += (given.empty() ? "" : ", ") + o->get_name();
  }
  return given;
}

Status TrainOnBackbone(const TrainArgs& args) {
  const std::string given = GivenScratchOptions(args);
  if (!given.empty() && !args.backbone.empty()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "%s: only for training from scratch, not with --backbone (which takes %s)",
                     given.c_str(), kSharedOptions);
  }
  if (!given.empty()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "%s: only for training from scratch: add --from-scratch (without it, train "
                     "fits on the pretrained %s backbone, which takes %s)",
                     given.c_str(), kDefaultBackbone, kSharedOptions);
  }
  const train::TrainOptions& t = args.options;
  BackboneTrainOptions b;
  b.data = t.data;
  b.out = t.out;
  b.backbone = args.backbone.empty() ? kDefaultBackbone : args.backbone;
  if (args.backbone.empty()) {
    // The default backbone is a build artefact: when it is missing, say how
    // to get it and that training from scratch needs no download.
    auto path = ResolveBackbone(b.backbone);
    if (!path.ok()) {
      return MakeError(path.status().code(),
                       "train fits on the pretrained %s backbone by default; %s\n"
                       "or train from scratch instead: flawlens train DATA --out M "
                       "--from-scratch%s",
                       kDefaultBackbone, path.status().message().c_str(),
                       FLAWLENS_TORCH ? "" : " (needs a flawlens built with LibTorch)");
    }
    b.backbone = *path;
  }
  b.seed = t.seed;
  b.sensitivity = t.sensitivity;
  b.holdout = t.holdout;
  b.threads = t.threads;
  b.val_split = t.val_split;
  b.name = t.name;
  b.quiet = t.quiet;
  return RunBackboneTraining(b);
}

Status RunTrain(const TrainArgs& args) {
  if (args.from_scratch && !args.backbone.empty()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "--backbone and --from-scratch: choose one (a backbone's frozen features, "
                     "or a network trained from scratch)");
  }
  return args.from_scratch ? TrainFromScratch(args.options) : TrainOnBackbone(args);
}

}  // namespace

void AddTrainCommand(CLI::App& app) {
  auto args = std::make_shared<TrainArgs>();
  train::TrainOptions* opt = &args->options;
  static const std::string kScratchGroup = "Training from scratch (only with --from-scratch)";
  auto scratch = [args](CLI::Option* o) {
    args->scratch_only.push_back(o);
    return o->group(kScratchGroup);
  };
  CLI::App* cmd = app.add_subcommand(
      "train",
      "Train a detector on good images (folder dataset or flat folder): by default a density "
      "on the frozen features of the pretrained centernet backbone (no LibTorch, seconds); "
      "--from-scratch trains a network instead (LibTorch, minutes)");
  cmd->add_option("data", opt->data, "Dataset folder (train/good[, val/...]) or folder of good images")
      ->required();
  cmd->add_option("--out,-o", opt->out, "Model file to write")->required();
  cmd->add_option("--backbone", args->backbone,
                  "Pretrained backbone whose frozen features are fitted: a name (looked for as "
                  "NAME.safetensors in $FLAWLENS_BACKBONES, beside the flawlens binary in "
                  "backbones/, then build/backbones; model/build_default.sh converts it there) "
                  "or a .safetensors file from flawlens import-tfjs")
      ->default_str(kDefaultBackbone);
  cmd->add_flag("--from-scratch", args->from_scratch,
                "Train a network from scratch with LibTorch instead of fitting on a backbone "
                "(the options of the group below need it)");
  scratch(cmd->add_option("--minutes", opt->minutes, "Total time budget in minutes"))
      ->capture_default_str()->check(CLI::Range(0.05, 1440.0));
  scratch(cmd->add_option("--steps", opt->steps,
                          "Train exactly N steps instead of for --minutes: the same --seed, "
                          "--steps and --threads give the same model, bit for bit (auto threads "
                          "= 1 here)"))
      ->check(CLI::Range(1, 100000000));
  cmd->add_option("--seed", opt->seed, "Random seed (feature projection, held-out images; from scratch a repeatable run "
                  "also needs --steps)")->capture_default_str();
  cmd->add_option("--sensitivity", opt->sensitivity,
                  "0..1; higher flags more images (threshold = 6*(1-s) std above held-out good)")
      ->capture_default_str()->check(CLI::Range(0.0, 1.0));
  scratch(cmd->add_option("--size", opt->size, "Network input: side of the square of equal area"))
      ->capture_default_str()->check(CLI::Range(32, 1024));
  scratch(cmd->add_option("--input-w", opt->input_w, "Explicit network input width (multiple of 8)"));
  scratch(cmd->add_option("--input-h", opt->input_h, "Explicit network input height (multiple of 8)"));
  scratch(cmd->add_option("--fit", opt->fit,
                          "stretch (resize every image to the input size), scale (fixed pixel "
                          "scale: aspect ratio and texture size kept, image centred on a "
                          "mirror-padded canvas) or auto (scale when the training images differ "
                          "in size)"))
      ->capture_default_str()->check(CLI::IsMember({"auto", "stretch", "scale"}));
  scratch(cmd->add_option("--pixel-scale", opt->pixel_scale,
                          "--fit scale: resize factor (default: the median image area maps to "
                          "--size^2)"))
      ->check(CLI::Range(0.0, 16.0));
  scratch(cmd->add_option("--norm", opt->norm, "lcn (local contrast, lighting-robust) or meanstd"))
      ->capture_default_str()->check(CLI::IsMember({"lcn", "meanstd"}));
  scratch(cmd->add_option("--lcn-sigma", opt->lcn_sigma, "LCN window sigma (input pixels)"))
      ->capture_default_str();
  scratch(cmd->add_option("--lcn-eps", opt->lcn_eps, "LCN variance floor"))->capture_default_str();
  scratch(cmd->add_option("--channels", opt->channels, "1 or 3 (default: from the images)"));
  scratch(cmd->add_option("--crop", opt->crop, "Training crop side"))->capture_default_str();
  scratch(cmd->add_option("--batch", opt->batch, "Batch size"))
      ->capture_default_str()->check(CLI::Range(1, 256));
  scratch(cmd->add_option("--lr", opt->lr, "Peak learning rate (Adam, cosine)"))
      ->capture_default_str();
  scratch(cmd->add_option("--width", opt->width, "First-stage channels"))
      ->capture_default_str()->check(CLI::Range(4, 128));
  scratch(cmd->add_flag("!--no-density", opt->density, "Disable the Gaussian density branch"));
  scratch(cmd->add_option("--bank", opt->bank,
                          "Density = distance to a bank of N good feature vectors (0 = Gaussian)"))
      ->capture_default_str()->check(CLI::Range(0, 4096));
  scratch(cmd->add_flag("--fine-density", opt->fine_density,
                        "Add a Gaussian density of the 1/2-resolution stem features (finer map "
                        "for small defects)"));
  scratch(cmd->add_option("--global-weight", opt->global_weight,
                          "Add an image-level term with this weight to every map cell: the "
                          "distance of the image's mean features to good images (raises pixel "
                          "AUROC on textures with large regional defects, lowers PRO; "
                          "docs/METHOD.md, \"The image-level term\"; 0 = off)"))
      ->capture_default_str()
      ->check(CLI::Range(0.0, 100.0));
  scratch(cmd->add_option("--seg-weight", opt->seg_weight, "Weight of the segmentation map"))
      ->capture_default_str();
  scratch(cmd->add_option("--density-weight", opt->density_weight, "Weight of the density map"))
      ->capture_default_str();
  scratch(cmd->add_option("--map-blur", opt->map_blur,
                          "Gaussian smoothing of the map (cells, 0 = off)"))
      ->capture_default_str();
  scratch(cmd->add_option("--reduce", opt->reduce, "Image score: max, topk_mean or mean"))
      ->capture_default_str()->check(CLI::IsMember({"max", "topk_mean", "mean"}));
  scratch(cmd->add_option("--topk", opt->topk, "Fraction of cells for topk_mean"))
      ->capture_default_str();
  scratch(cmd->add_flag("!--no-cell-calibration", opt->cell_calibration,
                        "Disable per-cell calibration"));
  scratch(cmd->add_option("--cell-std-shrink", opt->cell_std_shrink,
                          "0 = per-cell std, 1 = global std; < 0 = chosen on held-out good images"))
      ->capture_default_str();
  cmd->add_option("--holdout", opt->holdout, "Fraction of good images held out for calibration")
      ->capture_default_str()->check(CLI::Range(0.02, 0.5));
  scratch(cmd->add_option("--anomaly-prob", opt->anomaly_prob,
                          "Fraction of crops with synthetic anomalies"))
      ->capture_default_str();
  scratch(cmd->add_flag("!--no-flips", opt->flips, "Disable flip augmentation"));
  scratch(cmd->add_option("--val-every", opt->val_every,
                          "Seconds between validation reports (0 = off)"))
      ->capture_default_str();
  cmd->add_option("--val-split", opt->val_split, "Split for validation metrics (default val, else test)");
  cmd->add_option("--threads", opt->threads,
                  "Inference threads (0 = all cores). With --from-scratch: LibTorch threads (a "
                  "data thread runs besides); 0 = auto: 1 or all cores, whichever steps faster, "
                  "re-timed every minute (1 with --steps)")
      ->capture_default_str()->check(CLI::Range(0, 64));
  cmd->add_option("--name", opt->name, "Model name for the card (default: folder name)");
  scratch(cmd->add_option("--synth-patch", opt->synth.patch, "Weight of pasted-patch anomalies"))
      ->capture_default_str();
  scratch(cmd->add_option("--synth-region", opt->synth.region,
                          "Weight of brightness-region anomalies"))
      ->capture_default_str();
  scratch(cmd->add_option("--synth-spot", opt->synth.spot, "Weight of spot anomalies"))
      ->capture_default_str();
  scratch(cmd->add_option("--synth-crack", opt->synth.crack, "Weight of crack anomalies"))
      ->capture_default_str();
  scratch(cmd->add_option("--synth-edge", opt->synth.edge, "Weight of broken-edge anomalies"))
      ->capture_default_str();
  scratch(cmd->add_option("--synth-noise", opt->synth.noise, "Weight of grain anomalies"))
      ->capture_default_str();
  scratch(cmd->add_option("--synth-band", opt->synth.band,
                          "Weight of band anomalies (one side of the crop re-textured from "
                          "another good image)"))
      ->capture_default_str();
  cmd->add_flag("--quiet,-q", opt->quiet, "No progress bar");
  cmd->callback([args] {
    Status st = RunTrain(*args);
    if (!st.ok()) {
      std::fprintf(stderr, "flawlens train: %s\n", st.ToString().c_str());
      ExitCode() = 1;
    }
  });
}

}  // namespace flawlens::cli
