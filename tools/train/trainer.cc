// `flawlens train --from-scratch`. RunTraining, at the end of this file, runs
// the phases in order: training images and the network input, validation
// set, network, training loop, densities, branch standardisation,
// calibration, validation report, export. Each phase is a function over
// TrainRun, the state of the run; the helpers above them (preprocessing,
// batches, reductions) are shared by several phases.
#include "train/trainer.h"

#include <torch/torch.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <climits>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <cstdlib>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include "cli/cli_util.h"
#include "cli/dataset.h"
#include "core/limits.h"
#include "fit/calibration.h"
#include "fit/linalg.h"
#include "flawlens/detector.h"
#include "image/preprocess.h"
#include "model/model.h"
#include "train/edge_calibration.h"
#include "train/net.h"
#include "train/thread_tuner.h"

namespace flawlens::train {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

std::atomic<bool> g_interrupted{false};
void OnSigint(int) {
  if (g_interrupted.exchange(true)) std::_Exit(130);  // second Ctrl-C: leave now
}

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

std::string Basename(const std::string& p) {
  size_t s = p.find_last_of('/');
  return s == std::string::npos ? p : p.substr(s + 1);
}

std::string FormatTime(double s) {
  if (s < 0) s = 0;
  int t = static_cast<int>(s + 0.5);
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%d:%02d", t / 60, t % 60);
  return buf;
}

// ---- images ----------------------------------------------------------------

struct Loaded {
  std::string path;
  Image image;
};

// Preprocess to an HWC float buffer.
Result<std::vector<float>> Prep(const ImageView& view, const PreprocessConfig& cfg) {
  std::vector<float> out(size_t(cfg.out_h()) * cfg.out_w() * cfg.channels);
  PreprocessScratch scratch;
  RectF covered;
  FLAWLENS_RETURN_IF_ERROR(Preprocess(view, cfg, RectF{}, out.data(), &scratch, &covered));
  return out;
}

// Raw resize config: pixels 0..255 at the network resolution, no normalisation.
PreprocessConfig RawConfig(int w, int h, int channels) {
  PreprocessConfig c;
  c.resize_w = w;
  c.resize_h = h;
  c.channels = channels;
  c.scale = 1.0f;
  return c;
}

torch::Tensor HwcToTensor(const std::vector<float>& hwc, int h, int w, int c) {
  return torch::from_blob(const_cast<float*>(hwc.data()), {h, w, c}, torch::kFloat32)
      .permute({2, 0, 1})
      .clone();
}

// FloatImage (0..255) -> uint8 Image -> the model's preprocessing.
torch::Tensor NormaliseSample(const FloatImage& img, const PreprocessConfig& model_cfg,
                              PreprocessScratch* scratch) {
  std::vector<uint8_t> px(img.data.size());
  for (size_t i = 0; i < px.size(); ++i)
    px[i] = static_cast<uint8_t>(std::clamp(std::lround(img.data[i]), 0L, 255L));
  ImageView view{px.data(), img.w, img.h, img.c == 1 ? PixelFormat::kGray8 : PixelFormat::kRGB8,
                 0};
  PreprocessConfig cfg = model_cfg;
  cfg.resize_w = img.w;
  cfg.resize_h = img.h;
  cfg.crop = RectI{};
  std::vector<float> out(size_t(img.h) * img.w * cfg.channels);
  RectF covered;
  Status st = Preprocess(view, cfg, RectF{}, out.data(), scratch, &covered);
  if (!st.ok()) return torch::zeros({cfg.channels, img.h, img.w});
  return HwcToTensor(out, img.h, img.w, cfg.channels);
}

// ---- training batches (produced on a separate thread) -----------------------

struct Batch {
  torch::Tensor x, y;
};

class BatchMaker {
 public:
  BatchMaker(const std::vector<FloatImage>* images, const PreprocessConfig* cfg,
             const TrainOptions* opt, int crop_h, int crop_w, uint32_t seed)
      : images_(images), cfg_(cfg), opt_(opt), crop_h_(crop_h), crop_w_(crop_w), rng_(seed) {}

  Batch Make() {
    int n = opt_->batch;
    torch::Tensor x = torch::empty({n, cfg_->channels, crop_h_, crop_w_});
    torch::Tensor y = torch::empty({n, 1, crop_h_ / 4, crop_w_ / 4});
    for (int i = 0; i < n; ++i) {
      const FloatImage& src = (*images_)[std::uniform_int_distribution<int>(
          0, int(images_->size()) - 1)(rng_)];
      FloatImage img = RandomCrop(src);
      std::vector<float> mask(size_t(img.h) * img.w, 0.0f);
      if (std::uniform_real_distribution<float>(0, 1)(rng_) < opt_->anomaly_prob) {
        PaintAnomalies(&img, &mask, *images_, opt_->synth, &rng_);
      }
      x[i] = NormaliseSample(img, *cfg_, &scratch_);
      torch::Tensor m = torch::from_blob(mask.data(), {1, 1, img.h, img.w}, torch::kFloat32);
      y[i] = torch::avg_pool2d(m, 4)[0];
    }
    return {x, y};
  }

 private:
  FloatImage RandomCrop(const FloatImage& src) {
    int ch = std::min(crop_h_, src.h), cw = std::min(crop_w_, src.w);
    int y0 = std::uniform_int_distribution<int>(0, src.h - ch)(rng_);
    int x0 = std::uniform_int_distribution<int>(0, src.w - cw)(rng_);
    bool fx = opt_->flips && (rng_() & 1), fy = opt_->flips && (rng_() & 1);
    float gain = std::uniform_real_distribution<float>(0.8f, 1.2f)(rng_);
    float bias = std::uniform_real_distribution<float>(-12.f, 12.f)(rng_);
    FloatImage out;
    out.h = crop_h_;
    out.w = crop_w_;
    out.c = src.c;
    out.data.assign(size_t(out.h) * out.w * out.c, 0.0f);
    // A source smaller than the crop is mirrored (as the detector pads it).
    for (int y = 0; y < crop_h_; ++y) {
      int sy = MirrorIndex(y, ch);
      sy = fy ? y0 + ch - 1 - sy : y0 + sy;
      for (int x = 0; x < crop_w_; ++x) {
        int sx = MirrorIndex(x, cw);
        sx = fx ? x0 + cw - 1 - sx : x0 + sx;
        for (int c = 0; c < src.c; ++c)
          out.at(y, x, c) = std::clamp(src.at(sy, sx, c) * gain + bias, 0.0f, 255.0f);
      }
    }
    return out;
  }

  const std::vector<FloatImage>* images_;
  const PreprocessConfig* cfg_;
  const TrainOptions* opt_;
  int crop_h_, crop_w_;
  std::mt19937 rng_;
  PreprocessScratch scratch_;
};

class BatchQueue {
 public:
  explicit BatchQueue(BatchMaker* maker) : maker_(maker) {
    worker_ = std::thread([this] {
      while (!stop_) {
        Batch b = maker_->Make();
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stop_ || queue_.size() < 3; });
        if (stop_) break;
        queue_.push_back(std::move(b));
        cv_.notify_all();
      }
    });
  }
  ~BatchQueue() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    worker_.join();
  }
  Batch Pop() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return !queue_.empty(); });
    Batch b = std::move(queue_.front());
    queue_.pop_front();
    cv_.notify_all();
    return b;
  }

 private:
  BatchMaker* maker_;
  std::thread worker_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Batch> queue_;
  bool stop_ = false;
};

// ---- evaluation helpers -----------------------------------------------------

// Seg logits only (validation during training, before the density fit).
torch::Tensor RunSeg(FlawNet& net, const std::vector<torch::Tensor>& inputs) {
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> outs;
  for (size_t i = 0; i < inputs.size(); i += 8) {
    size_t e = std::min(inputs.size(), i + 8);
    torch::Tensor x = torch::stack(std::vector<torch::Tensor>(inputs.begin() + i, inputs.begin() + e));
    outs.push_back(net->forward(x).seg);
  }
  return torch::cat(outs, 0);
}

// Edge-calibration table side (fixed pixel scale): distances 0..7 cells from
// each of the four edges (cell_calibration.h).
constexpr int kEdgeBuckets = 16;

// Maps with the cells off the image (fixed-scale padding) pushed below any
// score, so that the reductions see only the image. valid: N x 1 x h x w bool.
torch::Tensor OnImage(const torch::Tensor& maps, const torch::Tensor& valid) {
  return maps.masked_fill(valid.logical_not(), -1e30f);
}

// The maps (N x 1 x h x w) as the float planes src/fit works on, one after
// the other.
std::vector<float> MapPlanes(const torch::Tensor& maps) {
  torch::Tensor c = maps.detach().to(torch::kFloat32).contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

// `fn(plane)` on each map of a copy of `maps` (N x 1 x h x w).
template <typename Fn>
torch::Tensor ForEachPlane(const torch::Tensor& maps, Fn fn) {
  torch::Tensor out = maps.detach().to(torch::kFloat32).contiguous().clone();
  const int64_t cells = out.size(2) * out.size(3);
  float* p = out.data_ptr<float>();
  for (int64_t i = 0; i < out.size(0); ++i) fn(p + i * cells);
  return out;
}

// The detector's map blur (the postprocess blur_sigma) on each map.
torch::Tensor BlurMaps(const torch::Tensor& maps, float sigma) {
  if (!(sigma > 0)) return maps;
  const int h = int(maps.size(2)), w = int(maps.size(3));
  return ForEachPlane(maps, [&](float* m) { fit::BlurMap(m, w, h, sigma); });
}

// fit::ApplyCellCalibration on each map.
torch::Tensor ApplyCells(const torch::Tensor& maps, const fit::CellCalibration& cc) {
  return ForEachPlane(maps, [&](float* m) { fit::ApplyCellCalibration(cc, m); });
}

std::vector<float> ReduceScores(const torch::Tensor& maps, const std::string& reduce, float topk) {
  int64_t n = maps.size(0);
  torch::Tensor flat = maps.reshape({n, -1});
  std::vector<float> s(n);
  int64_t cells = flat.size(1);
  int64_t k = std::max<int64_t>(1, static_cast<int64_t>(std::llround(topk * cells)));
  for (int64_t i = 0; i < n; ++i) {
    if (reduce == "mean") {
      s[i] = flat[i].mean().item<float>();
    } else if (reduce == "topk_mean") {
      s[i] = std::get<0>(flat[i].topk(k)).mean().item<float>();
    } else {
      s[i] = flat[i].max().item<float>();
    }
  }
  return s;
}

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

void PrintAurocs(const ValSet& val, const std::vector<float>& scores, const torch::Tensor& maps,
                 json* metrics, bool quiet) {
  double auroc = Auroc(scores, val.defective);
  (*metrics)["val_image_auroc"] = auroc;
  std::string line = "validation image AUROC " + std::to_string(auroc).substr(0, 5);
  std::map<std::string, std::pair<std::vector<float>, std::vector<bool>>> per_type;
  for (size_t i = 0; i < scores.size(); ++i) {
    if (!val.defective[i]) continue;
    per_type[val.types[i]];
  }
  for (auto& [type, sl] : per_type) {
    for (size_t i = 0; i < scores.size(); ++i) {
      if (!val.defective[i] || val.types[i] == type) {
        sl.first.push_back(scores[i]);
        sl.second.push_back(val.defective[i]);
      }
    }
    double a = Auroc(sl.first, sl.second);
    (*metrics)["val_auroc_" + type] = a;
    line += " | " + type + " " + std::to_string(a).substr(0, 5);
  }
  if (val.has_masks && maps.defined()) {
    std::vector<float> px;
    std::vector<bool> lab;
    for (size_t i = 0; i < val.inputs.size(); ++i) {
      if (val.defective[i] && !val.masks[i].defined()) continue;
      torch::Tensor m = maps[i][0].contiguous();
      const float* pm = m.data_ptr<float>();
      torch::Tensor gt = val.defective[i] ? val.masks[i].contiguous() : torch::zeros_like(m);
      const float* pg = gt.data_ptr<float>();
      torch::Tensor ok = val.valid[i][0].contiguous();
      const bool* pv = ok.data_ptr<bool>();
      for (int64_t j = 0; j < m.numel(); ++j) {
        if (!pv[j]) continue;
        px.push_back(pm[j]);
        lab.push_back(pg[j] > 0.5f);
      }
    }
    double pa = Auroc(px, lab);
    (*metrics)["val_pixel_auroc_map"] = pa;
    line += " | pixel(map res) " + std::to_string(pa).substr(0, 5);
  }
  if (!quiet) std::fprintf(stderr, "%s\n", line.c_str());
  std::printf("%s\n", line.c_str());
}

// EMA of parameters and buffers.
void EmaUpdate(FlawNet& ema, FlawNet& net, float decay) {
  torch::NoGradGuard ng;
  auto ep = ema->parameters(), np = net->parameters();
  for (size_t i = 0; i < ep.size(); ++i) ep[i].mul_(decay).add_(np[i], 1 - decay);
  auto eb = ema->buffers(), nb = net->buffers();
  for (size_t i = 0; i < eb.size(); ++i) eb[i].copy_(nb[i]);
}


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
int Scaled(const TrainRun& r, int len) {
  return std::max(1, int(std::lround(len * double(r.pixel_scale))));
}

// The model's preprocessing of one image as a C x H x W tensor.
Result<torch::Tensor> PrepTensor(const TrainRun& r, const Image& im) {
  FLAWLENS_ASSIGN_OR_RETURN(std::vector<float> v, Prep(im.view(), r.pre));
  return HwcToTensor(v, r.in_h, r.in_w, r.channels);
}

// The map cells over the image (all of them unless fixed-scale padding), as
// edge-calibration buckets (1 x h x w, -1 off the image).
Result<torch::Tensor> ImageEdgeBuckets(const TrainRun& r, const Image& im) {
  FLAWLENS_ASSIGN_OR_RETURN(RectI content, PreprocessContent(r.pre, im.width, im.height, RectF{}));
  RectI c = ContentCells(content, r.in_w, r.in_h, r.map_w, r.map_h);
  return EdgeBuckets(r.map_h, r.map_w, c.y, c.x, c.h, c.w, kEdgeBuckets);
}

// ---- 1. training images -------------------------------------------------------

// The good images of the train split (or of a flat folder), decoded; the
// unreadable ones are listed on stderr and counted in r->skipped.
Status LoadTrainingImages(TrainRun* r, std::vector<Loaded>* loaded) {
  const TrainOptions& opt = r->opt;
  std::vector<std::string> paths;
  {
    auto splits = cli::ListSplits(opt.data);
    bool has_train = std::find(splits.begin(), splits.end(), "train") != splits.end();
    auto ds = cli::LoadDataset(opt.data, has_train ? "train" : "");
    if (!ds.ok()) return ds.status();
    paths = ds->good_paths();
    if (!has_train && ds->split != "flat" && !splits.empty()) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "%s: no train/ split and not a flat folder of images (splits found: %zu)",
                       opt.data.c_str(), splits.size());
    }
    for (const auto& w : ds->warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
  }
  if (paths.empty())
    return MakeError(ErrorCode::kInvalidArgument, "%s: no good training images found",
                     opt.data.c_str());
  std::vector<std::string> skipped;
  for (const auto& p : paths) {
    auto bytes = cli::ReadFileBytes(p);
    if (!bytes.ok()) { skipped.push_back(p + " (" + bytes.status().message() + ")"); continue; }
    auto img = DecodeImage(bytes->data(), bytes->size());
    if (!img.ok()) { skipped.push_back(p + " (" + img.status().message() + ")"); continue; }
    loaded->push_back({p, std::move(*img)});
  }
  if (!skipped.empty()) {
    std::fprintf(stderr, "skipped %zu unreadable image(s):\n", skipped.size());
    for (const auto& s : skipped) std::fprintf(stderr, "  %s\n", s.c_str());
  }
  r->skipped = skipped.size();
  if (loaded->size() < 2)
    return MakeError(ErrorCode::kInvalidArgument,
                     "%s: need at least 2 readable good images, found %zu", opt.data.c_str(),
                     loaded->size());
  return Status::Ok();
}

// Channels and network input size. Fit: stretch every image to the input, or
// keep one pixel scale (aspect and texture size kept; images of varying size
// sit on a mirror-padded canvas and only the cells over the image are scored).
Status ChooseInput(TrainRun* r, const std::vector<Loaded>& loaded) {
  const TrainOptions& opt = r->opt;
  r->channels = opt.channels;
  if (r->channels == 0) {
    r->channels = 1;
    for (const auto& l : loaded)
      if (l.image.format != PixelFormat::kGray8) r->channels = 3;
  }
  r->scale_mode = opt.fit == "scale";
  if (opt.fit == "auto") {
    int min_w = INT_MAX, max_w = 0, min_h = INT_MAX, max_h = 0;
    for (const auto& l : loaded) {
      min_w = std::min(min_w, l.image.width);
      max_w = std::max(max_w, l.image.width);
      min_h = std::min(min_h, l.image.height);
      max_h = std::max(max_h, l.image.height);
    }
    r->scale_mode = max_w > 1.2 * min_w || max_h > 1.2 * min_h;
  } else if (!r->scale_mode && opt.fit != "stretch") {
    return MakeError(ErrorCode::kInvalidArgument, "--fit must be auto, stretch or scale (got '%s')",
                     opt.fit.c_str());
  }
  int in_w = opt.input_w, in_h = opt.input_h;
  if (r->scale_mode) {
    std::vector<double> areas;
    for (const auto& l : loaded) areas.push_back(double(l.image.width) * l.image.height);
    std::nth_element(areas.begin(), areas.begin() + areas.size() / 2, areas.end());
    r->pixel_scale = opt.pixel_scale > 0
                         ? opt.pixel_scale
                         : float(std::sqrt(double(opt.size) * opt.size / areas[areas.size() / 2]));
    if (in_w <= 0 || in_h <= 0) {
      // The canvas holds the largest scaled image, up to 3x the area of
      // --size^2 (beyond that the centre is used).
      int max_w = 16, max_h = 16;
      for (const auto& l : loaded) {
        max_w = std::max(max_w, Scaled(*r, l.image.width));
        max_h = std::max(max_h, Scaled(*r, l.image.height));
      }
      double f = std::min(1.0, std::sqrt(3.0 * opt.size * opt.size / (double(max_w) * max_h)));
      in_w = std::min(kMaxModelInputSide / 8 * 8, (int(std::ceil(max_w * f)) + 7) / 8 * 8);
      in_h = std::min(kMaxModelInputSide / 8 * 8, (int(std::ceil(max_h * f)) + 7) / 8 * 8);
    }
  } else if (in_w <= 0 || in_h <= 0) {
    std::vector<double> aspects;
    for (const auto& l : loaded) aspects.push_back(double(l.image.width) / l.image.height);
    std::nth_element(aspects.begin(), aspects.begin() + aspects.size() / 2, aspects.end());
    double a = std::clamp(aspects[aspects.size() / 2], 0.25, 4.0);
    in_w = std::max(16, int(std::lround(opt.size * std::sqrt(a) / 8.0)) * 8);
    in_h = std::max(16, int(std::lround(opt.size / std::sqrt(a) / 8.0)) * 8);
  }
  r->in_w = std::max(16, in_w / 8 * 8);
  r->in_h = std::max(16, in_h / 8 * 8);
  r->map_h = r->in_h / 4;
  r->map_w = r->in_w / 4;
  return Status::Ok();
}

// Holds out whole groups (near-copies stay together) for calibration.
void SplitHoldout(TrainRun* r, std::vector<Loaded> loaded) {
  std::map<std::string, std::vector<size_t>> groups;
  for (size_t i = 0; i < loaded.size(); ++i) groups[cli::GroupKey(loaded[i].path)].push_back(i);
  std::vector<std::vector<size_t>> glist;
  for (auto& g : groups) glist.push_back(g.second);
  std::mt19937 rng(r->opt.seed * 7919u + 17u);
  std::shuffle(glist.begin(), glist.end(), rng);
  size_t want = std::max<size_t>(1, size_t(std::lround(r->opt.holdout * loaded.size())));
  std::vector<bool> hold(loaded.size(), false);
  size_t n = 0;
  for (auto& g : glist) {
    if (n >= want || glist.size() < 2) break;
    if (n + g.size() > loaded.size() - 1) continue;
    for (size_t i : g) hold[i] = true;
    n += g.size();
  }
  for (size_t i = 0; i < loaded.size(); ++i)
    (hold[i] ? r->hold_imgs : r->train_imgs).push_back(std::move(loaded[i]));
  if (r->hold_imgs.empty()) {  // tiny set: calibrate on a training image
    r->hold_imgs.push_back(r->train_imgs.back());
  }
}

// The model's preprocessing, with normalisation statistics from the
// training images.
Status ChoosePreprocess(TrainRun* r) {
  const TrainOptions& opt = r->opt;
  const int channels = r->channels;
  PreprocessConfig& pre = r->pre;
  pre.resize_w = r->in_w;
  pre.resize_h = r->in_h;
  pre.channels = channels;
  pre.scale = 1.0f / 255.0f;
  pre.pixel_scale = r->pixel_scale;
  if (opt.norm == "lcn") {
    pre.norm = NormMode::kLocalContrast;
    pre.lcn_sigma = opt.lcn_sigma;
    pre.lcn_eps = opt.lcn_eps;
  } else if (opt.norm != "meanstd") {
    return MakeError(ErrorCode::kInvalidArgument, "--norm must be lcn or meanstd (got '%s')",
                     opt.norm.c_str());
  }
  double sum[3] = {0, 0, 0}, sq[3] = {0, 0, 0}, cnt = 0;
  for (size_t i = 0; i < std::min<size_t>(r->train_imgs.size(), 64); ++i) {
    auto p = Prep(r->train_imgs[i].image.view(), pre);
    if (!p.ok()) return p.status();
    for (size_t k = 0; k < p->size(); k += channels) {
      for (int c = 0; c < channels; ++c) {
        sum[c] += (*p)[k + c];
        sq[c] += double((*p)[k + c]) * (*p)[k + c];
      }
      cnt += 1;
    }
  }
  for (int c = 0; c < channels; ++c) {
    double m = sum[c] / cnt, v = std::max(1e-8, sq[c] / cnt - m * m);
    pre.mean[c] = float(m);
    pre.std[c] = float(std::sqrt(v));
  }
  return pre.Validate();
}

// The raw resized training images (the synthetic anomalies' pool; fixed
// scale: each at its own scaled size), the preprocessing, and the network
// inputs of the training and held-out images.
Status PrepareInputs(TrainRun* r) {
  for (const auto& l : r->train_imgs) {
    PreprocessConfig raw = RawConfig(r->in_w, r->in_h, r->channels);
    if (r->scale_mode)
      raw = RawConfig(Scaled(*r, l.image.width), Scaled(*r, l.image.height), r->channels);
    auto p = Prep(l.image.view(), raw);
    if (!p.ok()) return p.status();
    FloatImage f;
    f.h = raw.resize_h;
    f.w = raw.resize_w;
    f.c = r->channels;
    f.data = std::move(*p);
    r->pool.push_back(std::move(f));
  }
  FLAWLENS_RETURN_IF_ERROR(ChoosePreprocess(r));
  for (const auto& l : r->hold_imgs) {
    FLAWLENS_ASSIGN_OR_RETURN(torch::Tensor t, PrepTensor(*r, l.image));
    r->hold_x.push_back(t);
    FLAWLENS_ASSIGN_OR_RETURN(torch::Tensor b, ImageEdgeBuckets(*r, l.image));
    r->hold_buckets.push_back(b);
  }
  for (const auto& l : r->train_imgs) {
    FLAWLENS_ASSIGN_OR_RETURN(torch::Tensor t, PrepTensor(*r, l.image));
    r->train_x.push_back(t);
    FLAWLENS_ASSIGN_OR_RETURN(torch::Tensor b, ImageEdgeBuckets(*r, l.image));
    r->train_valid.push_back(b >= 0);
  }
  return Status::Ok();
}

// ---- 2. validation set (optional) -------------------------------------------

// A defect mask at map resolution (1 where more than half of the cell's
// pixels are defect), undefined when it cannot be read.
torch::Tensor LoadMapMask(const TrainRun& r, const std::string& path) {
  PreprocessConfig mask_cfg = RawConfig(r.in_w, r.in_h, 1);
  mask_cfg.pixel_scale = r.pixel_scale;
  auto mb = cli::ReadFileBytes(path);
  if (!mb.ok()) return {};
  auto mi = DecodeImage(mb->data(), mb->size());
  if (!mi.ok()) return {};
  auto mv = Prep(mi->view(), mask_cfg);
  if (!mv.ok()) return {};
  torch::Tensor full = HwcToTensor(*mv, r.in_h, r.in_w, 1).unsqueeze(0);
  return (torch::avg_pool2d(full, 4)[0][0] > 127.5f).to(torch::kFloat32);
}

// The dataset's val split (else test, or --val-split) when it has good and
// defective images; unreadable images are left out.
void LoadValidation(TrainRun* r) {
  const TrainOptions& opt = r->opt;
  ValSet& val = r->val;
  auto splits = cli::ListSplits(opt.data);
  std::string vs = opt.val_split;
  if (vs.empty()) {
    if (std::find(splits.begin(), splits.end(), "val") != splits.end()) vs = "val";
    else if (std::find(splits.begin(), splits.end(), "test") != splits.end()) vs = "test";
  }
  if (vs.empty()) return;
  auto ds = cli::LoadDataset(opt.data, vs);
  if (!ds.ok() || ds->num_defective() == 0 || ds->num_good() == 0) return;
  for (const auto& s : ds->samples) {
    auto bytes = cli::ReadFileBytes(s.path);
    if (!bytes.ok()) continue;
    auto img = DecodeImage(bytes->data(), bytes->size());
    if (!img.ok()) continue;
    auto t = PrepTensor(*r, *img);
    if (!t.ok()) continue;
    auto buckets = ImageEdgeBuckets(*r, *img);
    if (!buckets.ok()) continue;
    torch::Tensor m;
    if (s.defective && !s.mask_path.empty()) {
      m = LoadMapMask(*r, s.mask_path);
      if (m.defined()) val.has_masks = true;
    }
    val.inputs.push_back(*t);
    val.valid.push_back(*buckets >= 0);
    val.buckets.push_back(*buckets);
    val.defective.push_back(s.defective);
    val.types.push_back(s.defect_type);
    val.masks.push_back(m);
    val.orig_w.push_back(float(img->width));
    val.orig_h.push_back(float(img->height));
  }
  val.has_defects = true;
}

// ---- network ---------------------------------------------------------------

// The trained network and its exponential moving average (which starts equal
// to it and is what gets exported); prints the run's summary line.
void BuildNetwork(TrainRun* r) {
  const TrainOptions& opt = r->opt;
  NetConfig ncfg;
  ncfg.in_channels = r->channels;
  ncfg.width = opt.width;
  ncfg.density = opt.density;
  ncfg.seg_weight = opt.seg_weight;
  ncfg.density_weight = opt.density_weight;
  ncfg.map_blur_sigma = opt.map_blur;
  ncfg.bank = opt.bank;
  ncfg.fine_density = opt.fine_density;
  ncfg.global_weight = opt.global_weight;
  r->net = FlawNet(ncfg);
  r->ema = FlawNet(ncfg);
  {
    torch::NoGradGuard ng;
    auto ep = r->ema->parameters(), np = r->net->parameters();
    for (size_t i = 0; i < ep.size(); ++i) ep[i].copy_(np[i]);
  }
  r->gflops = 2.0 * CountMacs(r->net, r->in_h, r->in_w) / 1e9;
  char length[48];
  if (opt.steps > 0)
    std::snprintf(length, sizeof(length), "%d steps", opt.steps);
  else
    std::snprintf(length, sizeof(length), "budget %.1f min", opt.minutes);
  std::fprintf(stderr,
               "flawlens train: %zu training + %zu held-out good images (%zu skipped), "
               "input %dx%dx%d (%s, %s), map %dx%d, ~%.2f GFLOP/frame, %s\n",
               r->train_imgs.size(), r->hold_imgs.size(), r->skipped, r->in_w, r->in_h,
               r->channels, opt.norm.c_str(),
               r->scale_mode ? ("fixed pixel scale " + std::to_string(r->pixel_scale).substr(0, 5) +
                                ", mirror-padded").c_str()
                             : "stretched",
               r->map_w, r->map_h, r->gflops, length);
  if (r->val.has_defects)
    std::fprintf(stderr, "validation: %zu images from the dataset's held-out split\n",
                 r->val.inputs.size());
}

// ---- 3. train ----------------------------------------------------------------

// The training loop's clock and progress.
struct LoopState {
  Clock::time_point start;
  double train_time = 0;  // seconds of training under a time budget
  double tail = 0;        // estimated seconds of what follows training
  double val_cost = 0;    // estimated seconds of one periodic validation
  double loss_avg = 0;
  double next_val = 0, last_print = -100;
  std::string last_val;
  // Periodic validation on a subset (every k-th image) to keep it cheap.
  std::vector<torch::Tensor> pval_x;
  std::vector<bool> pval_y;
  torch::Tensor pval_on;
};

// The fraction of training done: of the steps, or of the time budget.
double Progress(const TrainRun& r, const LoopState& s, double t) {
  return r.opt.steps > 0 ? double(r.step) / r.opt.steps : t / s.train_time;
}

// Times forward passes to estimate what follows training (the densities,
// calibration and validation) and picks the periodic validation subset.
void PlanTraining(TrainRun* r, LoopState* s) {
  double per_image = 0;
  {
    Clock::time_point ts = Clock::now();
    r->ema->eval();
    const size_t n = std::min<size_t>(4, r->hold_x.size());
    RunSeg(r->ema, std::vector<torch::Tensor>(r->hold_x.begin(), r->hold_x.begin() + n));
    per_image = Seconds(ts) / n;
  }
  s->tail = per_image *
                (std::min<size_t>(r->train_x.size(), 200) + r->hold_x.size() + r->val.inputs.size()) *
                2.0 +
            10;
  std::vector<torch::Tensor> pval_valid;
  size_t k = std::max<size_t>(1, r->val.inputs.size() / 120);
  for (size_t i = 0; i < r->val.inputs.size(); i += k) {
    s->pval_x.push_back(r->val.inputs[i]);
    pval_valid.push_back(r->val.valid[i]);
    s->pval_y.push_back(r->val.defective[i]);
  }
  s->pval_on = pval_valid.empty() ? torch::Tensor() : torch::stack(pval_valid);
  s->val_cost = per_image * s->pval_x.size();
}

// Seg-branch image AUROC of the EMA network on the validation subset, every
// --val-every seconds (while there is time for it before the budget ends).
void PeriodicValidation(TrainRun* r, LoopState* s, double t) {
  const TrainOptions& opt = r->opt;
  if (!r->val.has_defects || opt.val_every <= 0 || t < s->next_val ||
      !(opt.steps > 0 || t + s->val_cost < s->train_time))
    return;
  r->ema->eval();
  torch::Tensor seg = RunSeg(r->ema, s->pval_x);
  std::vector<float> sc = ReduceScores(OnImage(seg, s->pval_on), "max", opt.topk);
  double a = Auroc(sc, s->pval_y);
  r->net->train();
  char buf[64];
  std::snprintf(buf, sizeof(buf), " | val AUROC %.3f", a);
  s->last_val = buf;
  if (!r->tty || opt.quiet)
    std::fprintf(stderr, "  step %d (%s): val image AUROC %.3f (seg, max)\n", r->step,
                 FormatTime(t).c_str(), a);
  s->next_val = t + opt.val_every;
}

// A progress bar on a terminal (twice a second), else a line every 30 s.
void PrintProgress(const TrainRun& r, LoopState* s, double t) {
  if (r.opt.quiet || (r.tty ? t - s->last_print < 0.5 : t - s->last_print < 30)) return;
  s->last_print = t;
  const double done = Progress(r, *s, t);
  const double left = r.opt.steps > 0 ? t / r.step * (r.opt.steps - r.step) : s->train_time - t;
  int bar = int(30 * std::min(1.0, done));
  std::fprintf(stderr, "%s[%s%s] %3d%% ETA %s | step %d | loss %.4f%s%s", r.tty ? "\r" : "",
               std::string(bar, '#').c_str(), std::string(30 - bar, '.').c_str(), int(100 * done),
               FormatTime(left + s->tail).c_str(), r.step, s->loss_avg, s->last_val.c_str(),
               r.tty ? "   " : "\n");
  std::fflush(stderr);
}

// Trains the seg branch on synthetic anomalies (batches made on a separate
// thread) for --steps steps or the time budget, with warm-up + cosine
// learning rate and an EMA of the weights; Ctrl-C ends it early.
void TrainNetwork(TrainRun* r) {
  const TrainOptions& opt = r->opt;
  LoopState s;
  PlanTraining(r, &s);
  int crop_h = std::min(r->in_h, std::max(16, opt.crop / 8 * 8));
  int crop_w = std::min(r->in_w, std::max(16, opt.crop / 8 * 8));
  BatchMaker maker(&r->pool, &r->pre, &opt, crop_h, crop_w, uint32_t(opt.seed) * 2654435761u + 1);
  torch::optim::Adam optim(r->net->parameters(),
                           torch::optim::AdamOptions(opt.lr).weight_decay(1e-5));
  s.start = Clock::now();
  s.train_time = std::max(5.0, opt.minutes * 60.0 - Seconds(r->t0) - s.tail);
  s.next_val = opt.val_every;
  {
    BatchQueue queue(&maker);
    // Auto: between 1 thread and all cores but the data thread's (at least 2).
    const int hw = int(std::thread::hardware_concurrency());
    std::optional<ThreadTuner> tuner;
    if (r->fixed_threads == 0)
      tuner.emplace(std::max(2, hw - 1), 60.0, 25, [](int n) { torch::set_num_threads(n); });
    r->net->train();
    while (!g_interrupted) {
      double t = Seconds(s.start);
      if (Progress(*r, s, t) >= 1) break;
      const double step_start = t;
      double frac = Progress(*r, s, t);
      double lr = opt.lr * (frac < 0.03 ? frac / 0.03 : 0.5 * (1 + std::cos(M_PI * frac)));
      for (auto& g : optim.param_groups())
        static_cast<torch::optim::AdamOptions&>(g.options()).lr(lr);
      Batch b = queue.Pop();
      NetOutputs o = r->net->forward(b.x);
      torch::Tensor loss = torch::binary_cross_entropy_with_logits(o.seg, b.y);
      optim.zero_grad();
      loss.backward();
      optim.step();
      ++r->step;
      EmaUpdate(r->ema, r->net, r->step < 100 ? 0.9f : 0.995f);
      float lv = loss.item<float>();
      if (tuner && tuner->OnStep(Seconds(s.start) - step_start, Seconds(s.start)) && !r->tty &&
          !opt.quiet) {
        std::fprintf(stderr, "  step %d: now %d LibTorch thread%s (faster)\n", r->step,
                     tuner->threads(), tuner->threads() == 1 ? "" : "s");
      }
      s.loss_avg = r->step == 1 ? lv : 0.98 * s.loss_avg + 0.02 * lv;
      t = Seconds(s.start);
      PeriodicValidation(r, &s, t);
      PrintProgress(*r, &s, t);
    }
  }
  if (r->tty && !opt.quiet) std::fprintf(stderr, "\n");
  if (g_interrupted) std::fprintf(stderr, "interrupted: finishing with the weights so far\n");
  r->trained_s = Seconds(s.start);
  r->ema->eval();
}

// ---- 4. densities: Gaussians of the features of good training images ----------

// Running mean and covariance of feature vectors; Whiten gives (W, b) such
// that |W x + b|^2 is the squared Mahalanobis distance, with the covariance
// regularised by 1 % of its mean variance (fit::ShrunkWhitening: W is the
// inverse of its Cholesky factor).
struct GaussianFit {
  explicit GaussianFit(int64_t c)
      : sum(torch::zeros({c}, torch::kFloat64)), outer(torch::zeros({c, c}, torch::kFloat64)) {}
  // `valid` (optional, N x 1 x H x W bool): only these cells count.
  void Add(const torch::Tensor& nchw, const torch::Tensor& valid = {}) {
    torch::Tensor f = nchw.permute({0, 2, 3, 1}).reshape({-1, sum.size(0)}).to(torch::kFloat64);
    if (valid.defined()) f = f.index({valid.reshape({-1})});
    sum += f.sum(0);
    outer += f.t().mm(f);
    count += double(f.size(0));
  }
  Status Whiten(torch::Tensor* w_out, torch::Tensor* b_out) const {
    const int64_t c = sum.size(0);
    torch::Tensor mu = sum / count;
    torch::Tensor cov = (outer / count - torch::outer(mu, mu)).contiguous();
    const double reg = 0.01 * cov.diagonal().mean().item<double>() + 1e-6;
    std::vector<double> a(cov.data_ptr<double>(), cov.data_ptr<double>() + c * c), w;
    FLAWLENS_RETURN_IF_ERROR(fit::ShrunkWhitening(&a, int(c), 0.0, reg, &w));
    torch::Tensor wt = torch::from_blob(w.data(), {c, c}, torch::kFloat64).clone();
    w_out->copy_(wt.to(torch::kFloat32));
    b_out->copy_((-wt.mv(mu)).to(torch::kFloat32));
    return Status::Ok();
  }
  torch::Tensor sum, outer;
  double count = 0;
};

// Runs `fn(outputs, first, end)` on the EMA network over `xs` in batches of 8.
template <typename Fn>
void ForBatches(FlawNet& net, const std::vector<torch::Tensor>& xs, Fn fn) {
  for (size_t i = 0; i < xs.size(); i += 8) {
    size_t e = std::min(xs.size(), i + 8);
    torch::Tensor x = torch::stack(std::vector<torch::Tensor>(xs.begin() + i, xs.begin() + e));
    fn(net->forward(x), i, e);
  }
}

// Nearest-neighbour bank (--bank): a k-centre greedy coreset of whitened
// features of a random subset of cells.
void FitBank(TrainRun* r, const std::vector<torch::Tensor>& fit_x) {
  const int f = r->ema->feature_channels();
  torch::Tensor feats;
  {
    std::vector<torch::Tensor> fs;
    torch::Generator gen = at::detail::createCPUGenerator(r->opt.seed + 5);
    ForBatches(r->ema, fit_x, [&](const NetOutputs& o, size_t, size_t) {
      torch::Tensor ft = o.features.permute({0, 2, 3, 1}).reshape({-1, f});
      int64_t take = std::min<int64_t>(ft.size(0), 40000 / int64_t((fit_x.size() + 7) / 8) + 1);
      fs.push_back(ft.index_select(0, torch::randperm(ft.size(0), gen).slice(0, 0, take)));
    });
    feats = torch::cat(fs);
  }
  torch::Tensor z = feats.mm(r->ema->dens_w.t()) + r->ema->dens_b;  // whitened
  int k = std::min<int>(r->opt.bank, int(z.size(0)));
  std::vector<int64_t> chosen = {0};
  torch::Tensor mind = (z - z[0]).pow(2).sum(1);
  for (int j = 1; j < k; ++j) {
    int64_t next = mind.argmax().item<int64_t>();
    chosen.push_back(next);
    mind = torch::minimum(mind, (z - z[next]).pow(2).sum(1));
  }
  torch::Tensor b = z.index_select(0, torch::tensor(chosen));
  r->ema->bank.set_data(b.clone());  // (a loaded buffer's storage cannot be resized)
}

// The density branch (Gaussian of the 1/4 features), the fine density on the
// stem features (--fine-density) and the image-level term (a Gaussian of the
// images' mean feature vectors, --global-weight), fitted on at most 200
// training images, evenly spaced.
Status FitDensities(TrainRun* r) {
  const TrainOptions& opt = r->opt;
  r->global = opt.global_weight > 0;
  if (!opt.density && !opt.fine_density && !r->global) return Status::Ok();
  std::vector<torch::Tensor> fit_x, fit_valid;
  const size_t n_fit = std::min<size_t>(r->train_x.size(), 200);
  for (size_t i = 0, next = 0; i < r->train_x.size(); ++i) {
    if (next < n_fit && i == next * r->train_x.size() / n_fit) {
      fit_x.push_back(r->train_x[i]);
      fit_valid.push_back(r->train_valid[i]);
      ++next;
    }
  }
  torch::NoGradGuard ng;
  FlawNet& ema = r->ema;
  const int64_t g = ema->global_channels();
  GaussianFit dens_fit(ema->feature_channels()), fine_fit(ema->fine_w.size(0)), glob_fit(g);
  ForBatches(ema, fit_x, [&](const NetOutputs& o, size_t i, size_t e) {
    torch::Tensor valid =
        torch::stack(std::vector<torch::Tensor>(fit_valid.begin() + i, fit_valid.begin() + e));
    if (opt.density) dens_fit.Add(o.features, valid);
    if (opt.fine_density) {
      fine_fit.Add(o.fine, valid.repeat_interleave(2, 2).repeat_interleave(2, 3));
    }
    if (r->global) glob_fit.Add(ema->global_descriptor(o).view({-1, g, 1, 1}));
  });
  if (opt.density) FLAWLENS_RETURN_IF_ERROR(dens_fit.Whiten(&ema->dens_w, &ema->dens_b));
  if (opt.fine_density) FLAWLENS_RETURN_IF_ERROR(fine_fit.Whiten(&ema->fine_w, &ema->fine_b));
  if (r->global) FLAWLENS_RETURN_IF_ERROR(glob_fit.Whiten(&ema->glob_w, &ema->glob_b));
  if (opt.density && opt.bank > 0) FitBank(r, fit_x);
  return Status::Ok();
}

// Branch maps of `xs`: one pass each (branches that are off stay undefined).
void RunBranches(TrainRun* r, const std::vector<torch::Tensor>& xs, torch::Tensor* seg,
                 torch::Tensor* dens, torch::Tensor* fine, torch::Tensor* glob) {
  const TrainOptions& opt = r->opt;
  FlawNet& ema = r->ema;
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> segs, ds, fs, gs;
  ForBatches(ema, xs, [&](const NetOutputs& o, size_t, size_t) {
    segs.push_back(o.seg);
    if (opt.density) ds.push_back(ema->density_map(o.features));
    if (opt.fine_density) fs.push_back(ema->fine_map(o.fine));
    if (r->global) gs.push_back(ema->global_distance(ema->global_descriptor(o)));
  });
  *seg = torch::cat(segs);
  if (opt.density) *dens = torch::cat(ds);
  if (opt.fine_density) *fine = torch::cat(fs);
  if (r->global) *glob = torch::cat(gs);
}

// Standardises the branch maps on the held-out good images (cells over the
// image): the mean and std of each branch go into the network's combine
// weights, the image-level term's into its statistics.
void StandardiseBranches(TrainRun* r) {
  const TrainOptions& opt = r->opt;
  FlawNet& ema = r->ema;
  r->hold_bucket_t = torch::stack(r->hold_buckets);
  r->hold_on = r->hold_bucket_t >= 0;
  const torch::Tensor& on = r->hold_on;
  torch::Tensor s = r->hold_seg.masked_select(on), d, fi;
  float c[6] = {s.mean().item<float>(), std::max(1e-4f, s.std().item<float>()), 0.0f, 1.0f,
                0.0f, 1.0f};
  if (opt.density) {
    d = r->hold_dens.masked_select(on);
    c[2] = d.mean().item<float>();
    c[3] = std::max(1e-4f, d.std().item<float>());
    ema->density_fitted = true;
  }
  if (opt.fine_density) {
    fi = r->hold_fine.masked_select(on);
    c[4] = fi.mean().item<float>();
    c[5] = std::max(1e-4f, fi.std().item<float>());
    ema->fine_fitted = true;
  }
  ema->combine.copy_(torch::tensor({c[0], c[1], c[2], c[3], c[4], c[5]}));
  if (r->global) {
    float gm = r->hold_glob.mean().item<float>();
    float gsd = r->hold_glob.numel() > 1 ? r->hold_glob.std().item<float>() : 1.0f;
    ema->glob_stats.copy_(torch::tensor({gm, std::max(1e-4f, gsd)}));
    ema->global_fitted = true;
  }
}

// ---- 5. calibration on held-out good images ----------------------------------

struct MapCalibration {
  fit::CellCalibration cells;
  EdgeCalibration edge;
};

// The exported pipeline's map before calibration: the network's combined map
// (net.h), then the detector's map blur.
torch::Tensor PipelineMaps(const TrainRun& r, const torch::Tensor& seg, const torch::Tensor& dens,
                           const torch::Tensor& fine = {}, const torch::Tensor& glob = {}) {
  return BlurMaps(r.ema->combine_maps(seg, dens, fine, glob), r.opt.map_blur);
}

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

// How much the per-cell std is trusted (positional structure vs the noise of
// few held-out images), chosen by a map-level simulation: the held-out set is
// split in halves; one half fits the calibration, the other gets Gaussian
// bumps of a few heights added to its raw maps at random places; the shrink
// with the best mean AUROC (bumped vs clean) wins.
Result<float> ChooseShrink(const TrainRun& r, const MapCalibrator& calibrator,
                           const torch::Tensor& hold_maps) {
  const TrainOptions& opt = r.opt;
  const int map_h = r.map_h, map_w = r.map_w;
  int64_t n = hold_maps.size(0);
  if (n < 8) return 1.0f;
  torch::Tensor even = hold_maps.slice(0, 0, n, 2), odd = hold_maps.slice(0, 1, n, 2);
  float gsd = hold_maps.std().item<float>();
  std::mt19937 rng(opt.seed + 99);
  // Bumped copies of each test map (same bumps for every candidate).
  auto bumped = [&](const torch::Tensor& maps, float height) {
    torch::Tensor out = maps.clone();
    torch::Tensor yy = torch::arange(map_h).view({map_h, 1}).to(torch::kFloat32);
    torch::Tensor xx = torch::arange(map_w).view({1, map_w}).to(torch::kFloat32);
    for (int64_t i = 0; i < out.size(0); ++i) {
      float cy = std::uniform_real_distribution<float>(0, map_h - 1)(rng);
      float cx = std::uniform_real_distribution<float>(0, map_w - 1)(rng);
      torch::Tensor g = torch::exp(-((yy - cy).pow(2) + (xx - cx).pow(2)) / (2 * 1.5f * 1.5f));
      out[i][0] += height * gsd * g;
    }
    return out;
  };
  std::vector<std::pair<torch::Tensor, torch::Tensor>> folds = {{even, odd}, {odd, even}};
  std::vector<std::vector<torch::Tensor>> bumps(2);
  for (int f = 0; f < 2; ++f)
    for (float hgt : {2.0f, 4.0f, 8.0f}) bumps[f].push_back(bumped(folds[f].second, hgt));
  double best = -1;
  float shrink = opt.cell_std_shrink;
  std::string line;
  for (float cand : {0.0f, 0.5f, 0.8f, 1.0f}) {
    double sum = 0;
    int cnt = 0;
    for (int f = 0; f < 2; ++f) {
      FLAWLENS_ASSIGN_OR_RETURN(fit::CellCalibration cc, calibrator.FitCells(folds[f].first, cand));
      std::vector<float> good = ReduceScores(ApplyCells(folds[f].second, cc), opt.reduce, opt.topk);
      for (const torch::Tensor& b : bumps[f]) {
        std::vector<float> bad = ReduceScores(ApplyCells(b, cc), opt.reduce, opt.topk);
        std::vector<float> sc = good;
        sc.insert(sc.end(), bad.begin(), bad.end());
        std::vector<bool> lab(good.size(), false);
        lab.insert(lab.end(), bad.size(), true);
        sum += Auroc(sc, lab);
        ++cnt;
      }
    }
    double auc = sum / cnt;
    char buf[48];
    std::snprintf(buf, sizeof(buf), " %.1f:%.3f", cand, auc);
    line += buf;
    if (auc > best + 1e-9) { best = auc; shrink = cand; }
  }
  if (!opt.quiet)
    std::fprintf(stderr, "cell std shrink (simulated bump AUROC)%s -> %.1f\n", line.c_str(), shrink);
  return shrink;
}

// The map calibration and the score calibration (threshold in standard
// deviations of held-out good scores above their mean: sensitivity 0.5 -> 3,
// 1 -> 0, 0 -> 6).
Result<MapCalibration> Calibrate(TrainRun* r, const MapCalibrator& calibrator) {
  const TrainOptions& opt = r->opt;
  torch::Tensor hold_maps = PipelineMaps(*r, r->hold_seg, r->hold_dens, r->hold_fine, r->hold_glob);
  float shrink = opt.cell_std_shrink;
  if (r->cell_calibration && shrink < 0) {
    FLAWLENS_ASSIGN_OR_RETURN(shrink, ChooseShrink(*r, calibrator, hold_maps));
  }
  if (shrink < 0) shrink = 1.0f;
  r->shrink = shrink;
  r->metrics["cell_std_shrink"] = shrink;
  FLAWLENS_ASSIGN_OR_RETURN(MapCalibration map_cal, calibrator.Fit(hold_maps, shrink));
  std::vector<float> hold_scores =
      ReduceScores(calibrator.Apply(hold_maps, map_cal, false), opt.reduce, opt.topk);
  r->cal = ScoreCalibration(hold_scores, opt.sensitivity);
  const double hmean = r->cal.offset, hsd = r->cal.scale;
  float mx = -1e30f;
  for (float v : hold_scores) mx = std::max(mx, float((v - hmean) / hsd));
  r->metrics["holdout_good_max_score"] = mx;
  return map_cal;
}

// ---- 6. validation metrics with the full pipeline -----------------------------

// Analysis: each branch alone, cell-calibrated on held-out good images.
void ReportBranches(TrainRun* r, const MapCalibrator& calibrator) {
  const TrainOptions& opt = r->opt;
  FlawNet& ema = r->ema;
  auto report = [&](const char* what, const torch::Tensor& hm, const torch::Tensor& vm) {
    auto fitted = calibrator.Fit(hm, r->shrink);
    if (!fitted.ok()) {
      std::fprintf(stderr, "  [%s] %s\n", what, fitted.status().ToString().c_str());
      return;
    }
    torch::Tensor cal_v = calibrator.Apply(vm, *fitted, true);
    for (const char* red : {"max", "topk_mean"}) {
      std::vector<float> sc = ReduceScores(cal_v, red, opt.topk);
      std::fprintf(stderr, "  [%s, %s] val image AUROC %.3f\n", what, red,
                   Auroc(sc, r->val.defective));
    }
  };
  report("seg", PipelineMaps(*r, r->hold_seg, {}), PipelineMaps(*r, r->val_seg, {}));
  if (opt.density) {
    NetConfig saved = ema->config;
    ema->config.seg_weight = 0;
    report("density", PipelineMaps(*r, r->hold_seg, r->hold_dens),
           PipelineMaps(*r, r->val_seg, r->val_dens));
    ema->config = saved;
  }
  if (opt.fine_density) {
    NetConfig saved = ema->config;
    ema->config.seg_weight = 0;
    report("fine density", PipelineMaps(*r, r->hold_seg, {}, r->hold_fine),
           PipelineMaps(*r, r->val_seg, {}, r->val_fine));
    ema->config = saved;
  }
}

// Validation AUROCs of the exported pipeline, and the F1-optimal threshold
// (stored in the calibration) against the calibrated one.
void Validate(TrainRun* r, const MapCalibrator& calibrator, const MapCalibration& map_cal) {
  const TrainOptions& opt = r->opt;
  const ValSet& val = r->val;
  if (!opt.quiet) ReportBranches(r, calibrator);
  if (r->global && !opt.quiet) {
    const torch::Tensor& vg = r->val_glob;
    std::vector<float> g(vg.data_ptr<float>(), vg.data_ptr<float>() + vg.numel());
    std::fprintf(stderr, "  [image-level term alone] val image AUROC %.3f\n",
                 Auroc(g, val.defective));
  }
  torch::Tensor vmaps = calibrator.Apply(
      PipelineMaps(*r, r->val_seg, r->val_dens, r->val_fine, r->val_glob), map_cal, true);
  std::vector<float> vs = ReduceScores(vmaps, opt.reduce, opt.topk);
  const double hmean = r->cal.offset, hsd = r->cal.scale;
  for (float& v : vs) v = float((v - hmean) / hsd);
  PrintAurocs(val, vs, vmaps, &r->metrics, opt.quiet);
  const cli::F1Score best = cli::BestF1(vs, val.defective);
  if (std::isfinite(best.threshold)) r->cal.f1_threshold = float(best.threshold);
  r->metrics["val_best_f1"] = best.f1;
  const cli::F1Score at = cli::F1AtThreshold(vs, val.defective, r->cal.threshold);
  std::printf("at the calibrated threshold %.2f: %d/%d defective flagged, %d/%d good flagged; "
              "F1-optimal threshold %.2f (F1 %.3f)\n",
              r->cal.threshold, int(at.tp), int(at.tp + at.fn), int(at.fp), int(at.fp + at.tn),
              r->cal.f1_threshold, best.f1);
}

// ---- 7. export -----------------------------------------------------------------

// A [rows x cols] float tensor of the model file.
ModelTensor ToModelTensor(const std::string& name, int64_t rows, int64_t cols,
                          std::vector<float> data) {
  return ModelTensor{name, {rows, cols}, std::move(data)};
}
ModelTensor ToModelTensor(const std::string& name, int64_t rows, int64_t cols,
                          const torch::Tensor& t) {
  return ToModelTensor(name, rows, cols, MapPlanes(t));
}

// The model card (FORMAT.md): what was trained on what, how, and its metrics.
std::string ModelCard(const TrainRun& r) {
  const TrainOptions& opt = r.opt;
  std::string name = opt.name;
  if (name.empty()) {
    std::string d = opt.data;
    while (d.size() > 1 && d.back() == '/') d.pop_back();
    name = Basename(d);
  }
  char created[32];
  std::time_t now = std::time(nullptr);
  std::strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  json card = {{"name", name},
               {"created", created},
               {"method", std::string("seg+gaussian-density") + (opt.fine_density ? "+fine-density" : "") +
                              (r.global ? "+image-level-density" : "") +
                              (r.scale_mode ? ", fixed pixel scale, edge-calibrated"
                                            : ", per-cell calibrated") +
                              " (docs/METHOD.md)"},
               {"trained_on", opt.data},
               {"train_images", r.train_imgs.size()},
               {"holdout_images", r.hold_imgs.size()},
               {"gflops_per_frame", r.gflops},
               {"seed", opt.seed},
               {"interrupted", g_interrupted.load()},
               {"metrics", r.metrics}};
  // What decided the training length: a step count (repeatable) or a time budget.
  if (opt.steps > 0)
    card["steps"] = opt.steps;
  else
    card["minutes"] = opt.minutes;
  return card.dump();
}

// The model file: network graph, preprocessing, postprocessing with the map
// calibration tensors, score calibration and card.
std::vector<uint8_t> BuildModelFile(TrainRun* r, const MapCalibration& map_cal) {
  const TrainOptions& opt = r->opt;
  ModelSpec spec;
  ExportNetwork(r->ema, r->in_h, r->in_w, &spec);
  spec.preprocess_json = PreprocessToJson(r->pre);
  json post = {{"sigmoid", false}, {"blur_sigma", opt.map_blur}, {"reduce", opt.reduce},
               {"topk_fraction", opt.topk}};
  if (r->cell_calibration) {
    post["cell_mean"] = "calib.cell_mean";
    post["cell_std"] = "calib.cell_std";
    spec.tensors.push_back(ToModelTensor("calib.cell_mean", r->map_h, r->map_w, map_cal.cells.mean));
    spec.tensors.push_back(ToModelTensor("calib.cell_std", r->map_h, r->map_w, map_cal.cells.std));
  }
  if (r->edge_calibration) {
    post["edge_mean"] = "calib.edge_mean";
    post["edge_std"] = "calib.edge_std";
    const int64_t k = map_cal.edge.s;
    spec.tensors.push_back(ToModelTensor("calib.edge_mean", k, k, map_cal.edge.mean));
    spec.tensors.push_back(ToModelTensor("calib.edge_std", k, k, map_cal.edge.std));
  }
  spec.postprocess_json = post.dump();
  spec.calibration_json = CalibrationToJson(r->cal);
  spec.card_json = ModelCard(*r);
  return WriteModel(spec);
}

// Self-check of a written model: the engine loads the file and reproduces
// LibTorch's map of a held-out image.
Status CheckExport(TrainRun* r, const std::vector<uint8_t>& bytes) {
  auto det = Detector::Create(bytes.data(), bytes.size());
  if (!det.ok()) return MakeError(ErrorCode::kInternal, "written model does not load: %s",
                                  det.status().ToString().c_str());
  torch::Tensor x = r->hold_x[0];
  torch::Tensor hwc = x.permute({1, 2, 0}).contiguous();
  std::vector<float> in(hwc.data_ptr<float>(), hwc.data_ptr<float>() + hwc.numel());
  std::vector<float> out((*det)->network_output_count());
  FLAWLENS_RETURN_IF_ERROR((*det)->RunNetwork(in.data(), in.size(), out.data(), out.size()));
  torch::Tensor ref;
  {
    torch::NoGradGuard ng;
    ref = r->ema->forward_map(x.unsqueeze(0)).contiguous();
  }
  float maxdiff = 0, maxref = 0;
  for (int64_t i = 0; i < ref.numel(); ++i) {
    maxdiff = std::max(maxdiff, std::fabs(out[i] - ref.data_ptr<float>()[i]));
    maxref = std::max(maxref, std::fabs(ref.data_ptr<float>()[i]));
  }
  std::fprintf(stderr, "engine vs LibTorch map: max |diff| %.2g (max |map| %.3g)\n", maxdiff, maxref);
  if (!(maxdiff <= 1e-3f * std::max(1.0f, maxref)))
    return MakeError(ErrorCode::kInternal,
                     "exported network disagrees with LibTorch: max |diff| %g (max |map| %g)",
                     maxdiff, maxref);
  return Status::Ok();
}

// Writes the model file (through a temporary file: a failed write keeps the
// file that was there), checks it on the engine and prints the summary.
Status Export(TrainRun* r, const MapCalibration& map_cal) {
  std::vector<uint8_t> bytes = BuildModelFile(r, map_cal);
  FLAWLENS_RETURN_IF_ERROR(cli::WriteFileBytes(r->opt.out, bytes));
  FLAWLENS_RETURN_IF_ERROR(CheckExport(r, bytes));
  std::printf("wrote %s (%zu bytes): %d steps in %s, %.2f GFLOP/frame, threshold %.2f; "
              "total %s wall, %.0f CPU s\n",
              r->opt.out.c_str(), bytes.size(), r->step, FormatTime(r->trained_s).c_str(),
              r->gflops, r->cal.threshold, FormatTime(Seconds(r->t0)).c_str(),
              double(std::clock()) / CLOCKS_PER_SEC);
  return Status::Ok();
}

}  // namespace

Status RunTraining(const TrainOptions& opt) {
  TrainRun run(opt);
  TrainRun* r = &run;
  // A step-counted run is meant to be repeatable, and LibTorch's float sums
  // depend on the thread count: auto then means one thread, not the tuner.
  r->fixed_threads = opt.threads > 0 ? opt.threads : opt.steps > 0 ? 1 : 0;
  if (r->fixed_threads > 0) torch::set_num_threads(r->fixed_threads);
  torch::manual_seed(opt.seed);
  g_interrupted = false;
  auto old_handler = std::signal(SIGINT, OnSigint);
  struct Restore {
    decltype(old_handler) h;
    ~Restore() { std::signal(SIGINT, h); }
  } restore{old_handler};
  r->tty = isatty(2);

  {
    std::vector<Loaded> loaded;
    FLAWLENS_RETURN_IF_ERROR(LoadTrainingImages(r, &loaded));
    FLAWLENS_RETURN_IF_ERROR(ChooseInput(r, loaded));
    SplitHoldout(r, std::move(loaded));
  }
  // The detector's map blur reflects once at the map's borders.
  const int blur_radius = opt.map_blur > 0 ? int(fit::MapBlurKernel(opt.map_blur).size() / 2) : 0;
  if (blur_radius >= std::min(r->map_h, r->map_w)) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "--map-blur %g: the blur's radius (%d cells) does not fit the %dx%d map; "
                     "use a smaller --map-blur or a larger input",
                     double(opt.map_blur), blur_radius, r->map_w, r->map_h);
  }
  FLAWLENS_RETURN_IF_ERROR(PrepareInputs(r));
  LoadValidation(r);
  BuildNetwork(r);
  TrainNetwork(r);

  FLAWLENS_RETURN_IF_ERROR(FitDensities(r));
  RunBranches(r, r->hold_x, &r->hold_seg, &r->hold_dens, &r->hold_fine, &r->hold_glob);
  if (r->val.has_defects)
    RunBranches(r, r->val.inputs, &r->val_seg, &r->val_dens, &r->val_fine, &r->val_glob);
  StandardiseBranches(r);

  r->cell_calibration = opt.cell_calibration && !r->scale_mode;
  r->edge_calibration = opt.cell_calibration && r->scale_mode;
  const MapCalibrator calibrator(*r);
  FLAWLENS_ASSIGN_OR_RETURN(const MapCalibration map_cal, Calibrate(r, calibrator));
  r->metrics["train_seconds"] = r->trained_s;
  r->metrics["steps"] = r->step;
  if (r->val.has_defects) Validate(r, calibrator, map_cal);
  return Export(r, map_cal);
}

}  // namespace flawlens::train
