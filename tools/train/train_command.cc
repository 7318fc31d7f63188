// `flawlens train DATA --out MODEL`: CLI wiring of tools/train/backbone_fit.h
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
#include "train/backbone_fit.h"
#include "train/trainer.h"
#if FLAWLENS_TORCH
#include "train/adapt/adapt.h"
#endif

#if !defined(FLAWLENS_TORCH)
#error "FLAWLENS_TORCH must be defined to 0 or 1 (tools/CMakeLists.txt)"
#endif

#if !FLAWLENS_TORCH
namespace flawlens::adapt {
// Without LibTorch the options exist (so --help is the same) and say what is missing.
struct AdaptOptions {
  std::string data, backbone = "centernet", out, train_from;
  double minutes = 5;
  int steps = 0, seed = 1, threads = 1, batch = 6, crop = 0, head_hidden = 0;
  float train_fraction = 0.5f, lr = 1e-3f, anomaly_prob = 0.6f, seg_weight = 1.0f,
        distill_weight = 1.0f, compact_weight = 1.0f, margin = 4.0f, synth_band = 0.0f;
  bool flips = true, quiet = false;
};
}  // namespace flawlens::adapt
#endif

namespace flawlens::cli {
namespace {

// The backbone `flawlens train` fits on unless told otherwise.
constexpr char kDefaultBackbone[] = "centernet";

// The options both ways of training take.
constexpr char kSharedOptions[] =
    "--seed, --sensitivity, --false-alarms, --input, --threads, --val-split, --name, --quiet, "
    "--adapt, --adapt-steps";

struct TrainArgs {
  train::TrainOptions options;
  std::string backbone;  // "" = kDefaultBackbone (unless from_scratch)
  bool from_scratch = false;
  // --adapt MINUTES: fine-tune the backbone on the data first (LibTorch).
  double adapt_minutes = 0;
  int adapt_steps = 0;
  // On a backbone: the threshold's target and the network input.
  double false_alarms = 0;
  std::string input = "auto";
  std::string geometry = "auto";
  std::string density = "per-position";
  // On a backbone: the features' dimensions, local average and covariance
  // regions; their defaults are the fit's (BackboneTrainOptions).
  int dims = train::BackboneTrainOptions{}.dims;
  int local_average = train::BackboneTrainOptions{}.pool;
  int covariance_region = train::BackboneTrainOptions{}.region;
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

Status RunAdapt(const adapt::AdaptOptions& options) {
#if FLAWLENS_TORCH
  return adapt::RunAdaptation(options);
#else
  (void)options;
  return MakeError(ErrorCode::kUnsupported,
                   "this flawlens was built without LibTorch: adapting a backbone needs it "
                   "(tools/setup.sh test installs it; cmake -DFLAWLENS_TORCH=ON)");
#endif
}

// Where `train --adapt` writes the adapted backbone: beside the model,
// "M.safetensors" -> "M.backbone.safetensors".
std::string AdaptedBackbonePath(const std::string& model_out) {
  const std::string ext = ".safetensors";
  std::string stem = model_out;
  if (stem.size() > ext.size() && stem.compare(stem.size() - ext.size(), ext.size(), ext) == 0)
    stem.resize(stem.size() - ext.size());
  return stem + ".backbone" + ext;
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
  train::BackboneTrainOptions b;
  b.data = t.data;
  b.out = t.out;
  b.backbone = args.backbone.empty() ? kDefaultBackbone : args.backbone;
  if (args.backbone.empty()) {
    // The default backbone is a build artefact: when it is missing, say how
    // to get it and that training from scratch needs no download.
    auto path = train::ResolveBackbone(b.backbone);
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
  if (args.adapt_minutes > 0 || args.adapt_steps > 0) {
    // Experimental (docs/METHOD-adapt.md): fine-tune the backbone on the
    // good images, then fit on the adapted one exactly as on any backbone.
    adapt::AdaptOptions a;
    a.data = t.data;
    a.backbone = b.backbone;
    a.out = AdaptedBackbonePath(t.out);
    a.minutes = args.adapt_minutes;
    a.steps = args.adapt_steps;
    a.seed = t.seed;
    a.quiet = t.quiet;
    FLAWLENS_RETURN_IF_ERROR(RunAdapt(a));
    b.backbone = a.out;
  }
  b.seed = t.seed;
  b.sensitivity = t.sensitivity;
  b.false_alarm_rate = args.false_alarms;
  b.input = args.input;
  b.geometry = args.geometry;
  b.density = args.density;
  b.dims = args.dims;
  b.pool = args.local_average;
  b.region = args.covariance_region;
  b.holdout = t.holdout;
  b.threads = t.threads;
  b.val_split = t.val_split;
  b.name = t.name;
  b.quiet = t.quiet;
  return train::RunBackboneTraining(b);
}

Status RunTrain(const TrainArgs& args) {
  if (args.from_scratch && (args.adapt_minutes > 0 || args.adapt_steps > 0)) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "--adapt and --from-scratch: choose one (--adapt fine-tunes the pretrained "
                     "backbone, --from-scratch trains a network without one)");
  }
  if (args.from_scratch && !args.backbone.empty()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "--backbone and --from-scratch: choose one (a backbone's frozen features, "
                     "or a network trained from scratch)");
  }
  if (args.from_scratch && (args.geometry != "auto" || args.density != "per-position")) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "--geometry and --density apply to training on a backbone; from scratch, "
                     "--fit stretch|scale chooses the geometry");
  }
  const train::BackboneTrainOptions fit_defaults;
  if (args.from_scratch &&
      (args.dims != fit_defaults.dims || args.local_average != fit_defaults.pool ||
       args.covariance_region != fit_defaults.region)) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "--dims, --local-average and --covariance-region apply to training on a "
                     "backbone, not --from-scratch");
  }
  return args.from_scratch ? TrainFromScratch(args.options) : TrainOnBackbone(args);
}

// `flawlens adapt DATA --out B`: the adaptation alone; B is a backbone that
// `flawlens train --backbone B` (and the page) use like any other.
void AddAdaptCommand(CLI::App& app) {
  auto a = std::make_shared<adapt::AdaptOptions>();
  CLI::App* cmd = app.add_subcommand(
      "adapt",
      "Experimental: fine-tune a pretrained backbone's last blocks on good images (LibTorch, "
      "synthetic anomalies) and write it as a backbone file of the same graph, for "
      "flawlens train --backbone FILE");
  cmd->add_option("data", a->data, "Dataset folder (train/good) or folder of good images")->required();
  cmd->add_option("--out,-o", a->out, "Adapted backbone file to write (.safetensors)")->required();
  cmd->add_option("--backbone", a->backbone, "Backbone to start from: a name or a .safetensors file")
      ->capture_default_str();
  cmd->add_option("--minutes", a->minutes, "Time budget of the training loop")
      ->capture_default_str()->check(CLI::Range(0.01, 1440.0));
  cmd->add_option("--steps", a->steps,
                  "Train exactly N steps instead of for --minutes (bit-for-bit repeatable with "
                  "the same --seed)")
      ->check(CLI::Range(0, 100000000));
  cmd->add_option("--seed", a->seed, "Random seed")->capture_default_str();
  cmd->add_option("--threads", a->threads, "LibTorch threads")
      ->capture_default_str()->check(CLI::Range(1, 64));
  cmd->add_option("--train-from", a->train_from,
                  "First backbone node to train (default: the last --train-fraction of the convs)");
  cmd->add_option("--train-fraction", a->train_fraction, "Fraction of the conv layers that train")
      ->capture_default_str()->check(CLI::Range(0.01, 1.0));
  cmd->add_option("--batch", a->batch, "Images per step")
      ->capture_default_str()->check(CLI::Range(1, 256));
  cmd->add_option("--lr", a->lr, "Backbone learning rate (Adam, cosine; the head 10x)")
      ->capture_default_str()->check(CLI::Range(1e-7, 1.0));
  cmd->add_option("--crop", a->crop, "Train on random crops of this side (0 = whole images)")
      ->capture_default_str()->check(CLI::Range(0, 4096));
  cmd->add_option("--anomaly-prob", a->anomaly_prob, "Fraction of images with synthetic anomalies")
      ->capture_default_str()->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--seg-weight", a->seg_weight, "Weight of the segmentation head's loss")
      ->capture_default_str()->check(CLI::Range(0.0, 1000.0));
  cmd->add_option("--head-hidden", a->head_hidden, "Hidden channels of the head (0 = linear)")
      ->capture_default_str()->check(CLI::Range(0, 4096));
  cmd->add_option("--distill-weight", a->distill_weight,
                  "Weight of the good cells' distance to the frozen features")
      ->capture_default_str()->check(CLI::Range(0.0, 1000.0));
  cmd->add_option("--compact-weight", a->compact_weight,
                  "Weight of the compactness term (good cells to their position's mean, "
                  "anomalous ones beyond --margin)")
      ->capture_default_str()->check(CLI::Range(0.0, 1000.0));
  cmd->add_option("--margin", a->margin, "Compactness margin (mean squared per-channel distance)")
      ->capture_default_str()->check(CLI::Range(0.0, 1e6));
  cmd->add_option("--synth-band", a->synth_band,
                  "Weight of band anomalies (a side of the image re-textured from another good "
                  "image) among the synthetic ones")
      ->capture_default_str()->check(CLI::Range(0.0, 100.0));
  cmd->add_flag("!--no-flips", a->flips, "Disable flip augmentation");
  cmd->add_flag("--quiet,-q", a->quiet, "No progress");
  cmd->callback([a] {
    adapt::AdaptOptions o = *a;
    if (!o.backbone.empty()) {
      auto path = train::ResolveBackbone(o.backbone);
      if (!path.ok()) {
        std::fprintf(stderr, "flawlens adapt: %s\n", path.status().ToString().c_str());
        ExitCode() = 1;
        return;
      }
      o.backbone = *path;
    }
    Status st = RunAdapt(o);
    if (!st.ok()) {
      std::fprintf(stderr, "flawlens adapt: %s\n", st.ToString().c_str());
      ExitCode() = 1;
    }
  });
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
  cmd->add_option("--adapt", args->adapt_minutes,
                  "Experimental: first fine-tune the backbone's last blocks on the good images "
                  "for this many minutes (LibTorch; synthetic anomalies), write it beside the "
                  "model as M.backbone.safetensors, then fit on it (docs/METHOD-adapt.md)")
      ->check(CLI::Range(0.0, 1440.0));
  cmd->add_option("--adapt-steps", args->adapt_steps,
                  "Adapt for exactly N steps instead of --adapt minutes: the same --seed and "
                  "N give the same backbone, bit for bit")
      ->check(CLI::Range(0, 100000000));
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
                  "0..1; higher flags more images: 0.5 = about 1 in 20 good parts flagged, each "
                  "+0.25 ten times more (on a backbone; from scratch the same scale on held-out "
                  "good images)")
      ->capture_default_str()->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--false-alarms", args->false_alarms,
                  "On a backbone: the share of good parts the threshold may flag, in [0.0001, 0.5] "
                  "(overrides --sensitivity)")
      ->check(CLI::Range(0.0001, 0.5));
  cmd->add_option("--input", args->input,
                  "On a backbone: the network input, auto (the photos' aspect ratio when far from "
                  "square) or WxH (multiples of 32), or \"\" for the backbone's own")
      ->capture_default_str();
  cmd->add_option("--geometry", args->geometry,
                  "On a backbone: how a photo lies on the input: auto (keep-aspect when the "
                  "photos' aspect ratios differ widely, 90th/10th percentile >= 3, and --input "
                  "is auto; else stretch), stretch (resized to the input), keep-aspect (fitted "
                  "inside, undistorted, mirror padding; only the cells over the photo are "
                  "scored) or pixel-scale (one resize factor for all photos, fitting the 90th "
                  "percentile long side)")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "stretch", "keep-aspect", "pixel-scale"}));
  cmd->add_option("--density", args->density,
                  "On a backbone: per-position (a Gaussian per map cell) or shared (one for all "
                  "cells over the photos: positions that do not line up)")
      ->capture_default_str()
      ->check(CLI::IsMember({"per-position", "shared"}));
  cmd->add_option("--dims", args->dims,
                  "On a backbone: random projection of the features to this many dimensions "
                  "(the per-position density grows as dims squared: 32 gives a 6.7 MB model)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--local-average", args->local_average,
                  "On a backbone: average the projected features over a K x K window of map "
                  "cells first (odd K; 1 = none)")
      ->capture_default_str()
      ->check(CLI::Range(1, 15));
  cmd->add_option("--covariance-region", args->covariance_region,
                  "On a backbone, per position: one covariance per N x N block of map cells "
                  "(1 = one per cell; larger N makes the model smaller, for large --dims)")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
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
  scratch(cmd->add_option("--holdout", opt->holdout,
                          "Fraction of good images held out for calibration (on a backbone every "
                          "image is scored out of its group instead)"))
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
  AddAdaptCommand(app);
  cmd->callback([args] {
    Status st = RunTrain(*args);
    if (!st.ok()) {
      std::fprintf(stderr, "flawlens train: %s\n", st.ToString().c_str());
      ExitCode() = 1;
    }
  });
}

}  // namespace flawlens::cli
