// `flawlens train --from-scratch`. RunTraining, at the end of this file, runs
// the phases in order: training images and the network input, validation
// set, network, training loop (here), then densities, branch
// standardisation, calibration, validation report and export
// (trainer_fit.cc). Each phase is a function over TrainRun, the state of the
// run (trainer_run.h, with the helpers several phases share).
#include "train/trainer.h"

#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <cstdlib>
#include <map>
#include <optional>
#include <random>

#include "cli/cli_util.h"
#include "cli/dataset.h"
#include "core/limits.h"
#include "fit/calibration.h"
#include "image/gaussian_blur.h"
#include "flawlens/detector.h"
#include "image/preprocess.h"
#include "model/model.h"
#include "train/batches.h"
#include "train/net.h"
#include "train/thread_tuner.h"
#include "train/trainer_run.h"

namespace flawlens::train {
namespace scratch {

std::atomic<bool> g_interrupted{false};

namespace {

void OnSigint(int) {
  if (g_interrupted.exchange(true)) std::_Exit(130);  // second Ctrl-C: leave now
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
    PreprocessConfig raw = RawResizeConfig(r->in_w, r->in_h, r->channels);
    if (r->scale_mode)
      raw = RawResizeConfig(Scaled(*r, l.image.width), Scaled(*r, l.image.height), r->channels);
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
  PreprocessConfig mask_cfg = RawResizeConfig(r.in_w, r.in_h, 1);
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

}  // namespace
}  // namespace scratch

Status RunTraining(const TrainOptions& opt) {
  using namespace scratch;  // NOLINT(google-build-using-namespace)
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
  const int blur_radius = opt.map_blur > 0 ? int(GaussianKernel(opt.map_blur).size() / 2) : 0;
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
