// Teaching a detector on the frozen features of a pretrained backbone: the
// shared code of `flawlens train` (tools/train/backbone_fit.cc) and the page, which teaches
// from webcam frames and photos.
//
//   auto t = fit::Teacher::Create(backbone_bytes, size);     // Result<...>
//   for (each good image) t->AddImage(view, roi, group);      // preprocess + backbone
//   auto fitted = t->Fit(fit_options);                         // density + calibration
//   write fitted->model (a flawlens model file, model/FORMAT.md)
//
// The backbone is a flawlens model file whose graph output is a feature map
// (card "kind": "backbone", written by `flawlens import-tfjs`), or a model
// this code taught (its card names the feature node; its graph is cut there,
// so a taught model can be taught again). The model written is the backbone
// up to the feature node, a fixed seeded random projection to D channels (a
// 1x1 conv), optionally a local average of the projected map (PatchCore's
// "locally aware" patch features), and the density head, op
// `position_mahalanobis`:
//   - per position: a mean per map cell and a covariance per cell, or per
//     region of cells (for large D: a covariance of D = 100 needs more
//     samples than one cell's images give, and 40 MB per model);
//   - shared: one mean and one covariance for every cell (images whose
//     positions do not line up), fitted on the cells over the images (not
//     their padding, TeacherOptions::keep_aspect / pixel_scale).
// Covariances are shrunk (OAS, or a fixed amount) plus a small floor.
//
// The threshold rests on out-of-group scores: the images are grouped (the
// caller's group names; near-duplicate images linked by the distance of
// their pooled features; camera frames, group "", in contiguous time
// blocks), the groups are dealt into K folds, and every image is scored by a
// density fitted without its fold. Those maps fit the per-cell calibration,
// their scores the score calibration and the threshold (fit/threshold.h):
// about `false_alarm_rate` of new good parts score above it.
//
// Memory: the projected feature maps of every image (H x W x D floats
// each) and two sets of region statistics. No threads, no exceptions.
#pragma once

#include <cstdint>
#include <functional>
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

// The nodes a fit appends to the backbone (names in the written model).
inline constexpr char kProjNode[] = "fit.proj";
inline constexpr char kPoolNode[] = "fit.pool";
inline constexpr char kDensityNode[] = "fit.density";

// Fewest images and groups Fit() accepts.
inline constexpr int kMinFitImages = 6;
inline constexpr int kMinFitGroups = 2;

struct TeacherOptions {
  // D: random projection of the backbone's features. 32 measured best on the
  // shared data (64 and 100, with or without local averaging, scored lower;
  // docs/METHOD-backbone.md), and a covariance per cell at D = 32 keeps the
  // page's model at its size.
  int dims = 32;
  // Local average of the projected map: a pool x pool window (odd; 1 = none;
  // 3 is PatchCore's "locally aware" patch feature).
  int pool = 1;
  uint32_t seed = 1;      // projection and fold assignment
  // The network input, W x H (both multiples of 32; 0: the backbone's). Images
  // are resized to it: an input with the parts' aspect ratio keeps their
  // texture scale (a 500x1247 photo fits 256x640, not 256x256).
  int input_width = 0, input_height = 0;
  // The photo on that input (PreprocessConfig): keep_aspect fits it inside,
  // undistorted, with mirror padding; pixel_scale > 0 resizes every photo by
  // that one factor (texture at one scale; larger photos are cropped to the
  // input). Either way only the map cells over the photo are scored, by the
  // fit as by the detector, and the shared density is fitted on those cells
  // only. Both off: stretched to the input (the backbone's own way).
  bool keep_aspect = false;
  float pixel_scale = 0.0f;
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
  // Per position: the side of a covariance region, in map cells (1 = a
  // covariance per cell; larger regions share one, for large D).
  int region = 1;
  // Covariance shrinkage towards (trace / D) I: < 0 = OAS (per region), else
  // this fixed amount in [0, 1].
  float shrinkage = -1.0f;
  // Plus eps times the mean variance on the diagonal: keeps cells that never
  // vary (a constant border) finite.
  float eps = 0.01f;
  float blur_sigma = 0.5f;       // map blur, in map cells (0 = none)
  float cell_std_shrink = 1.0f;  // per-cell std -> global std (FitCellCalibration)
  // The threshold's target: the fraction of new good parts flagged
  // (fit/threshold.h; SensitivityToRate maps the sensitivity slider).
  double false_alarm_rate = 0.05;  // fit::kDefaultFalseAlarmRate
  int folds = 5;                 // cross-fit folds (fewer when there are fewer groups)
  // Folds are built from blocks of the capture order (group names in
  // natural order, camera frames in time order); false: groups dealt at
  // random (seeded).
  bool capture_order = true;
  // Near-duplicate images (pooled features closer than this many times the
  // typical nearest-neighbour distance) form one group; 0 = no linking.
  float link = 0.5f;
  // Card fields.
  std::string name = "taught model";
  std::string created;                      // e.g. ISO 8601 time; "" = not recorded
  std::string taught_by = "flawlens fit";   // "flawlens train", "page", ...
  std::string card_extra_json;              // optional JSON object merged into the card
};

struct FitResult {
  std::vector<uint8_t> model;           // the model file
  Calibration calibration;
  std::vector<float> oof_raw;           // out-of-group raw score of every image (AddImage order)
  float first_raw = 0;                  // the written model's raw score of image 0
  std::vector<int> group_of;            // every image's group (0-based)
  int groups = 0, folds = 0;
  double mean_shrinkage = 0;            // mean covariance shrinkage of the final density
  std::vector<std::string> warnings;    // what the data cannot support (fit/threshold.h)
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
  // w == 0: whole image), runs the backbone, the projection and the local
  // average, and keeps the map. `group`: images with the same non-empty
  // group are one part (held out together); "" marks a camera frame, taken
  // in order (frames are held out in contiguous time blocks). Returns the
  // image's index. Errors: bad image (kInvalidArgument), non-finite
  // features (kNonFinite, nothing added).
  Result<int> AddImage(const ImageView& image, const RectF& roi = {}, const std::string& group = "");

  // Fits the density and the calibrations; can be called again with other
  // options. Errors: too few images or groups (kInvalidArgument), features
  // without any variation (kInvalidArgument), bad options (kInvalidArgument).
  Result<FitResult> Fit(const FitOptions& options, const ProgressFn& progress = nullptr) const;

  int images() const { return static_cast<int>(groups_.size()); }
  int map_width() const { return fw_; }
  int map_height() const { return fh_; }
  int feature_channels() const { return fc_; }  // backbone channels at the feature node
  int dims() const { return d_; }
  const std::string& feature_node() const { return feature_node_; }
  const PreprocessConfig& preprocess() const;
  // The map cells over image i (all cells unless the input is padded).
  const RectI& content_cells(int i) const { return content_[size_t(i)]; }

  // Everything a fit computes, for the model file and the result.
  struct Density;
  struct Stats;

 private:
  Teacher();
  Status Init(const uint8_t* bytes, size_t size, const TeacherOptions& options);
  std::vector<int> Groups(const FitOptions& o, int* count) const;
  void Accumulate(const std::vector<int>& images, const FitOptions& o, Stats* s) const;
  Status FitDensity(const Stats& s, const FitOptions& o, Density* d) const;
  void RawMap(const float* x, const Density& d, float* map) const;
  std::vector<uint8_t> WriteModelFile(const FitOptions& o, const JsonValue& extra,
                                      const Density& density, const CellCalibration& cc,
                                      const EdgeCalibration& ec, const FitResult& result) const;

  TeacherOptions options_;
  std::unique_ptr<Model> model_;  // the source file's graph (truncated + projection + pool)
  std::unique_ptr<Executor> executor_;
  PreprocessScratch scratch_;
  std::vector<float> projection_;  // D x C
  // What the written model copies from the source.
  JsonValue kept_nodes_, source_card_backbone_;
  std::string preprocess_json_, feature_node_;
  std::vector<ModelTensor> kept_tensors_;
  int fh_ = 0, fw_ = 0, fc_ = 0, d_ = 0;

  // Every image: its projected, pooled map (H x W x D), a coarse summary of
  // it for near-duplicate linking, and its group name.
  std::vector<std::vector<float>> features_;
  std::vector<std::vector<float>> summaries_;
  std::vector<std::string> groups_;
  std::vector<RectI> content_;  // map cells over each image (the detector's ContentCells)
};

// Sufficient statistics of a set of images: per cell the sum of its
// features, per region the sum of outer products (lower triangle, full
// d x d storage), and the number of images.
struct Teacher::Stats {
  int images = 0;
  double samples = 0;            // (image, cell) pairs summed: shared skips padding cells
  std::vector<double> cell_sum;  // cells x D
  std::vector<double> scatter;   // regions x D x D
};

// A fitted density: per-cell means, per-region whitening matrices.
struct Teacher::Density {
  int grid_h = 1, grid_w = 1;
  std::vector<float> mean;       // cells x D
  std::vector<float> whitening;  // regions x D x D (lower triangular)
  double mean_shrinkage = 0;
};

}  // namespace flawlens::fit
