#include "train/research.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>

#include "train/cell_calibration.h"
#include "train/gaussian_fit.h"
#include "train/trainer.h"

namespace flawlens::train {
namespace {

namespace F = torch::nn::functional;

struct TapSet {
  torch::Tensor e1, f2, dec, f3, seg;
};

TapSet ComputeTaps(FlawNet& net, const std::vector<torch::Tensor>& xs) {
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> e1, f2, dec, f3, seg;
  for (size_t i = 0; i < xs.size(); i += 8) {
    size_t e = std::min(xs.size(), i + 8);
    torch::Tensor x = torch::stack(std::vector<torch::Tensor>(xs.begin() + i, xs.begin() + e));
    NetTaps t = net->forward_taps(x);
    e1.push_back(t.e1);
    f2.push_back(t.f2);
    dec.push_back(t.dec);
    f3.push_back(t.f3);
    seg.push_back(t.seg);
  }
  return {torch::cat(e1), torch::cat(f2), torch::cat(dec), torch::cat(f3), torch::cat(seg)};
}

torch::Tensor Avg(const torch::Tensor& x, int k) {
  return F::avg_pool2d(
      x, F::AvgPool2dFuncOptions(k).stride(1).padding(k / 2).count_include_pad(false));
}

// Feature maps the variants are fitted on (session 2's list, with the
// self-referential and multi-tap variants, is at commit 9c8bb56).
torch::Tensor Feature(const TapSet& t, const std::string& name) {
  torch::Tensor f2dec = torch::cat({t.f2, t.dec}, 1);
  if (name == "e1") return t.e1;
  if (name == "f2dec") return f2dec;
  if (name == "avg17:f2dec") return Avg(f2dec, 17);
  if (name == "gsr:f2dec") {  // minus the image's median feature
    torch::Tensor med = std::get<0>(f2dec.flatten(2).median(2));
    return f2dec - med.view({f2dec.size(0), f2dec.size(1), 1, 1});
  }
  std::fprintf(stderr, "research: unknown feature %s\n", name.c_str());
  std::abort();
}

struct Gauss {
  torch::Tensor w, b;  // whitening: z = w x + b
};

Gauss Fit(const torch::Tensor& feats) {
  int64_t c = feats.size(1);
  GaussianFit fit(c);
  fit.Add(feats);
  Gauss g{torch::empty({c, c}), torch::empty({c})};
  fit.Whiten(&g.w, &g.b);
  return g;
}

torch::Tensor ToMapRes(torch::Tensor m, int64_t mh, int64_t mw) {
  if (m.size(2) == 2 * mh) return F::max_pool2d(m, F::MaxPool2dFuncOptions(2));
  if (m.size(2) * 2 == mh)
    return F::interpolate(m, F::InterpolateFuncOptions()
                                 .scale_factor(std::vector<double>{2.0, 2.0})
                                 .mode(torch::kBilinear)
                                 .align_corners(false));
  return m;
}

// z = W x + b per cell (N x C x H x W).
torch::Tensor Whiten(const Gauss& g, const torch::Tensor& feats) {
  const int64_t c = feats.size(1);
  return F::conv2d(feats, g.w.view({c, c, 1, 1}), F::Conv2dFuncOptions().bias(g.b));
}

torch::Tensor Mahalanobis(const Gauss& g, const torch::Tensor& feats, int64_t mh, int64_t mw) {
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> out;
  for (int64_t i = 0; i < feats.size(0); i += 16) {
    torch::Tensor z = Whiten(g, feats.slice(0, i, std::min(feats.size(0), i + 16)));
    out.push_back(ToMapRes((z * z).sum(1, true), mh, mw));
  }
  return torch::cat(out);
}

// Self-referential nearest neighbour: for each cell, the squared distance
// (whitened space) to the most similar cell of the same image outside a
// (2*excl+1)^2 window around it. A defect that is unique within its own
// image has no match; normal texture repeats across the image.
torch::Tensor SelfMatch(const Gauss& g, const torch::Tensor& feats, int excl, int64_t mh, int64_t mw) {
  torch::NoGradGuard ng;
  const int64_t c = feats.size(1), h = feats.size(2), w = feats.size(3), n = h * w;
  torch::Tensor rows = torch::arange(h).repeat_interleave(w), cols = torch::arange(w).repeat({h});
  torch::Tensor near = ((rows.view({-1, 1}) - rows.view({1, -1})).abs() <= excl) &
                       ((cols.view({-1, 1}) - cols.view({1, -1})).abs() <= excl);
  std::vector<torch::Tensor> out;
  for (int64_t i = 0; i < feats.size(0); ++i) {
    torch::Tensor z = Whiten(g, feats.slice(0, i, i + 1))
                          .view({c, n})
                          .t()
                          .contiguous();
    torch::Tensor sq = (z * z).sum(1);
    torch::Tensor d = sq.view({-1, 1}) + sq.view({1, -1}) - 2 * z.mm(z.t());
    d.masked_fill_(near, 1e30f);
    out.push_back(ToMapRes(std::get<0>(d.min(1)).clamp_min(0).view({1, 1, h, w}), mh, mw));
  }
  return torch::cat(out);
}

torch::Tensor Blur(const torch::Tensor& m, float sigma) {
  torch::Tensor k = MapBlurKernel(sigma);
  return F::conv2d(m, k, F::Conv2dFuncOptions().padding(k.size(2) / 2));
}

// Per-cell calibration as in the trainer (flip-symmetrised, smoothed, std shrink).
torch::Tensor CellCalibrate(const torch::Tensor& hold, const torch::Tensor& maps, float shrink) {
  return ApplyCellCalibration(maps, FitCellCalibration(hold, /*mirror=*/true, shrink));
}

// K-means of the images' mean feature vectors; one Gaussian per cluster.
struct Mixture {
  std::vector<Gauss> g;
  torch::Tensor centres, mu, sd;  // K x C (standardised space), C, C
};

Mixture FitMixture(const torch::Tensor& feats, int k) {
  torch::Tensor m = feats.mean({2, 3});  // N x C
  Mixture mx;
  mx.mu = m.mean(0);
  mx.sd = m.std(0).clamp_min(1e-6);
  torch::Tensor z = (m - mx.mu) / mx.sd;
  int64_t n = z.size(0);
  torch::Tensor c = z.index_select(0, torch::arange(0, n, std::max<int64_t>(1, n / k)).slice(0, 0, k));
  torch::Tensor assign;
  for (int it = 0; it < 30; ++it) {
    assign = torch::cdist(z, c).argmin(1);
    for (int j = 0; j < k; ++j) {
      torch::Tensor sel = (assign == j).nonzero().flatten();
      if (sel.numel() > 0) c[j] = z.index_select(0, sel).mean(0);
    }
  }
  mx.centres = c;
  for (int j = 0; j < k; ++j) {
    torch::Tensor sel = (assign == j).nonzero().flatten();
    std::fprintf(stderr, "research: cluster %d: %ld images\n", j, long(sel.numel()));
    mx.g.push_back(Fit(sel.numel() >= 3 ? feats.index_select(0, sel) : feats));
  }
  return mx;
}

// Each image's map under the Gaussian of its nearest cluster centre.
torch::Tensor MixtureMap(const Mixture& mx, const torch::Tensor& feats, int64_t mh, int64_t mw) {
  torch::Tensor z = (feats.mean({2, 3}) - mx.mu) / mx.sd;
  torch::Tensor a = torch::cdist(z, mx.centres).argmin(1);
  std::vector<torch::Tensor> maps;
  for (int64_t i = 0; i < feats.size(0); ++i)
    maps.push_back(Mahalanobis(mx.g[size_t(a[i].item<int64_t>())], feats.slice(0, i, i + 1), mh, mw));
  return torch::cat(maps);
}

// Image-level descriptor. mode 0: per-channel means of the 1/4 features;
// 1: their means and stds; 3: means and stds of the 1/4, stem and 1/8
// features; 4: the trainer's --global-weight descriptor (means of all four taps).
torch::Tensor GlobalDesc(FlawNet& net, const TapSet& t, int mode) {
  torch::Tensor f2dec = torch::cat({t.f2, t.dec}, 1);
  if (mode == 4)
    return net->global_descriptor(NetOutputs{t.seg, f2dec, t.e1, t.f3}).to(torch::kFloat64);
  std::vector<torch::Tensor> taps = {f2dec};
  if (mode == 3) taps = {f2dec, t.e1, t.f3};
  std::vector<torch::Tensor> parts;
  for (const torch::Tensor& x : taps) {
    parts.push_back(x.mean({2, 3}));
    if (mode != 0) parts.push_back(x.std({2, 3}));
  }
  return torch::cat(parts, 1).to(torch::kFloat64);
}

// Squared Mahalanobis distance of image descriptors to the fit set's Gaussian
// (covariance + reg * mean variance * I).
torch::Tensor GlobalDistance(const torch::Tensor& fit, const torch::Tensor& x, double reg) {
  torch::Tensor mu = fit.mean(0);
  torch::Tensor c = fit - mu;
  torch::Tensor cov = c.t().mm(c) / double(fit.size(0) - 1);
  cov = cov + reg * cov.diagonal().mean() * torch::eye(cov.size(0), torch::kFloat64);
  torch::Tensor z = torch::linalg::solve(cov, (x - mu).t(), true).t();
  return ((x - mu) * z).sum(1).to(torch::kFloat32);
}

// Per-cell descriptor at map resolution whose image mean is the image-level
// descriptor: stem features 2x2-averaged, 1/4 and decoder features, 1/8
// features upsampled.
torch::Tensor CellDesc(const TapSet& t) {
  torch::Tensor e1 = F::avg_pool2d(t.e1, F::AvgPool2dFuncOptions(2));
  torch::Tensor f3 = F::interpolate(t.f3, F::InterpolateFuncOptions()
                                              .scale_factor(std::vector<double>{2.0, 2.0})
                                              .mode(torch::kBilinear)
                                              .align_corners(false));
  return torch::cat({e1, t.f2, t.dec, f3}, 1).to(torch::kFloat64);
}

// The image-level term decomposed over the cells: with z = L^-1 (x - mu) the
// whitening of the Gaussian of image means, cell i gets z_i . mean_j(z_j);
// the mean over the cells is the image's squared distance.
torch::Tensor LocalGlobal(const torch::Tensor& fit_cells, const torch::Tensor& cells, double reg) {
  torch::Tensor fit = fit_cells.mean({2, 3});
  torch::Tensor mu = fit.mean(0);
  torch::Tensor c = fit - mu;
  torch::Tensor cov = c.t().mm(c) / double(fit.size(0) - 1);
  cov = cov + reg * cov.diagonal().mean() * torch::eye(cov.size(0), torch::kFloat64);
  torch::Tensor linv = torch::linalg::inv(torch::linalg::cholesky(cov));  // z = linv (x - mu)
  const int64_t n = cells.size(0), ch = cells.size(1), h = cells.size(2), w = cells.size(3);
  torch::Tensor x = cells.permute({0, 2, 3, 1}).reshape({n, h * w, ch}) - mu;
  torch::Tensor z = x.matmul(linv.t());            // n, hw, ch
  torch::Tensor zg = z.mean(1, true);              // n, 1, ch
  return (z * zg).sum(2).view({n, 1, h, w}).to(torch::kFloat32);
}

// PaDiM-style density per map position (session 6): the features are whitened
// by the shared Gaussian; each position gets its own mean (and, if `full`, its
// own covariance) from the k x k neighbourhood of positions of every fit image
// (and of its mirror image if `flip`). Appends, per entry of `score_feats`, the
// squared distance per cell at map resolution to `out`.
void PositionDensity(const Gauss& g, const torch::Tensor& fit_feats,
                     const std::vector<torch::Tensor>& score_feats, int k, bool full, bool flip,
                     int64_t mh, int64_t mw, std::vector<torch::Tensor>* out) {
  torch::NoGradGuard ng;
  const int64_t c = fit_feats.size(1);
  torch::Tensor z = Whiten(g, fit_feats);
  if (flip) z = torch::cat({z, z.flip({3})});
  const int64_t n = z.size(0), h = z.size(2), w = z.size(3), p = h * w, kk = int64_t(k) * k;
  if (k > 1) z = F::pad(z, F::PadFuncOptions({k / 2, k / 2, k / 2, k / 2}).mode(torch::kReplicate));
  torch::Tensor u = F::unfold(z, F::UnfoldFuncOptions({k, k})).view({n, c, kk, p});
  torch::Tensor mu = torch::empty({p, c}), linv = full ? torch::empty({p, c, c}) : torch::Tensor();
  const int64_t m = n * kk;  // samples per position
  for (int64_t p0 = 0; p0 < p; p0 += 256) {
    const int64_t p1 = std::min(p, p0 + 256);
    torch::Tensor s =
        u.slice(3, p0, p1).permute({3, 0, 2, 1}).reshape({p1 - p0, m, c}).to(torch::kFloat64);
    torch::Tensor mean = s.mean(1);
    mu.slice(0, p0, p1).copy_(mean);
    if (!full) continue;
    torch::Tensor d = s - mean.unsqueeze(1);
    torch::Tensor cov = d.transpose(1, 2).bmm(d) / double(m - 1);
    torch::Tensor eye = torch::eye(c, torch::kFloat64).unsqueeze(0);
    cov = cov + (0.01 * cov.diagonal(0, 1, 2).mean(1).view({-1, 1, 1}) + 1e-6) * eye;
    linv.slice(0, p0, p1).copy_(torch::linalg::solve_triangular(
        torch::linalg::cholesky(cov), eye.expand({p1 - p0, c, c}), /*upper=*/false,
        /*left=*/true, /*unitriangular=*/false));
  }
  for (const torch::Tensor& f : score_feats) {
    std::vector<torch::Tensor> maps;
    for (int64_t i = 0; i < f.size(0); i += 16) {
      torch::Tensor x = Whiten(g, f.slice(0, i, std::min(f.size(0), i + 16)));
      const int64_t b = x.size(0);
      torch::Tensor d = x.view({b, c, p}).permute({0, 2, 1}) - mu.unsqueeze(0);  // b, p, c
      if (full) d = torch::einsum("pij,bpj->bpi", {linv, d});
      maps.push_back(ToMapRes((d * d).sum(2).view({b, 1, h, w}), mh, mw));
    }
    out->push_back(torch::cat(maps));
  }
}

}  // namespace

double DensityCurvePoint(FlawNet& net, const ResearchData& d) {
  torch::NoGradGuard ng;
  TapSet fit = ComputeTaps(net, *d.fit_x), hold = ComputeTaps(net, *d.hold_x),
         val = ComputeTaps(net, *d.val_x);
  Gauss g = Fit(Feature(fit, "f2dec"));
  torch::Tensor h = Blur(Mahalanobis(g, Feature(hold, "f2dec"), d.map_h, d.map_w), 1.0f);
  torch::Tensor v = Blur(Mahalanobis(g, Feature(val, "f2dec"), d.map_h, d.map_w), 1.0f);
  torch::Tensor cv = CellCalibrate(h, v, 0.5f);
  torch::Tensor sc = std::get<0>(cv.reshape({cv.size(0), -1}).max(1)).contiguous();
  return Auroc(std::vector<float>(sc.data_ptr<float>(), sc.data_ptr<float>() + sc.numel()), *d.defective);
}

void RunResearch(FlawNet& net, const ResearchData& d) {
  torch::NoGradGuard ng;
  // FLAWLENS_TRAIN_RESEARCH=1: sessions 3-5's lists without the slow ones;
  // =self adds session 5's self-referential nearest neighbours (every cell
  // against every cell of its image: ~5 min per variant on one core);
  // =local adds session 5's image-level term decomposed over the cells;
  // session 6: =pos adds per-position (PaDiM-style) densities, =tta flip
  // test-time augmentation, =calib / =fitall change the calibration / fit sets.
  const char* env = std::getenv("FLAWLENS_TRAIN_RESEARCH");
  const std::string what = env ? env : "";
  const bool self_nn = what == "self", local = what == "local";
  std::fprintf(stderr, "research: computing taps...\n");
  // Session 6: =calib calibrates on the held-out images plus the training
  // images the densities are not fitted on; =fitall fits on every training image.
  std::vector<torch::Tensor> fit_x = *d.fit_x, hold_x = *d.hold_x;
  if ((what == "calib" || what == "fitall") && d.rest_x) {
    std::vector<torch::Tensor>& to = what == "calib" ? hold_x : fit_x;
    to.insert(to.end(), d.rest_x->begin(), d.rest_x->end());
    std::fprintf(stderr, "research: %zu fit, %zu calibration images\n", fit_x.size(), hold_x.size());
  }
  TapSet fit = ComputeTaps(net, fit_x);
  TapSet hold = ComputeTaps(net, hold_x);
  TapSet val = ComputeTaps(net, *d.val_x);
  // The same architecture, randomly initialised (features without training).
  torch::manual_seed(4242);
  FlawNet rnd(net->config);
  rnd->eval();
  TapSet rfit = ComputeTaps(rnd, fit_x);
  TapSet rhold = ComputeTaps(rnd, hold_x);
  TapSet rval = ComputeTaps(rnd, *d.val_x);
  const int64_t mh = d.map_h, mw = d.map_w;
  const auto& lab = *d.defective;

  // Standardised (on held-out good) raw maps per candidate branch.
  std::map<std::string, std::pair<torch::Tensor, torch::Tensor>> branch;  // hold, val
  auto standardise = [&](const std::string& name, torch::Tensor h, torch::Tensor v) {
    float m = h.mean().item<float>(), s = std::max(1e-6f, h.std().item<float>());
    branch[name] = {(h - m) / s, (v - m) / s};
  };
  // The Gaussian of each feature map of the fit images, fitted once.
  std::map<std::string, Gauss> fitted;
  auto gauss = [&](const std::string& f) -> const Gauss& {
    auto it = fitted.find(f);
    if (it == fitted.end()) it = fitted.emplace(f, Fit(Feature(fit, f))).first;
    return it->second;
  };
  standardise("seg", hold.seg, val.seg);
  for (const char* f : {"f2dec", "e1", "avg17:f2dec", "gsr:f2dec"}) {
    const Gauss& g = gauss(f);
    standardise(f, Mahalanobis(g, Feature(hold, f), mh, mw), Mahalanobis(g, Feature(val, f), mh, mw));
  }
  {
    Gauss g = Fit(Feature(rfit, "f2dec"));
    standardise("r:f2dec", Mahalanobis(g, Feature(rhold, "f2dec"), mh, mw),
                Mahalanobis(g, Feature(rval, "f2dec"), mh, mw));
  }
  for (const char* f : {"f2dec", "e1"}) {
    if (!self_nn) break;
    const Gauss& g = gauss(f);
    for (int excl : {2, 6}) {
      if (std::string(f) == "e1" && excl == 2) continue;
      std::string name = std::string("self") + std::to_string(excl) + ":" + f;
      torch::Tensor xh = Feature(hold, f), xv = Feature(val, f);
      if (std::string(f) == "e1") {  // 1/2 resolution: too many cells; pool to 1/4
        xh = F::avg_pool2d(xh, F::AvgPool2dFuncOptions(2));
        xv = F::avg_pool2d(xv, F::AvgPool2dFuncOptions(2));
      }
      std::fprintf(stderr, "research: %s...\n", name.c_str());
      standardise(name, SelfMatch(g, xh, excl, mh, mw), SelfMatch(g, xv, excl, mh, mw));
    }
  }
  {
    Mixture mx = FitMixture(Feature(fit, "f2dec"), 3);
    standardise("mix3img:f2dec", MixtureMap(mx, Feature(hold, "f2dec"), mh, mw),
                MixtureMap(mx, Feature(val, "f2dec"), mh, mw));
  }
  auto evaluate = [&](const std::string& label,
                      const std::vector<std::pair<std::string, float>>& parts,
                      const torch::Tensor& img_add = {}, const torch::Tensor& hold_add = {}) {
    torch::Tensor h, v;
    for (const auto& [name, w] : parts) {
      const auto& bv = branch.at(name);
      h = h.defined() ? h + w * bv.first : w * bv.first;
      v = v.defined() ? v + w * bv.second : w * bv.second;
    }
    h = Blur(h, 1.0f);
    v = Blur(v, 1.0f);
    if (hold_add.defined() && img_add.defined()) {  // image-level term, before the calibration
      h = h + hold_add.view({-1, 1, 1, 1});
      v = v + img_add.view({-1, 1, 1, 1});
    }
    torch::Tensor cv = CellCalibrate(h, v, 0.5f);
    torch::Tensor flat = cv.reshape({cv.size(0), -1});
    torch::Tensor sc = std::get<0>(flat.max(1));
    std::vector<float> s(sc.data_ptr<float>(), sc.data_ptr<float>() + sc.numel());
    double auc = Auroc(s, lab);
    std::string line;
    char buf[64];
    std::map<std::string, bool> seen;
    for (size_t i = 0; i < s.size(); ++i) {
      const std::string& t = (*d.types)[i];
      if (!lab[i] || seen[t]) continue;
      seen[t] = true;
      std::vector<float> ss;
      std::vector<bool> ll;
      for (size_t j = 0; j < s.size(); ++j)
        if (!lab[j] || (*d.types)[j] == t) { ss.push_back(s[j]); ll.push_back(lab[j]); }
      std::snprintf(buf, sizeof(buf), " %s %.2f", t.substr(0, 2).c_str(), Auroc(ss, ll));
      line += buf;
    }
    // Pixel AUROC at map resolution (subsampled: every image with a mask or good).
    std::vector<float> px, pxu;
    std::vector<bool> pl, plu;
    for (size_t i = 0; i < s.size(); ++i) {
      const torch::Tensor& m = (*d.masks)[i];
      if (lab[i] && !m.defined()) continue;
      const bool un = !lab[i] || (*d.types)[i] == "uneven";
      torch::Tensor c = cv[int64_t(i)][0].contiguous();
      torch::Tensor g = lab[i] ? m.contiguous() : torch::zeros_like(c);
      const float* pc = c.data_ptr<float>();
      const float* pg = g.data_ptr<float>();
      for (int64_t j = 0; j < c.numel(); j += 2) {
        px.push_back(pc[j]);
        pl.push_back(pg[j] > 0.5f);
        if (un) {
          pxu.push_back(pc[j]);
          plu.push_back(pg[j] > 0.5f);
        }
      }
    }
    std::printf("research %-44s img %.3f px %.3f pxun %.3f |%s\n", label.c_str(), auc,
                Auroc(px, pl), Auroc(pxu, plu), line.c_str());
    std::fflush(stdout);
  };

  for (const auto& [name, unused] : branch) evaluate(name, {{name, 1.0f}});
  // The maps of session 2's default (no image-level term) and single additions to it.
  const std::vector<std::pair<std::string, float>> base = {{"seg", 0.35f}, {"f2dec", 1.0f}};
  evaluate("default (session 2)", base);
  for (const auto& [extra, w] : std::vector<std::pair<std::string, float>>{
           {"e1", 1.0f}, {"avg17:f2dec", 1.0f}, {"gsr:f2dec", 0.5f}, {"r:f2dec", 0.5f}}) {
    auto parts = base;
    parts.push_back({extra, w});
    char label[96];
    std::snprintf(label, sizeof(label), "default + %.1f %s", w, extra.c_str());
    evaluate(label, parts);
  }
  evaluate("seg + mixture of 3 (image's nearest)", {{"seg", 0.35f}, {"mix3img:f2dec", 1.0f}});
  for (const char* extra : {"self2:f2dec", "self6:f2dec", "self6:e1"}) {
    if (!branch.count(extra)) continue;
    for (float w : {0.5f, 1.0f}) {
      auto parts = base;
      parts.push_back({extra, w});
      char label[96];
      std::snprintf(label, sizeof(label), "default + %.1f %s", w, extra);
      evaluate(label, parts);
      parts.push_back({"e1", 1.0f});
      std::snprintf(label, sizeof(label), "default + e1 + %.1f %s", w, extra);
      evaluate(label, parts);
    }
  }
  if (what == "tta") {
    // Session 6: flip test-time augmentation: every map is the mean of the
    // image's and its mirror image's (mirrored back); 2x the compute.
    auto mirrored = [](const std::vector<torch::Tensor>& xs) {
      std::vector<torch::Tensor> out;
      for (const torch::Tensor& x : xs) out.push_back(x.flip({2}));
      return out;
    };
    TapSet holdf = ComputeTaps(net, mirrored(hold_x)), valf = ComputeTaps(net, mirrored(*d.val_x));
    standardise("tta:seg", 0.5 * (hold.seg + holdf.seg.flip({3})), 0.5 * (val.seg + valf.seg.flip({3})));
    for (const char* f : {"f2dec", "e1"}) {
      const Gauss& g = gauss(f);
      torch::Tensor h = 0.5 * (Mahalanobis(g, Feature(hold, f), mh, mw) +
                               Mahalanobis(g, Feature(holdf, f), mh, mw).flip({3}));
      torch::Tensor v = 0.5 * (Mahalanobis(g, Feature(val, f), mh, mw) +
                               Mahalanobis(g, Feature(valf, f), mh, mw).flip({3}));
      standardise(std::string("tta:") + f, h, v);
    }
    evaluate("tta: f2dec", {{"tta:f2dec", 1.0f}});
    evaluate("tta: default", {{"tta:seg", 0.35f}, {"tta:f2dec", 1.0f}});
    evaluate("tta: default + e1", {{"tta:seg", 0.35f}, {"tta:f2dec", 1.0f}, {"tta:e1", 1.0f}});
    evaluate("no tta: default + e1", {{"seg", 0.35f}, {"f2dec", 1.0f}, {"e1", 1.0f}});
  }
  if (what == "pos") {
    // Session 6: PaDiM-style densities per map position.
    struct V { const char* feat; int k; bool full, flip; };
    for (V v : std::vector<V>{{"f2dec", 1, false, true}, {"f2dec", 3, false, true}, {"f2dec", 3, true, true},
                              {"f2dec", 5, true, true}, {"f2dec", 3, true, false}, {"e1", 3, true, true},
                              {"e1", 5, true, true}}) {
      std::string name = std::string(v.full ? "pg" : "pm") + std::to_string(v.k) + (v.flip ? "f" : "") + ":" + v.feat;
      std::fprintf(stderr, "research: %s...\n", name.c_str());
      std::vector<torch::Tensor> maps;
      PositionDensity(gauss(v.feat), Feature(fit, v.feat), {Feature(hold, v.feat), Feature(val, v.feat)}, v.k,
                      v.full, v.flip, mh, mw, &maps);
      standardise(name, maps[0], maps[1]);
      evaluate(name, {{name, 1.0f}});
      evaluate("seg + " + name, {{"seg", 0.35f}, {name, 1.0f}});
      evaluate("default + " + name, {{"seg", 0.35f}, {"f2dec", 1.0f}, {name, 1.0f}});
      evaluate("default + e1 + " + name, {{"seg", 0.35f}, {"f2dec", 1.0f}, {"e1", 1.0f}, {name, 1.0f}});
      evaluate("seg + e1 + " + name, {{"seg", 0.35f}, {"e1", 1.0f}, {name, 1.0f}});
    }
    for (const char* a : {"pg3f:f2dec", "pg5f:f2dec"})
      for (const char* b : {"pg3f:e1", "pg5f:e1"})
        evaluate(std::string("seg + ") + a + " + " + b, {{"seg", 0.35f}, {a, 1.0f}, {b, 1.0f}});
    evaluate("default + e1 (reference)", {{"seg", 0.35f}, {"f2dec", 1.0f}, {"e1", 1.0f}});
  }
  if (local) {
    torch::Tensor cf = CellDesc(fit), ch = CellDesc(hold), cv = CellDesc(val);
    for (double reg : {0.01, 0.1}) {
      torch::Tensor lh = LocalGlobal(cf, ch, reg), lv = LocalGlobal(cf, cv, reg);
      torch::Tensor gh = lh.mean({1, 2, 3}), gv = lv.mean({1, 2, 3});
      float m = gh.mean().item<float>(), sd = std::max(1e-6f, gh.std().item<float>());
      lh = (lh - m) / sd;
      lv = (lv - m) / sd;
      gh = (gh - m) / sd;
      gv = (gv - m) / sd;
      for (float w : {1.0f, 2.0f}) {
        char label[96];
        std::snprintf(label, sizeof(label), "default + %.0f x global (cell mean) r%.2f", w, reg);
        evaluate(label, base, w * gv, w * gh);
        for (int k : {1, 5, 9, 17}) {
          branch["local"] = {w * Avg(lh, k), w * Avg(lv, k)};
          std::snprintf(label, sizeof(label), "default + %.0f x local%d r%.2f", w, k, reg);
          evaluate(label, {{"seg", 0.35f}, {"f2dec", 1.0f}, {"local", 1.0f}});
          std::snprintf(label, sizeof(label), "default + e1 + %.0f x local%d r%.2f", w, k, reg);
          evaluate(label, {{"seg", 0.35f}, {"f2dec", 1.0f}, {"e1", 1.0f}, {"local", 1.0f}});
        }
      }
    }
  }
  // Image-level term (added to every cell before the cell calibration, as
  // exported): descriptor mode 0 = means of the 1/4 features, 1 = + their
  // stds, 3 = means and stds of all four taps, 4 = means of all four taps
  // (the trainer's --global-weight).
  for (int mode : {0, 1, 3, 4}) {
    for (double reg : {0.01, 0.1}) {
      torch::Tensor df = GlobalDesc(net, fit, mode);
      torch::Tensor gh = GlobalDistance(df, GlobalDesc(net, hold, mode), reg);
      torch::Tensor gv = GlobalDistance(df, GlobalDesc(net, val, mode), reg);
      float m = gh.mean().item<float>(), sd = std::max(1e-6f, gh.std().item<float>());
      gv = (gv - m) / sd;
      gh = (gh - m) / sd;
      std::vector<float> sc(gv.data_ptr<float>(), gv.data_ptr<float>() + gv.numel());
      std::printf("research image-level term alone, mode %d reg %.2f: img %.3f\n", mode, reg,
                  Auroc(sc, lab));
      for (float w : {1.0f, 2.0f}) {
        char label[96];
        std::snprintf(label, sizeof(label), "default + %.0f x image-level m%d r%.2f", w, mode, reg);
        evaluate(label, base, w * gv, w * gh);
      }
    }
  }
}

}  // namespace flawlens::train
