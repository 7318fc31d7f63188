// `flawlens train` (by default on centernet; --backbone NAME|FILE picks another):
// an anomaly detector on the frozen features of a pretrained backbone
// (imported with `flawlens import-tfjs`).
// No LibTorch: features come from the inference core, the density and the
// calibration are fitted by src/fit/ (the same code the page runs to teach).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "fit/teacher.h"

namespace flawlens::train {

struct BackboneTrainOptions {
  std::string data;          // folder dataset (train/good[, val/...]) or flat folder of good images
  std::string out;           // model file to write
  std::string backbone;      // a backbone name (see `flawlens train --help`) or a .safetensors file
  int seed = 1;
  float sensitivity = 0.5f;  // 0..1: higher flags more images (fit::SensitivityToRate)
  double false_alarm_rate = 0;  // > 0: the threshold's target rate (overrides sensitivity)
  // The from-scratch trainer's calibration hold-out; the backbone fit scores
  // every image out of its group instead, and refuses another value.
  float holdout = 0.15f;
  int threads = 0;           // inference threads (0 = all cores)
  std::string val_split;     // split used for the closing metrics ("" = val, else test)
  std::string name;          // model card name (default: folder name)
  bool quiet = false;
  // The density and its calibration (src/fit/teacher.h FitOptions; the
  // defaults are the measured best, docs/METHOD-backbone.md).
  std::string density = "per_position";  // or "shared"
  int dims = 32;                         // random projection of the features
  int pool = 1;                          // local average window (1 = none)
  int region = 1;                        // covariance region side, in map cells
  float blur_sigma = 0.5f;               // map blur, in map cells
  float cell_std_shrink = 1.0f;          // per-cell std -> one global std
  float shrinkage = -1.0f;               // < 0: OAS
  float eps = 0.01f;                     // diagonal floor, times the mean variance
  int folds = 5;                         // cross-fit folds
  float link = 0.5f;                     // near-duplicate linking (0 = by file name only)
  int channel_begin = 0, channel_end = 0;  // backbone channels used (0, 0 = all)
  // The network input: "" = the backbone's, "WxH", or "auto": the backbone's
  // unless the photos' median aspect ratio is outside [0.8, 1.25], then the
  // backbone's short side and a long side with the photos' aspect (ChooseInput).
  std::string input;
  // How a photo lies on that input: "auto" (with input "auto": keep-aspect
  // when the photos' shapes differ widely, ChooseGeometry; else stretch),
  // "stretch", "keep-aspect" (fit inside, mirror padding) or "pixel-scale"
  // (one resize factor for every photo).
  std::string geometry = "auto";
  std::string taught_by = "flawlens train";
};

// Runs everything; progress to stderr, a summary to stdout.
Status RunBackboneTraining(const BackboneTrainOptions& options);

// ---- parts, for tests and measurement drivers ------------------------------

// Folders `--backbone NAME` looks in, in order: $FLAWLENS_BACKBONES, the
// folder of the flawlens binary + "/backbones", "build/backbones" (relative
// to the current folder).
std::vector<std::string> BackboneSearchDirs();

// A file path (an existing file, or anything ending in .safetensors) as is;
// a name -> NAME.safetensors in the first search folder that has it. The
// error lists where it looked and the command that converts the backbone.
Result<std::string> ResolveBackbone(const std::string& name_or_file);

// The dataset's good training images (train split, or a flat folder) fed to
// a Teacher (images of one part, by cli::GroupKey, share a group).
struct TaughtDataset {
  std::unique_ptr<fit::Teacher> teacher;
  std::string backbone_path;
  std::vector<std::string> added;  // paths in AddImage order
  int skipped = 0;        // unreadable images
  double seconds = 0;     // reading, decoding and feature extraction
};
Result<TaughtDataset> TeachDataset(const BackboneTrainOptions& options);

// The input size for `input` ("", "auto" or "WxH") given the backbone's
// input (bw x bh) and the median width / height of the training photos:
// {0, 0} = the backbone's. Errors: a malformed or unusable "WxH".
Result<std::pair<int, int>> ChooseInput(const std::string& input, int bw, int bh,
                                        double median_aspect);

// The training photos' shapes (up to 64 of them, spread over the list).
struct PhotoShapes {
  int count = 0;
  double median_aspect = 0;  // width / height
  // How much the shapes differ: the 90th over the 10th percentile of the
  // aspect ratios (1 = all alike).
  double aspect_spread = 1;
  double long_side_p90 = 0;  // pixels
};
PhotoShapes MeasureShapes(const std::vector<std::pair<int, int>>& sizes);  // {w, h}

// Photos this much wider than one another (aspect_spread) are not stretched
// to one input by `--geometry auto`. Magnetic tile (spread 2.3) measured as
// well stretched as kept in aspect (image AUROC 0.852 vs 0.851) with more
// defects caught at few false alarms, so the switch lies above it: photos
// whose shapes differ more than 3:1, where a stretch distorts the texture of
// some of them by more than 1.7x (docs/METHOD-backbone.md, "Geometry").
inline constexpr double kMixedShapesSpread = 3.0;

struct InputGeometry {
  bool keep_aspect = false;
  float pixel_scale = 0;  // > 0: fixed pixel scale
  std::string name;       // "stretch", "keep-aspect" or "pixel-scale"
};
// The geometry for `geometry` ("auto", "stretch", "keep-aspect",
// "pixel-scale") with `input` ("", "auto" or "WxH") on an input of iw x ih:
// auto = keep-aspect when input is "auto" and the shapes' spread is at least
// kMixedShapesSpread, else stretch; pixel-scale = the factor that fits the
// 90th percentile long side into the input's short side.
Result<InputGeometry> ChooseGeometry(const std::string& geometry, const std::string& input,
                                const PhotoShapes& shapes, int iw, int ih);

// FitOptions from the command-line options (card name, created time, ...).
Result<fit::FitOptions> MakeFitOptions(const BackboneTrainOptions& options);

}  // namespace flawlens::train
