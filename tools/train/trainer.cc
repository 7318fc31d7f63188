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
#include <fstream>
#include <map>
#include <mutex>
#include <numeric>
#include <optional>
#include <random>
#include <thread>

#include "cli/cli_util.h"
#include "cli/dataset.h"
#include "core/limits.h"
#include "flawlens/detector.h"
#include "image/preprocess.h"
#include "model/model.h"
#include "train/cell_calibration.h"
#include "train/gaussian_fit.h"
#include "train/net.h"
#include "train/research.h"
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

// F1-optimal threshold over scores.
float F1Threshold(const std::vector<float>& scores, const std::vector<bool>& labels, float* best_f1) {
  std::vector<size_t> idx(scores.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return scores[a] > scores[b]; });
  int pos = 0;
  for (bool l : labels) pos += l;
  int tp = 0, fp = 0;
  float best = -1, thr = scores.empty() ? 0 : scores[idx[0]];
  for (size_t r = 0; r < idx.size(); ++r) {
    if (labels[idx[r]]) ++tp; else ++fp;
    if (r + 1 < idx.size() && scores[idx[r + 1]] == scores[idx[r]]) continue;
    float f1 = pos > 0 ? 2.0f * tp / (tp + fp + pos) : 0;
    if (f1 > best) {
      best = f1;
      thr = scores[idx[r]];
    }
  }
  *best_f1 = best;
  return thr;
}

// Research hooks: weights saved by FLAWLENS_TRAIN_SAVE_NET, named by the
// environment variable `var`, into each of `nets`.
Status LoadSavedWeights(const char* var, const char* path, std::initializer_list<FlawNet*> nets) {
  try {
    for (FlawNet* n : nets) torch::load(*n, path);
  } catch (const c10::Error& e) {
    return MakeError(ErrorCode::kInvalidArgument, "%s=%s: %s", var, path, e.what_without_backtrace());
  }
  return Status::Ok();
}

// EMA of parameters and buffers.
void EmaUpdate(FlawNet& ema, FlawNet& net, float decay) {
  torch::NoGradGuard ng;
  auto ep = ema->parameters(), np = net->parameters();
  for (size_t i = 0; i < ep.size(); ++i) ep[i].mul_(decay).add_(np[i], 1 - decay);
  auto eb = ema->buffers(), nb = net->buffers();
  for (size_t i = 0; i < eb.size(); ++i) eb[i].copy_(nb[i]);
}

}  // namespace

Status RunTraining(const TrainOptions& opt) {
  const Clock::time_point t0 = Clock::now();
  const double budget = opt.minutes * 60.0;
  // A step-counted run is meant to be repeatable, and LibTorch's float sums
  // depend on the thread count: auto then means one thread, not the tuner.
  const int fixed_threads = opt.threads > 0 ? opt.threads : opt.steps > 0 ? 1 : 0;
  if (fixed_threads > 0) torch::set_num_threads(fixed_threads);
  torch::manual_seed(opt.seed);
  g_interrupted = false;
  auto old_handler = std::signal(SIGINT, OnSigint);
  struct Restore {
    decltype(old_handler) h;
    ~Restore() { std::signal(SIGINT, h); }
  } restore{old_handler};
  const bool tty = isatty(2);

  // ---- 1. training images ----
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
  std::vector<Loaded> loaded;
  std::vector<std::string> skipped;
  for (const auto& p : paths) {
    auto bytes = cli::ReadFileBytes(p);
    if (!bytes.ok()) { skipped.push_back(p + " (" + bytes.status().message() + ")"); continue; }
    auto img = DecodeImage(bytes->data(), bytes->size());
    if (!img.ok()) { skipped.push_back(p + " (" + img.status().message() + ")"); continue; }
    loaded.push_back({p, std::move(*img)});
  }
  if (!skipped.empty()) {
    std::fprintf(stderr, "skipped %zu unreadable image(s):\n", skipped.size());
    for (const auto& s : skipped) std::fprintf(stderr, "  %s\n", s.c_str());
  }
  if (loaded.size() < 2)
    return MakeError(ErrorCode::kInvalidArgument,
                     "%s: need at least 2 readable good images, found %zu", opt.data.c_str(),
                     loaded.size());

  // Channels and input size.
  int channels = opt.channels;
  if (channels == 0) {
    channels = 1;
    for (const auto& l : loaded)
      if (l.image.format != PixelFormat::kGray8) channels = 3;
  }
  // Fit: stretch every image to the input, or keep one pixel scale (aspect
  // and texture size kept; images of varying size sit on a mirror-padded
  // canvas and only the cells over the image are scored).
  bool scale_mode = opt.fit == "scale";
  if (opt.fit == "auto") {
    int min_w = INT_MAX, max_w = 0, min_h = INT_MAX, max_h = 0;
    for (const auto& l : loaded) {
      min_w = std::min(min_w, l.image.width);
      max_w = std::max(max_w, l.image.width);
      min_h = std::min(min_h, l.image.height);
      max_h = std::max(max_h, l.image.height);
    }
    scale_mode = max_w > 1.2 * min_w || max_h > 1.2 * min_h;
  } else if (!scale_mode && opt.fit != "stretch") {
    return MakeError(ErrorCode::kInvalidArgument, "--fit must be auto, stretch or scale (got '%s')",
                     opt.fit.c_str());
  }
  float pixel_scale = 0;
  auto scaled = [&](int len) { return std::max(1, int(std::lround(len * double(pixel_scale)))); };
  int in_w = opt.input_w, in_h = opt.input_h;
  if (scale_mode) {
    std::vector<double> areas;
    for (const auto& l : loaded) areas.push_back(double(l.image.width) * l.image.height);
    std::nth_element(areas.begin(), areas.begin() + areas.size() / 2, areas.end());
    pixel_scale = opt.pixel_scale > 0
                      ? opt.pixel_scale
                      : float(std::sqrt(double(opt.size) * opt.size / areas[areas.size() / 2]));
    if (in_w <= 0 || in_h <= 0) {
      // The canvas holds the largest scaled image, up to 3x the area of
      // --size^2 (beyond that the centre is used).
      int max_w = 16, max_h = 16;
      for (const auto& l : loaded) {
        max_w = std::max(max_w, scaled(l.image.width));
        max_h = std::max(max_h, scaled(l.image.height));
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
  in_w = std::max(16, in_w / 8 * 8);
  in_h = std::max(16, in_h / 8 * 8);
  const int map_h = in_h / 4, map_w = in_w / 4;

  // Hold out whole groups (near-copies stay together) for calibration.
  std::vector<Loaded> train_imgs, hold_imgs;
  {
    std::map<std::string, std::vector<size_t>> groups;
    for (size_t i = 0; i < loaded.size(); ++i) groups[cli::GroupKey(loaded[i].path)].push_back(i);
    std::vector<std::vector<size_t>> glist;
    for (auto& g : groups) glist.push_back(g.second);
    std::mt19937 rng(opt.seed * 7919u + 17u);
    std::shuffle(glist.begin(), glist.end(), rng);
    size_t want = std::max<size_t>(1, size_t(std::lround(opt.holdout * loaded.size())));
    std::vector<bool> hold(loaded.size(), false);
    size_t n = 0;
    for (auto& g : glist) {
      if (n >= want || glist.size() < 2) break;
      if (n + g.size() > loaded.size() - 1) continue;
      for (size_t i : g) hold[i] = true;
      n += g.size();
    }
    for (size_t i = 0; i < loaded.size(); ++i)
      (hold[i] ? hold_imgs : train_imgs).push_back(std::move(loaded[i]));
  }
  if (hold_imgs.empty()) {  // tiny set: calibrate on a training image
    hold_imgs.push_back(train_imgs.back());
  }

  // Resized raw training images (fixed scale: each at its own scaled size).
  std::vector<FloatImage> pool;
  for (const auto& l : train_imgs) {
    PreprocessConfig raw = RawConfig(in_w, in_h, channels);
    if (scale_mode) raw = RawConfig(scaled(l.image.width), scaled(l.image.height), channels);
    auto r = Prep(l.image.view(), raw);
    if (!r.ok()) return r.status();
    FloatImage f;
    f.h = raw.resize_h;
    f.w = raw.resize_w;
    f.c = channels;
    f.data = std::move(*r);
    pool.push_back(std::move(f));
  }

  // Model preprocessing: normalisation statistics from the training images.
  PreprocessConfig pre;
  pre.resize_w = in_w;
  pre.resize_h = in_h;
  pre.channels = channels;
  pre.scale = 1.0f / 255.0f;
  pre.pixel_scale = pixel_scale;
  if (opt.norm == "lcn") {
    pre.norm = NormMode::kLocalContrast;
    pre.lcn_sigma = opt.lcn_sigma;
    pre.lcn_eps = opt.lcn_eps;
  } else if (opt.norm != "meanstd") {
    return MakeError(ErrorCode::kInvalidArgument, "--norm must be lcn or meanstd (got '%s')",
                     opt.norm.c_str());
  }
  {
    double sum[3] = {0, 0, 0}, sq[3] = {0, 0, 0}, cnt = 0;
    for (size_t i = 0; i < std::min<size_t>(train_imgs.size(), 64); ++i) {
      auto r = Prep(train_imgs[i].image.view(), pre);
      if (!r.ok()) return r.status();
      for (size_t p = 0; p < r->size(); p += channels) {
        for (int c = 0; c < channels; ++c) {
          sum[c] += (*r)[p + c];
          sq[c] += double((*r)[p + c]) * (*r)[p + c];
        }
        cnt += 1;
      }
    }
    for (int c = 0; c < channels; ++c) {
      double m = sum[c] / cnt, v = std::max(1e-8, sq[c] / cnt - m * m);
      pre.mean[c] = float(m);
      pre.std[c] = float(std::sqrt(v));
    }
  }
  FLAWLENS_RETURN_IF_ERROR(pre.Validate());

  auto prep_tensor = [&](const Image& im) -> Result<torch::Tensor> {
    FLAWLENS_ASSIGN_OR_RETURN(std::vector<float> v, Prep(im.view(), pre));
    return HwcToTensor(v, in_h, in_w, channels);
  };
  // The map cells over the image (all of them unless fixed-scale padding),
  // as edge-calibration buckets (1 x h x w, -1 off the image).
  auto edge_buckets = [&](const Image& im) -> Result<torch::Tensor> {
    FLAWLENS_ASSIGN_OR_RETURN(RectI content, PreprocessContent(pre, im.width, im.height, RectF{}));
    RectI c = ContentCells(content, in_w, in_h, map_w, map_h);
    return EdgeBuckets(map_h, map_w, c.y, c.x, c.h, c.w, kEdgeBuckets);
  };
  std::vector<torch::Tensor> hold_x, train_x, train_valid, hold_buckets;
  for (const auto& l : hold_imgs) {
    FLAWLENS_ASSIGN_OR_RETURN(torch::Tensor t, prep_tensor(l.image));
    hold_x.push_back(t);
    FLAWLENS_ASSIGN_OR_RETURN(torch::Tensor b, edge_buckets(l.image));
    hold_buckets.push_back(b);
  }
  for (const auto& l : train_imgs) {
    FLAWLENS_ASSIGN_OR_RETURN(torch::Tensor t, prep_tensor(l.image));
    train_x.push_back(t);
    FLAWLENS_ASSIGN_OR_RETURN(torch::Tensor b, edge_buckets(l.image));
    train_valid.push_back(b >= 0);
  }

  // ---- 2. validation set (optional) ----
  ValSet val;
  {
    auto splits = cli::ListSplits(opt.data);
    std::string vs = opt.val_split;
    if (vs.empty()) {
      if (std::find(splits.begin(), splits.end(), "val") != splits.end()) vs = "val";
      else if (std::find(splits.begin(), splits.end(), "test") != splits.end()) vs = "test";
    }
    if (!vs.empty()) {
      auto ds = cli::LoadDataset(opt.data, vs);
      if (ds.ok() && ds->num_defective() > 0 && ds->num_good() > 0) {
        PreprocessConfig mask_cfg = RawConfig(in_w, in_h, 1);
        mask_cfg.pixel_scale = pixel_scale;
        for (const auto& s : ds->samples) {
          auto bytes = cli::ReadFileBytes(s.path);
          if (!bytes.ok()) continue;
          auto img = DecodeImage(bytes->data(), bytes->size());
          if (!img.ok()) continue;
          auto t = prep_tensor(*img);
          if (!t.ok()) continue;
          auto buckets = edge_buckets(*img);
          if (!buckets.ok()) continue;
          torch::Tensor m;
          if (s.defective && !s.mask_path.empty()) {
            auto mb = cli::ReadFileBytes(s.mask_path);
            if (mb.ok()) {
              auto mi = DecodeImage(mb->data(), mb->size());
              if (mi.ok()) {
                auto mv = Prep(mi->view(), mask_cfg);
                if (mv.ok()) {
                  torch::Tensor full = HwcToTensor(*mv, in_h, in_w, 1).unsqueeze(0);
                  m = (torch::avg_pool2d(full, 4)[0][0] > 127.5f).to(torch::kFloat32);
                  val.has_masks = true;
                }
              }
            }
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
    }
  }

  NetConfig ncfg;
  ncfg.in_channels = channels;
  ncfg.width = opt.width;
  ncfg.density = opt.density;
  ncfg.seg_weight = opt.seg_weight;
  ncfg.density_weight = opt.density_weight;
  ncfg.map_blur_sigma = opt.map_blur;
  ncfg.bank = opt.bank;
  ncfg.fine_density = opt.fine_density;
  ncfg.global_weight = opt.global_weight;
  FlawNet net(ncfg), ema(ncfg);
  {
    torch::NoGradGuard ng;
    auto ep = ema->parameters(), np = net->parameters();
    for (size_t i = 0; i < ep.size(); ++i) ep[i].copy_(np[i]);
  }
  // Research hook: start training from saved weights (e.g. pretrained on generated images).
  if (const char* init = std::getenv("FLAWLENS_TRAIN_INIT_NET")) {
    if (Status st = LoadSavedWeights("FLAWLENS_TRAIN_INIT_NET", init, {&net, &ema}); !st.ok()) return st;
    std::fprintf(stderr, "initialised the network from %s\n", init);
  }
  const double gflops = 2.0 * CountMacs(net, in_h, in_w) / 1e9;
  char length[48];
  if (opt.steps > 0)
    std::snprintf(length, sizeof(length), "%d steps", opt.steps);
  else
    std::snprintf(length, sizeof(length), "budget %.1f min", opt.minutes);
  std::fprintf(stderr,
               "flawlens train: %zu training + %zu held-out good images (%zu skipped), "
               "input %dx%dx%d (%s, %s), map %dx%d, ~%.2f GFLOP/frame, %s\n",
               train_imgs.size(), hold_imgs.size(), skipped.size(), in_w, in_h, channels,
               opt.norm.c_str(),
               scale_mode ? ("fixed pixel scale " + std::to_string(pixel_scale).substr(0, 5) +
                             ", mirror-padded").c_str()
                          : "stretched",
               map_w, map_h, gflops, length);
  if (val.has_defects)
    std::fprintf(stderr, "validation: %zu images from the dataset's held-out split\n",
                 val.inputs.size());

  // Time for what follows training: forward passes over everything, measured.
  double per_image = 0;
  {
    Clock::time_point ts = Clock::now();
    ema->eval();
    RunSeg(ema, std::vector<torch::Tensor>(hold_x.begin(), hold_x.begin() + std::min<size_t>(4, hold_x.size())));
    per_image = Seconds(ts) / std::min<size_t>(4, hold_x.size());
  }
  double tail = per_image * (std::min<size_t>(train_x.size(), 200) + hold_x.size() + val.inputs.size()) * 2.0 + 10;
  // Periodic validation on a subset (every k-th image) to keep it cheap.
  std::vector<torch::Tensor> pval_x, pval_valid;
  std::vector<bool> pval_y;
  {
    size_t k = std::max<size_t>(1, val.inputs.size() / 120);
    for (size_t i = 0; i < val.inputs.size(); i += k) {
      pval_x.push_back(val.inputs[i]);
      pval_valid.push_back(val.valid[i]);
      pval_y.push_back(val.defective[i]);
    }
  }
  const torch::Tensor pval_on = pval_valid.empty() ? torch::Tensor() : torch::stack(pval_valid);
  double val_cost = per_image * pval_x.size();

  // ---- 3. train ----
  int crop_h = std::min(in_h, std::max(16, opt.crop / 8 * 8));
  int crop_w = std::min(in_w, std::max(16, opt.crop / 8 * 8));
  BatchMaker maker(&pool, &pre, &opt, crop_h, crop_w, uint32_t(opt.seed) * 2654435761u + 1);
  torch::optim::Adam optim(net->parameters(), torch::optim::AdamOptions(opt.lr).weight_decay(1e-5));
  json metrics;
  const Clock::time_point train_start = Clock::now();
  double train_time = std::max(5.0, budget - Seconds(t0) - tail);
  bool load_only = false;
  // Research hook: reuse a saved network instead of training.
  if (const char* load = std::getenv("FLAWLENS_TRAIN_LOAD_NET")) {
    if (Status st = LoadSavedWeights("FLAWLENS_TRAIN_LOAD_NET", load, {&ema}); !st.ok()) return st;
    load_only = true;
    std::fprintf(stderr, "loaded network weights from %s (no training)\n", load);
  }
  // Research hook: the density branch's val AUROC every N seconds of training.
  double curve_every = 0, next_curve = 0;
  std::vector<torch::Tensor> curve_fit;
  if (const char* c = std::getenv("FLAWLENS_TRAIN_CURVE"); c && val.has_defects) {
    curve_every = next_curve = std::atof(c);
    for (size_t i = 0; i < 100 && i < train_x.size(); ++i)
      curve_fit.push_back(train_x[i * train_x.size() / std::min<size_t>(100, train_x.size())]);
  }
  int step = 0;
  double loss_avg = 0;
  double next_val = opt.val_every, last_print = -100;
  std::string last_val = "";
  {
    BatchQueue queue(&maker);
    // Auto: between 1 thread and all cores but the data thread's (at least 2).
    const int hw = int(std::thread::hardware_concurrency());
    std::optional<ThreadTuner> tuner;
    if (fixed_threads == 0)
      tuner.emplace(std::max(2, hw - 1), 60.0, 25, [](int n) { torch::set_num_threads(n); });
    // The fraction of training done: of the steps, or of the time budget.
    auto progress = [&](double t) { return opt.steps > 0 ? double(step) / opt.steps : t / train_time; };
    net->train();
    while (!g_interrupted) {
      double t = Seconds(train_start);
      if (load_only || progress(t) >= 1) break;
      const double step_start = t;
      double frac = progress(t);
      double lr = opt.lr * (frac < 0.03 ? frac / 0.03 : 0.5 * (1 + std::cos(M_PI * frac)));
      for (auto& g : optim.param_groups()) static_cast<torch::optim::AdamOptions&>(g.options()).lr(lr);
      Batch b = queue.Pop();
      NetOutputs o = net->forward(b.x);
      torch::Tensor loss = torch::binary_cross_entropy_with_logits(o.seg, b.y);
      optim.zero_grad();
      loss.backward();
      optim.step();
      ++step;
      EmaUpdate(ema, net, step < 100 ? 0.9f : 0.995f);
      float lv = loss.item<float>();
      if (tuner && tuner->OnStep(Seconds(train_start) - step_start, Seconds(train_start)) && !tty &&
          !opt.quiet) {
        std::fprintf(stderr, "  step %d: now %d LibTorch thread%s (faster)\n", step, tuner->threads(),
                     tuner->threads() == 1 ? "" : "s");
      }
      loss_avg = step == 1 ? lv : 0.98 * loss_avg + 0.02 * lv;
      t = Seconds(train_start);
      if (val.has_defects && opt.val_every > 0 && t >= next_val &&
          (opt.steps > 0 || t + val_cost < train_time)) {
        ema->eval();
        torch::Tensor seg = RunSeg(ema, pval_x);
        std::vector<float> s = ReduceScores(OnImage(seg, pval_on), "max", opt.topk);
        double a = Auroc(s, pval_y);
        net->train();
        char buf[64];
        std::snprintf(buf, sizeof(buf), " | val AUROC %.3f", a);
        last_val = buf;
        if (!tty || opt.quiet) std::fprintf(stderr, "  step %d (%s): val image AUROC %.3f (seg, max)\n", step, FormatTime(t).c_str(), a);
        next_val = t + opt.val_every;
      }
      if (curve_every > 0 && t >= next_curve) {
        ema->eval();
        double a = DensityCurvePoint(ema, ResearchData{&curve_fit, &hold_x, &val.inputs, &val.defective,
                                                       &val.types, &val.masks, map_h, map_w});
        net->train();
        std::fprintf(stderr, "  curve step %d (%s): density val image AUROC %.3f\n", step,
                     FormatTime(t).c_str(), a);
        next_curve = Seconds(train_start) + curve_every;
      }
      if (!opt.quiet && (tty ? t - last_print >= 0.5 : t - last_print >= 30)) {
        last_print = t;
        const double done = progress(t);
        const double left = opt.steps > 0 ? t / step * (opt.steps - step) : train_time - t;
        int bar = int(30 * std::min(1.0, done));
        std::fprintf(stderr, "%s[%s%s] %3d%% ETA %s | step %d | loss %.4f%s%s", tty ? "\r" : "",
                     std::string(bar, '#').c_str(), std::string(30 - bar, '.').c_str(),
                     int(100 * done), FormatTime(left + tail).c_str(), step,
                     loss_avg, last_val.c_str(), tty ? "   " : "\n");
        std::fflush(stderr);
      }
    }
  }
  if (tty && !opt.quiet) std::fprintf(stderr, "\n");
  if (g_interrupted) std::fprintf(stderr, "interrupted: finishing with the weights so far\n");
  const double trained_s = Seconds(train_start);
  ema->eval();
  // The densities are fitted on at most 200 training images, evenly spaced.
  std::vector<torch::Tensor> fit_x, fit_valid, rest_x;  // rest_x: research only
  {
    size_t n_fit = std::min<size_t>(train_x.size(), 200);
    for (size_t i = 0, next = 0; i < train_x.size(); ++i) {
      if (next < n_fit && i == next * train_x.size() / n_fit) {
        fit_x.push_back(train_x[i]);
        fit_valid.push_back(train_valid[i]);
        ++next;
      } else {
        rest_x.push_back(train_x[i]);
      }
    }
  }
  // Research hooks (METHOD.md): save the network; compare density variants.
  if (const char* save = std::getenv("FLAWLENS_TRAIN_SAVE_NET")) torch::save(ema, save);
  if (std::getenv("FLAWLENS_TRAIN_RESEARCH") && val.has_defects) {
    RunResearch(ema, ResearchData{&fit_x, &hold_x, &val.inputs, &val.defective, &val.types,
                                  &val.masks, map_h, map_w, &rest_x});
  }

  // ---- 4. density branch: Gaussian of the features of the training images ----
  // (and 4b. the fine density on the stem features, --fine-density)
  // (4c. the image-level term: a Gaussian of the images' mean feature vectors)
  const bool global = opt.global_weight > 0;
  if (opt.density || opt.fine_density || global) {
    torch::NoGradGuard ng;
    int f = ema->feature_channels();
    const int64_t g = ema->global_channels();
    GaussianFit dens_fit(f), fine_fit(ema->fine_w.size(0)), glob_fit(g);
    for (size_t i = 0; i < fit_x.size(); i += 8) {
      size_t e = std::min(fit_x.size(), i + 8);
      torch::Tensor x = torch::stack(std::vector<torch::Tensor>(fit_x.begin() + i, fit_x.begin() + e));
      NetOutputs o = ema->forward(x);
      torch::Tensor valid = torch::stack(std::vector<torch::Tensor>(fit_valid.begin() + i, fit_valid.begin() + e));
      if (opt.density) dens_fit.Add(o.features, valid);
      if (opt.fine_density) {
        fine_fit.Add(o.fine, valid.repeat_interleave(2, 2).repeat_interleave(2, 3));
      }
      if (global) glob_fit.Add(ema->global_descriptor(o).view({-1, g, 1, 1}));
    }
    if (opt.density) dens_fit.Whiten(&ema->dens_w, &ema->dens_b);
    if (opt.fine_density) fine_fit.Whiten(&ema->fine_w, &ema->fine_b);
    if (global) glob_fit.Whiten(&ema->glob_w, &ema->glob_b);
    if (opt.density && opt.bank > 0) {
      // k-centre greedy coreset of whitened features (random subset of cells).
      torch::Tensor feats;
      {
        std::vector<torch::Tensor> fs;
        torch::Generator gen = at::detail::createCPUGenerator(opt.seed + 5);
        for (size_t i = 0; i < fit_x.size(); i += 8) {
          size_t e = std::min(fit_x.size(), i + 8);
          torch::Tensor x = torch::stack(std::vector<torch::Tensor>(fit_x.begin() + i, fit_x.begin() + e));
          torch::Tensor ft = ema->forward(x).features.permute({0, 2, 3, 1}).reshape({-1, f});
          int64_t take = std::min<int64_t>(ft.size(0), 40000 / int64_t((fit_x.size() + 7) / 8) + 1);
          fs.push_back(ft.index_select(0, torch::randperm(ft.size(0), gen).slice(0, 0, take)));
        }
        feats = torch::cat(fs);
      }
      torch::Tensor z = feats.mm(ema->dens_w.t()) + ema->dens_b;  // whitened
      int k = std::min<int>(opt.bank, int(z.size(0)));
      std::vector<int64_t> chosen = {0};
      torch::Tensor mind = (z - z[0]).pow(2).sum(1);
      for (int j = 1; j < k; ++j) {
        int64_t next = mind.argmax().item<int64_t>();
        chosen.push_back(next);
        mind = torch::minimum(mind, (z - z[next]).pow(2).sum(1));
      }
      torch::Tensor b = z.index_select(0, torch::tensor(chosen));
      ema->bank.set_data(b.clone());  // (a loaded buffer's storage cannot be resized)
    }
  }
  // Branch maps of held-out good and validation images: one pass each.
  auto run_branches = [&](const std::vector<torch::Tensor>& xs, torch::Tensor* seg, torch::Tensor* dens,
                          torch::Tensor* fine, torch::Tensor* glob) {
    torch::NoGradGuard ng;
    std::vector<torch::Tensor> segs, ds, fs, gs;
    for (size_t i = 0; i < xs.size(); i += 8) {
      size_t e = std::min(xs.size(), i + 8);
      torch::Tensor x = torch::stack(std::vector<torch::Tensor>(xs.begin() + i, xs.begin() + e));
      NetOutputs o = ema->forward(x);
      segs.push_back(o.seg);
      if (opt.density) ds.push_back(ema->density_map(o.features));
      if (opt.fine_density) fs.push_back(ema->fine_map(o.fine));
      if (global) gs.push_back(ema->global_distance(ema->global_descriptor(o)));
    }
    *seg = torch::cat(segs);
    if (opt.density) *dens = torch::cat(ds);
    if (opt.fine_density) *fine = torch::cat(fs);
    if (global) *glob = torch::cat(gs);
  };
  torch::Tensor hold_seg, hold_dens, hold_fine, hold_glob, val_seg, val_dens, val_fine, val_glob;
  run_branches(hold_x, &hold_seg, &hold_dens, &hold_fine, &hold_glob);
  if (val.has_defects) run_branches(val.inputs, &val_seg, &val_dens, &val_fine, &val_glob);
  // Research hook: dump the branch maps for offline analysis of postprocessing.
  if (const char* dump = std::getenv("FLAWLENS_TRAIN_DUMP"); dump && val.has_defects) {
    std::vector<float> lab, tid, has_mask, vw, vh;
    std::map<std::string, int> ids;
    for (size_t i = 0; i < val.inputs.size(); ++i) {
      lab.push_back(val.defective[i]);
      if (!ids.count(val.types[i])) ids[val.types[i]] = int(ids.size());
      tid.push_back(float(ids[val.types[i]]));
      has_mask.push_back(val.masks[i].defined());
      vw.push_back(val.orig_w[i]);
      vh.push_back(val.orig_h[i]);
    }
    std::vector<torch::Tensor> masks;
    for (size_t i = 0; i < val.inputs.size(); ++i)
      masks.push_back(val.masks[i].defined() ? val.masks[i] : torch::zeros({map_h, map_w}));
    std::vector<torch::Tensor> out = {hold_seg, opt.density ? hold_dens : torch::zeros({1}),
                                      val_seg, opt.density ? val_dens : torch::zeros({1}),
                                      torch::tensor(lab), torch::tensor(tid), torch::tensor(has_mask),
                                      torch::stack(masks), torch::tensor(vw), torch::tensor(vh)};
    torch::save(out, dump);
    std::string names;
    for (auto& [k, v] : ids) names += std::to_string(v) + "=" + k + " ";
    std::fprintf(stderr, "dumped maps to %s (types %s)\n", dump, names.c_str());
  }
  // Held-out edge buckets and the cells over the image (bucket >= 0), stacked once.
  const torch::Tensor hold_bucket_t = torch::stack(hold_buckets), hold_on = hold_bucket_t >= 0;
  // Standardise the branch maps on the held-out good images (cells over the image).
  {
    const torch::Tensor& on = hold_on;
    torch::Tensor s = hold_seg.masked_select(on), d, fi;
    float c[6] = {s.mean().item<float>(), std::max(1e-4f, s.std().item<float>()), 0.0f, 1.0f,
                  0.0f, 1.0f};
    if (opt.density) {
      d = hold_dens.masked_select(on);
      c[2] = d.mean().item<float>();
      c[3] = std::max(1e-4f, d.std().item<float>());
      ema->density_fitted = true;
    }
    if (opt.fine_density) {
      fi = hold_fine.masked_select(on);
      c[4] = fi.mean().item<float>();
      c[5] = std::max(1e-4f, fi.std().item<float>());
      ema->fine_fitted = true;
    }
    ema->combine.copy_(torch::tensor({c[0], c[1], c[2], c[3], c[4], c[5]}));
    if (global) {
      float gm = hold_glob.mean().item<float>();
      float gsd = hold_glob.numel() > 1 ? hold_glob.std().item<float>() : 1.0f;
      ema->glob_stats.copy_(torch::tensor({gm, std::max(1e-4f, gsd)}));
      ema->global_fitted = true;
    }
  }

  // ---- 5. per-cell calibration on held-out good images ----
  // shrink: 0 = per-cell std, 1 = one global std (per-cell mean either way).
  // Fixed scale: cell positions do not line up with image positions, so the
  // calibration is by distance to the image's edge instead of per cell.
  const bool cell_calibration = opt.cell_calibration && !scale_mode;
  const bool edge_calibration = opt.cell_calibration && scale_mode;
  auto fit_cells = [&](const torch::Tensor& maps, float shrink) {
    if (!cell_calibration)
      return CellCalibration{torch::zeros({map_h, map_w}), torch::ones({map_h, map_w})};
    return FitCellCalibration(maps, opt.flips, shrink);
  };
  const torch::Tensor val_bucket_t = val.buckets.empty() ? torch::Tensor() : torch::stack(val.buckets);
  const torch::Tensor val_on = val.buckets.empty() ? torch::Tensor() : val_bucket_t >= 0;
  struct MapCalibration {
    CellCalibration cells;
    EdgeCalibration edge;
  };
  // Fit on held-out maps; apply to held-out (val = false) or validation maps.
  auto fit_map_cal = [&](const torch::Tensor& hold, float shrink) {
    MapCalibration c{fit_cells(hold, shrink), {}};
    if (edge_calibration) c.edge = FitEdgeCalibration(hold, hold_bucket_t, kEdgeBuckets, shrink);
    return c;
  };
  auto apply_map_cal = [&](const torch::Tensor& maps, const MapCalibration& c, bool is_val) {
    torch::Tensor m = ApplyCellCalibration(maps, c.cells);
    if (edge_calibration) m = ApplyEdgeCalibration(m, is_val ? val_bucket_t : hold_bucket_t, c.edge);
    return OnImage(m, is_val ? val_on : hold_on);
  };
  torch::Tensor hold_maps = ema->combine_maps(hold_seg, hold_dens, hold_fine, hold_glob);
  // Choose how much the per-cell std is trusted (positional structure vs the
  // noise of few held-out images) by a map-level simulation: the held-out set
  // is split in halves; one half fits the calibration, the other gets
  // Gaussian bumps of a few heights added to its raw maps at random places;
  // the shrink with the best mean AUROC (bumped vs clean) wins.
  float shrink = opt.cell_std_shrink;
  if (cell_calibration && shrink < 0) {
    int64_t n = hold_maps.size(0);
    if (n < 8) {
      shrink = 1.0f;
    } else {
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
      std::string line;
      for (float cand : {0.0f, 0.5f, 0.8f, 1.0f}) {
        double sum = 0;
        int cnt = 0;
        for (int f = 0; f < 2; ++f) {
          CellCalibration cc = fit_cells(folds[f].first, cand);
          std::vector<float> good = ReduceScores(ApplyCellCalibration(folds[f].second, cc), opt.reduce, opt.topk);
          for (const torch::Tensor& b : bumps[f]) {
            std::vector<float> bad = ReduceScores(ApplyCellCalibration(b, cc), opt.reduce, opt.topk);
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
      if (!opt.quiet) std::fprintf(stderr, "cell std shrink (simulated bump AUROC)%s -> %.1f\n", line.c_str(), shrink);
    }
  }
  if (shrink < 0) shrink = 1.0f;
  metrics["cell_std_shrink"] = shrink;
  MapCalibration map_cal = fit_map_cal(hold_maps, shrink);
  torch::Tensor cell_mean = map_cal.cells.mean, cell_std = map_cal.cells.std;
  std::vector<float> hold_scores = ReduceScores(apply_map_cal(hold_maps, map_cal, false), opt.reduce, opt.topk);
  // Threshold in standard deviations of held-out good scores above their mean:
  // sensitivity 0.5 -> 3, 1 -> 0, 0 -> 6.
  Calibration cal = ScoreCalibration(hold_scores, opt.sensitivity);
  const double hmean = cal.offset, hsd = cal.scale;
  {
    float mx = -1e30f;
    for (float v : hold_scores) mx = std::max(mx, float((v - hmean) / hsd));
    metrics["holdout_good_max_score"] = mx;
  }

  // ---- 6. validation metrics with the full pipeline ----
  metrics["train_seconds"] = trained_s;
  metrics["steps"] = step;
  if (val.has_defects) {
    // Analysis: each branch alone and the sum, each cell-calibrated on held-out good.
    if (!opt.quiet) {
      auto report = [&](const char* what, const torch::Tensor& hm, const torch::Tensor& vm) {
        torch::Tensor cal_v = apply_map_cal(vm, fit_map_cal(hm, shrink), true);
        for (const char* red : {"max", "topk_mean"}) {
          std::vector<float> sc = ReduceScores(cal_v, red, opt.topk);
          std::fprintf(stderr, "  [%s, %s] val image AUROC %.3f\n", what, red, Auroc(sc, val.defective));
        }
      };
      report("seg", ema->combine_maps(hold_seg, {}), ema->combine_maps(val_seg, {}));
      if (opt.density) {
        NetConfig saved = ema->config;
        ema->config.seg_weight = 0;
        report("density", ema->combine_maps(hold_seg, hold_dens), ema->combine_maps(val_seg, val_dens));
        ema->config = saved;
      }
      if (opt.fine_density) {
        NetConfig saved = ema->config;
        ema->config.seg_weight = 0;
        report("fine density", ema->combine_maps(hold_seg, {}, hold_fine),
               ema->combine_maps(val_seg, {}, val_fine));
        ema->config = saved;
      }
    }
    if (global && !opt.quiet) {
      std::vector<float> g(val_glob.data_ptr<float>(), val_glob.data_ptr<float>() + val_glob.numel());
      std::fprintf(stderr, "  [image-level term alone] val image AUROC %.3f\n", Auroc(g, val.defective));
    }
    torch::Tensor vmaps =
        apply_map_cal(ema->combine_maps(val_seg, val_dens, val_fine, val_glob), map_cal, true);
    std::vector<float> vs = ReduceScores(vmaps, opt.reduce, opt.topk);
    for (float& v : vs) v = float((v - hmean) / hsd);
    PrintAurocs(val, vs, vmaps, &metrics, opt.quiet);
    float f1 = 0;
    cal.f1_threshold = F1Threshold(vs, val.defective, &f1);
    metrics["val_best_f1"] = f1;
    int tp = 0, fp = 0, pos = 0, neg = 0;
    for (size_t i = 0; i < vs.size(); ++i) {
      bool flag = vs[i] >= cal.threshold;
      if (val.defective[i]) { ++pos; tp += flag; } else { ++neg; fp += flag; }
    }
    std::printf("at the calibrated threshold %.2f: %d/%d defective flagged, %d/%d good flagged; "
                "F1-optimal threshold %.2f (F1 %.3f)\n",
                cal.threshold, tp, pos, fp, neg, cal.f1_threshold, f1);
  }
  // ---- 7. export ----
  ModelSpec spec;
  ExportNetwork(ema, in_h, in_w, &spec);
  spec.preprocess_json = PreprocessToJson(pre);
  json post = {{"sigmoid", false}, {"blur_sigma", 0.0}, {"reduce", opt.reduce},
               {"topk_fraction", opt.topk}};
  if (cell_calibration) {
    post["cell_mean"] = "calib.cell_mean";
    post["cell_std"] = "calib.cell_std";
    ModelTensor a{"calib.cell_mean", {map_h, map_w}, {}}, b{"calib.cell_std", {map_h, map_w}, {}};
    torch::Tensor cm = cell_mean.contiguous(), cs = cell_std.contiguous();
    a.data.assign(cm.data_ptr<float>(), cm.data_ptr<float>() + cm.numel());
    b.data.assign(cs.data_ptr<float>(), cs.data_ptr<float>() + cs.numel());
    spec.tensors.push_back(std::move(a));
    spec.tensors.push_back(std::move(b));
  }
  if (edge_calibration) {
    post["edge_mean"] = "calib.edge_mean";
    post["edge_std"] = "calib.edge_std";
    const int64_t k = map_cal.edge.s;
    ModelTensor a{"calib.edge_mean", {k, k}, {}}, b{"calib.edge_std", {k, k}, {}};
    torch::Tensor em = map_cal.edge.mean.contiguous(), es = map_cal.edge.std.contiguous();
    a.data.assign(em.data_ptr<float>(), em.data_ptr<float>() + em.numel());
    b.data.assign(es.data_ptr<float>(), es.data_ptr<float>() + es.numel());
    spec.tensors.push_back(std::move(a));
    spec.tensors.push_back(std::move(b));
  }
  spec.postprocess_json = post.dump();
  spec.calibration_json = CalibrationToJson(cal);
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
                              (global ? "+image-level-density" : "") +
                              (scale_mode ? ", fixed pixel scale, edge-calibrated"
                                          : ", per-cell calibrated") +
                              " (tools/train/METHOD.md)"},
               {"trained_on", opt.data},
               {"train_images", train_imgs.size()},
               {"holdout_images", hold_imgs.size()},
               {"gflops_per_frame", gflops},
               {"seed", opt.seed},
               {"interrupted", g_interrupted.load()},
               {"metrics", metrics}};
  // What decided the training length: a step count (repeatable) or a time budget.
  if (opt.steps > 0)
    card["steps"] = opt.steps;
  else
    card["minutes"] = opt.minutes;
  spec.card_json = card.dump();
  std::vector<uint8_t> bytes = WriteModel(spec);
  // Through a temporary file: a failed write keeps the file that was there.
  if (Status st = cli::WriteFileBytes(opt.out, bytes); !st.ok()) return st;
  // Self-check: the engine loads the file and reproduces LibTorch's map.
  {
    auto det = Detector::Create(bytes.data(), bytes.size());
    if (!det.ok()) return MakeError(ErrorCode::kInternal, "written model does not load: %s",
                                    det.status().ToString().c_str());
    torch::Tensor x = hold_x[0];
    torch::Tensor hwc = x.permute({1, 2, 0}).contiguous();
    std::vector<float> in(hwc.data_ptr<float>(), hwc.data_ptr<float>() + hwc.numel());
    std::vector<float> out((*det)->network_output_count());
    Status st = (*det)->RunNetwork(in.data(), in.size(), out.data(), out.size());
    if (!st.ok()) return st;
    torch::Tensor ref;
    {
      torch::NoGradGuard ng;
      ref = ema->forward_map(x.unsqueeze(0)).contiguous();
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
  }
  std::printf("wrote %s (%zu bytes): %d steps in %s, %.2f GFLOP/frame, threshold %.2f; "
              "total %s wall, %.0f CPU s\n",
              opt.out.c_str(), bytes.size(), step, FormatTime(trained_s).c_str(), gflops,
              cal.threshold, FormatTime(Seconds(t0)).c_str(), double(std::clock()) / CLOCKS_PER_SEC);
  return Status::Ok();
}

}  // namespace flawlens::train
