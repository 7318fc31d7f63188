// The from-scratch trainer after training (trainer_run.h): densities, branch
// standardisation, calibration on held-out good images, validation report,
// export.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <random>

#include "cli/cli_util.h"
#include "fit/calibration.h"
#include "fit/linalg.h"
#include "flawlens/detector.h"
#include "train/trainer_run.h"

namespace flawlens::train::scratch {

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

// The exported pipeline's map before calibration: the network's combined map
// (net.h), then the detector's map blur.
torch::Tensor PipelineMaps(TrainRun& r, const torch::Tensor& seg, const torch::Tensor& dens,
                           const torch::Tensor& fine = {}, const torch::Tensor& glob = {}) {
  return BlurMaps(r.ema->combine_maps(seg, dens, fine, glob), r.opt.map_blur);
}

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

}  // namespace flawlens::train::scratch
