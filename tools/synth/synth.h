// Procedural inspection-image generator: the training data of flawlens's
// default model (the real photos in ../shared/data are research-only).
//
// A "kind" is a material (brushed metal, woven fabric, ceramic tile). Every
// good sample of a kind is drawn from one distribution with realistic normal
// variation (orientation jitter, texture parameter jitter, illumination
// gradient / vignette / gain, sensor noise), so a detector has to learn that
// variation instead of memorising one picture. Defective samples are good
// samples with one defect painted on, plus a pixel mask of it.
//
// Everything is deterministic for a seed: randomness comes from
// std::mt19937_64 (fully specified by the C++ standard) with hand-written
// uniform / normal transforms, and the lattice noise uses an integer hash.
// Each image has its own seed derived from (seed, kind, split, defect,
// index), so image i does not depend on how many other images are drawn.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "flawlens/status.h"

namespace flawlens::synth {

// An 8-bit image, row-major, channels interleaved (1 = gray, 3 = RGB).
struct SynthImage {
  int width = 0, height = 0, channels = 0;
  std::vector<uint8_t> pixels;
};

struct SynthSample {
  SynthImage image;
  SynthImage mask;            // 1 channel: 255 = defect, 0 = good (all 0 for good)
  SynthImage clean;           // same sample without the defect (only if asked)
  std::string defect;         // "good" or one of SynthDefects()
  float severity = 0.0f;      // 0 = subtle .. 1 = obvious (0 for good)
};

struct SynthOptions {
  std::string kind = "metal";
  int train = 200;       // train/good images
  int val_good = 50;     // val/good images
  int val_defect = 10;   // val/<defect> images, per defect type
  int width = 256, height = 256;
  uint64_t seed = 1;
  bool overwrite = false;  // replace OUT/train and OUT/val if they exist
};

enum class SynthSplit { kTrain = 0, kVal = 1 };

// Material kinds; the first is the default.
const std::vector<std::string>& SynthKinds();
// One-line description of a kind ("" if unknown).
std::string SynthKindDescription(const std::string& kind);
// Defect types, in the order they are written.
const std::vector<std::string>& SynthDefects();

// Checks kind, sizes (16..4096) and counts (>= 0, <= 100000).
Status ValidateSynthOptions(const SynthOptions& options);

// Renders one sample. defect is "good" or one of SynthDefects(). With
// with_clean, sample.clean is the identical image without the defect (same
// texture, lighting and sensor noise), which tests use to check the mask.
Result<SynthSample> RenderSynthSample(const SynthOptions& options, SynthSplit split,
                                      const std::string& defect, int index,
                                      bool with_clean = false);

// PNG bytes (deterministic for the same pixels).
Result<std::vector<uint8_t>> EncodeSynthPng(const SynthImage& image);

struct SynthSummary {
  int train_good = 0, val_good = 0, val_defect = 0;  // images written
  std::vector<std::string> files;                    // paths relative to OUT
};

// Writes the folder dataset
//   OUT/train/good/NNN.png, OUT/val/good/NNN.png, OUT/val/<defect>/NNN.png,
//   OUT/val/masks/<defect>/NNN.png (255 = defect)
// the same layout as the datasets in ../shared/data. Refuses to write into an existing
// OUT/train or OUT/val unless options.overwrite (which removes those two).
Result<SynthSummary> WriteSynthDataset(const std::string& out_dir, const SynthOptions& options);

}  // namespace flawlens::synth
