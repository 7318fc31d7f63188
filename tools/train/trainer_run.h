// The from-scratch trainer's internals, shared by its files: the state of a
// run (TrainRun), the helpers several phases use (trainer_util.cc), the
// training batches (batches.h) and the phases after training
// (trainer_fit.cc). RunTraining (trainer.cc) runs the phases in order. Only
// tools/train/ includes this.
#pragma once

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <string>
#include <vector>

#include "fit/calibration.h"
#include "image/preprocess.h"
#include "model/model.h"
#include "train/edge_calibration.h"
#include "train/net.h"
#include "train/trainer.h"

namespace flawlens::train::scratch {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

// Set by the first Ctrl-C of a run (RunTraining installs the handler).
extern std::atomic<bool> g_interrupted;

// Seconds since `since`; the last path component; "m:ss".
double Seconds(Clock::time_point since);
std::string Basename(const std::string& p);
std::string FormatTime(double s);

// ---- images ----------------------------------------------------------------

struct Loaded {
  std::string path;
  Image image;
};

// Preprocess to an HWC float buffer.
Result<std::vector<float>> Prep(const ImageView& view, const PreprocessConfig& cfg);

// An h x w x c buffer as a c x h x w tensor (a copy).
torch::Tensor HwcToTensor(const std::vector<float>& hwc, int h, int w, int c);

// ---- evaluation helpers -----------------------------------------------------

// Seg logits only (validation during training, before the density fit).
torch::Tensor RunSeg(FlawNet& net, const std::vector<torch::Tensor>& inputs);

// Edge-calibration table side (fixed pixel scale): distances 0..7 cells from
// each of the four edges (edge_calibration.h).
constexpr int kEdgeBuckets = 16;

// Maps with the cells off the image (fixed-scale padding) pushed below any
// score, so that the reductions see only the image. valid: N x 1 x h x w bool.
torch::Tensor OnImage(const torch::Tensor& maps, const torch::Tensor& valid);

// The maps (N x 1 x h x w) as the float planes src/fit works on, one after
// the other.
std::vector<float> MapPlanes(const torch::Tensor& maps);

// The detector's map blur (the postprocess blur_sigma) on each map.
torch::Tensor BlurMaps(const torch::Tensor& maps, float sigma);

// fit::ApplyCellCalibration on each map.
torch::Tensor ApplyCells(const torch::Tensor& maps, const fit::CellCalibration& cc);

// One score per map: "max", "topk_mean" (the top `topk` fraction of cells) or "mean".
std::vector<float> ReduceScores(const torch::Tensor& maps, const std::string& reduce, float topk);

struct ValSet {
  std::vector<torch::Tensor> inputs;
  std::vector<bool> defective;
  std::vector<std::string> types;
  std::vector<torch::Tensor> masks;  // h4 x w4 labels (float 0/1), undefined if none
  std::vector<torch::Tensor> valid;  // 1 x h4 x w4: the cells over the image
  std::vector<torch::Tensor> buckets;  // 1 x h4 x w4: edge-calibration buckets (-1 off it)
  std::vector<float> orig_w, orig_h;
  bool has_defects = false, has_masks = false;
};

// Validation image AUROC (all, and per defect type) and pixel AUROC at map
// resolution, into `metrics` and printed.
void PrintAurocs(const ValSet& val, const std::vector<float>& scores, const torch::Tensor& maps,
                 json* metrics, bool quiet);

// EMA of parameters and buffers.
void EmaUpdate(FlawNet& ema, FlawNet& net, float decay);

// ---- the run's state ----------------------------------------------------------

// Everything one `flawlens train` run builds, filled in by the phases of
// RunTraining in order; each phase reads what the earlier ones left here.
struct TrainRun {
  explicit TrainRun(const TrainOptions& o) : opt(o) {}

  const TrainOptions& opt;
  Clock::time_point t0 = Clock::now();
  int fixed_threads = 0;  // 0: the thread tuner decides
  bool tty = false;

  // Images and the network input (LoadTrainingImages .. PrepareInputs).
  std::vector<Loaded> train_imgs, hold_imgs;
  size_t skipped = 0;
  int channels = 0;
  bool scale_mode = false;
  float pixel_scale = 0;
  int in_w = 0, in_h = 0, map_w = 0, map_h = 0;
  std::vector<FloatImage> pool;  // raw resized training images (synthetic anomalies)
  PreprocessConfig pre;          // the model's preprocessing
  std::vector<torch::Tensor> hold_x, train_x, train_valid, hold_buckets;
  ValSet val;

  // The networks (BuildNetwork); `ema` is the one exported.
  FlawNet net{nullptr}, ema{nullptr};
  double gflops = 0;

  // Training (TrainNetwork).
  int step = 0;
  double trained_s = 0;
  json metrics;

  // Branch maps of the held-out good and validation images (RunBranches).
  bool global = false;  // the image-level term is on
  torch::Tensor hold_seg, hold_dens, hold_fine, hold_glob;
  torch::Tensor val_seg, val_dens, val_fine, val_glob;
  torch::Tensor hold_bucket_t, hold_on;  // held-out edge buckets; cells over the image

  // Calibration (Calibrate).
  bool cell_calibration = false, edge_calibration = false;
  float shrink = 1.0f;
  Calibration cal;
};

// Scales a length by the fixed pixel scale (at least 1).
int Scaled(const TrainRun& r, int len);

// The model's preprocessing of one image as a C x H x W tensor.
Result<torch::Tensor> PrepTensor(const TrainRun& r, const Image& im);

// The map cells over the image (all of them unless fixed-scale padding), as
// edge-calibration buckets (1 x h x w, -1 off the image).
Result<torch::Tensor> ImageEdgeBuckets(const TrainRun& r, const Image& im);

// ---- after training (trainer_fit.cc), in the order RunTraining runs them ----

// The density branch (Gaussian of the 1/4 features), the fine density on the
// stem features (--fine-density) and the image-level term (a Gaussian of the
// images' mean feature vectors, --global-weight), fitted on at most 200
// training images, evenly spaced.
Status FitDensities(TrainRun* r);

// Branch maps of `xs`: one pass each (branches that are off stay undefined).
void RunBranches(TrainRun* r, const std::vector<torch::Tensor>& xs, torch::Tensor* seg,
                 torch::Tensor* dens, torch::Tensor* fine, torch::Tensor* glob);

// Standardises the branch maps on the held-out good images (cells over the
// image): the mean and std of each branch go into the network's combine
// weights, the image-level term's into its statistics.
void StandardiseBranches(TrainRun* r);

struct MapCalibration {
  fit::CellCalibration cells;
  EdgeCalibration edge;
};

// Per-cell calibration of the maps (shrink: 0 = per-cell std, 1 = one global
// std; per-cell mean either way). Fixed scale: cell positions do not line up
// with image positions, so the calibration is by distance to the image's
// edge instead of per cell.
class MapCalibrator {
 public:
  explicit MapCalibrator(const TrainRun& r)
      : r_(r),
        val_buckets_(r.val.buckets.empty() ? torch::Tensor() : torch::stack(r.val.buckets)),
        val_on_(r.val.buckets.empty() ? torch::Tensor() : val_buckets_ >= 0) {}

  // fit::FitCellCalibration (mirror-symmetric when training used flips);
  // without cell calibration, the identity.
  Result<fit::CellCalibration> FitCells(const torch::Tensor& maps, float shrink) const {
    if (!r_.cell_calibration) {
      const size_t cells = size_t(r_.map_h) * r_.map_w;
      return fit::CellCalibration{r_.map_h, r_.map_w, std::vector<float>(cells, 0.0f),
                                  std::vector<float>(cells, 1.0f)};
    }
    const std::vector<float> planes = MapPlanes(maps);
    return fit::FitCellCalibration(planes.data(), int(maps.size(0)), r_.map_h, r_.map_w,
                                   r_.opt.flips, shrink);
  }
  // Fitted on held-out maps.
  Result<MapCalibration> Fit(const torch::Tensor& hold, float shrink) const {
    MapCalibration c;
    FLAWLENS_ASSIGN_OR_RETURN(c.cells, FitCells(hold, shrink));
    if (r_.edge_calibration)
      c.edge = FitEdgeCalibration(hold, r_.hold_bucket_t, kEdgeBuckets, shrink);
    return c;
  }
  // Applied to held-out (is_val = false) or validation maps; the cells off
  // the image are pushed below any score.
  torch::Tensor Apply(const torch::Tensor& maps, const MapCalibration& c, bool is_val) const {
    torch::Tensor m = ApplyCells(maps, c.cells);
    if (r_.edge_calibration)
      m = ApplyEdgeCalibration(m, is_val ? val_buckets_ : r_.hold_bucket_t, c.edge);
    return OnImage(m, is_val ? val_on_ : r_.hold_on);
  }

 private:
  const TrainRun& r_;
  const torch::Tensor val_buckets_, val_on_;
};

// The map calibration and the score calibration (threshold in standard
// deviations of held-out good scores above their mean: sensitivity 0.5 -> 3,
// 1 -> 0, 0 -> 6).
Result<MapCalibration> Calibrate(TrainRun* r, const MapCalibrator& calibrator);

// Validation AUROCs of the exported pipeline, and the F1-optimal threshold
// (stored in the calibration) against the calibrated one.
void Validate(TrainRun* r, const MapCalibrator& calibrator, const MapCalibration& map_cal);

// Writes the model file (through a temporary file: a failed write keeps the
// file that was there), checks it on the engine and prints the summary.
Status Export(TrainRun* r, const MapCalibration& map_cal);

}  // namespace flawlens::train::scratch
