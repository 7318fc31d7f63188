// Teaching a detector on the frozen features of a pretrained backbone: the
// shared code of `flawlens train --backbone` (tools/fit/) and the page, which
// teaches from webcam frames.
//
//   auto t = fit::Teacher::Create(backbone_bytes, size);     // Result<...>
//   for (each good image) t->AddImage(view);                   // preprocess + backbone
//   auto fitted = t->Fit(fit_options);                         // density + calibration
//   write fitted->model (a flawlens model file, model/FORMAT.md)
//
// The backbone is a flawlens model file whose graph output is a feature map
// (card "kind": "backbone", written by `flawlens import-tfjs`), or a model
// this code taught (its card names the feature node; its graph is cut there,
// so a taught model can be taught again). The model written is the backbone
// up to the feature node, a fixed seeded random projection to D channels (a
// 1x1 conv) and the density head:
//   - per position: one Gaussian per map cell, op `position_mahalanobis`
//     (per-cell whitening A_p and mean mu_p);
//   - shared: one Gaussian of all cells, a whitening 1x1 conv +
//     `reduce_channels sum_squares`;
//   - optionally an image-level term: the Mahalanobis distance of the image's
//     mean projected features (global_avgpool -> 1x1 conv -> reduce_channels
//     -> upsample over the map -> add).
// Covariances are shrunk (Ledoit-Wolf, or a fixed amount) plus a small floor.
// Then the detector's postprocessing: a Gaussian blur of the map and a
// per-cell calibration, and the score calibration (offset, scale, threshold
// from the sensitivity), both fitted on held-out good images, like `flawlens
// train` (tools/train/METHOD.md).
//
// Memory: only sufficient statistics of the fitted images are kept (per cell:
// D(D+1)/2 + 2D + 2 doubles), plus the projected feature maps of the held-out
// images (H x W x D floats each). No threads, no exceptions.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "fit/calibration.h"
#include "fit/linalg.h"
#include "image/preprocess.h"
#include "model/json_value.h"
#include "model/model.h"
#include "nn/executor.h"

namespace flawlens::fit {

// Fewest images Fit() accepts: fitted, and held out for the calibration.
inline constexpr int kMinFitImages = 5;
inline constexpr int kMinHoldoutImages = 3;

struct TeacherOptions {
  // D: random projection of the backbone's features. 32 scored within noise
  // of 64 on every set measured, in a third of the file (docs/METHOD-backbone.md).
  int dims = 32;
  uint32_t seed = 1;      // projection and hold-out choice
  float holdout = 0.15f;  // fraction of the added images (or groups) kept for calibration, (0, 1)
  // Backbone channels [channel_begin, channel_end) that the projection reads
  // (both 0: all), e.g. one of the concatenated layers.
  int channel_begin = 0, channel_end = 0;
  std::string backend = "auto";  // inference backend (see DetectorOptions)
  int threads = 1;               // XNNPACK threads (native only)
};

enum class DensityKind { kPerPosition, kShared };
const char* DensityKindName(DensityKind kind);  // "per_position", "shared"
Result<DensityKind> ParseDensityKind(const std::string& name);

struct FitOptions {
  DensityKind density = DensityKind::kPerPosition;
  // Covariance shrinkage towards (trace / D) I: < 0 = Ledoit-Wolf (per
  // Gaussian), else this fixed amount in [0, 1].
  float shrinkage = -1.0f;
  // Plus eps times the mean variance (over all cells and dims) on the
  // diagonal: keeps cells that never vary (a constant border) finite.
  float eps = 0.01f;
  float blur_sigma = 0.5f;       // map blur, in map cells (0 = none)
  float cell_std_shrink = 1.0f;  // per-cell std -> global std (FitCellCalibration)
  float sensitivity = 0.5f;      // threshold = 6 (1 - sensitivity) std of held-out good scores
  float global_weight = 0.0f;    // image-level term (0 = none)
  // Card fields.
  std::string name = "taught model";
  std::string created;                      // e.g. ISO 8601 time; "" = not recorded
  std::string taught_by = "flawlens fit";   // "flawlens train --backbone", "page", ...
  std::string card_extra_json;              // optional JSON object merged into the card
};

struct FitResult {
  std::vector<uint8_t> model;           // the model file
  Calibration calibration;
  std::vector<float> holdout_raw;       // raw scores of the held-out images (model units)
  std::vector<int> holdout_indices;     // their AddImage order
  double mean_shrinkage = 0;            // mean covariance shrinkage applied (Ledoit-Wolf or fixed)
  int fit_images = 0, holdout_images = 0;
};

// Fraction done in [0, 1] (for a progress bar).
using ProgressFn = std::function<void(float)>;

class Teacher {
 public:
  // `bytes`: a backbone model file, or a model taught by this code.
  // Errors: the file does not load (LoadModel's code), is neither
  // (kInvalidArgument), bad options (kInvalidArgument).
  static Result<std::unique_ptr<Teacher>> Create(const uint8_t* bytes, size_t size,
                                                 const TeacherOptions& options = {});
  ~Teacher();

  // Preprocesses the image (the model's preprocessing, `roi` in pixels,
  // w == 0: whole image), runs the backbone and the projection, and adds the
  // features: to the statistics, or kept for calibration if the image (its
  // `group`: images with the same non-empty group are held out together) is
  // held out. Returns whether it was held out. Errors: bad image
  // (kInvalidArgument), non-finite features (kNonFinite, nothing added).
  Result<bool> AddImage(const ImageView& image, const RectF& roi = {},
                        const std::string& group = "");

  // Fits the density and the calibrations; can be called again with other
  // options. Errors: too few images (kInvalidArgument), features without
  // any variation (kInvalidArgument), bad options (kInvalidArgument).
  Result<FitResult> Fit(const FitOptions& options, const ProgressFn& progress = nullptr) const;

  int images() const { return fit_images_ + static_cast<int>(holdout_.size()); }
  int fit_images() const { return fit_images_; }
  int holdout_images() const { return static_cast<int>(holdout_.size()); }
  int map_width() const { return fw_; }
  int map_height() const { return fh_; }
  int feature_channels() const { return fc_; }  // backbone channels at the feature node
  int dims() const { return d_; }
  const std::string& feature_node() const { return feature_node_; }
  const PreprocessConfig& preprocess() const;

 private:
  Teacher();
  Status Init(const uint8_t* bytes, size_t size, const TeacherOptions& options);
  bool HoldOut(const std::string& group);
  std::vector<uint8_t> WriteModelFile(const FitOptions& o, const JsonValue& extra,
                                      const std::vector<float>& a, const std::vector<float>& mu,
                                      const std::vector<float>& ga, const std::vector<float>& gmu,
                                      const CellCalibration& cc, const FitResult& result) const;
  // Raw map (before blur) of held-out features `x` (H x W x D).
  void RawMap(const float* x, const std::vector<float>& a, const std::vector<float>& mu,
              bool per_position, const std::vector<float>& ga, const std::vector<float>& gmu,
              float* map) const;

  TeacherOptions options_;
  std::unique_ptr<Model> model_;  // the source file's graph (truncated + projection)
  std::unique_ptr<Executor> executor_;
  PreprocessScratch scratch_;
  std::vector<float> projection_;  // D x C
  // What the written model copies from the source.
  JsonValue graph_input_, kept_nodes_, source_card_backbone_;
  std::string preprocess_json_, feature_node_;
  std::vector<ModelTensor> kept_tensors_;
  int fh_ = 0, fw_ = 0, fc_ = 0, d_ = 0;

  // Statistics of the fitted images.
  std::vector<MomentAccumulator> cells_;  // per map cell
  MomentAccumulator shared_, global_;     // all cells; image means
  int fit_images_ = 0;
  // Held-out images: projected features and their AddImage order.
  std::vector<std::vector<float>> holdout_;
  std::vector<int> holdout_index_;
  // Hold-out schedule.
  std::map<std::string, bool> group_held_;
  int groups_seen_ = 0, added_ = 0;
  double phase_ = 0;
};

}  // namespace flawlens::fit
