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

// FitOptions from the command-line options (card name, created time, ...).
Result<fit::FitOptions> MakeFitOptions(const BackboneTrainOptions& options);

}  // namespace flawlens::train
