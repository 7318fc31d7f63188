#include "train/research.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>

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

torch::Tensor SelfRef(const torch::Tensor& x, int k) {
  torch::Tensor m = F::avg_pool2d(
      x, F::AvgPool2dFuncOptions(k).stride(1).padding(k / 2).count_include_pad(false));
  return x - m;
}

torch::Tensor Feature(const TapSet& t, const std::string& name) {
  if (name == "e1") return t.e1;
  if (name == "f2") return t.f2;
  if (name == "dec") return t.dec;
  if (name == "f3") return t.f3;
  if (name == "f2dec") return torch::cat({t.f2, t.dec}, 1);
  if (name == "e1p+f2dec")
    return torch::cat({F::avg_pool2d(t.e1, F::AvgPool2dFuncOptions(2)), t.f2, t.dec}, 1);
  if (name == "sr15:f2dec") return SelfRef(torch::cat({t.f2, t.dec}, 1), 15);
  if (name == "sr31:f2dec") return SelfRef(torch::cat({t.f2, t.dec}, 1), 31);
  if (name == "sr15:f3") return SelfRef(t.f3, 15);
  if (name == "sr31:e1") return SelfRef(t.e1, 31);
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

torch::Tensor Mahalanobis(const Gauss& g, const torch::Tensor& feats, int64_t mh, int64_t mw) {
  torch::NoGradGuard ng;
  int64_t c = feats.size(1);
  std::vector<torch::Tensor> out;
  for (int64_t i = 0; i < feats.size(0); i += 16) {
    torch::Tensor f = feats.slice(0, i, std::min(feats.size(0), i + 16));
    torch::Tensor z = F::conv2d(f, g.w.view({c, c, 1, 1}), F::Conv2dFuncOptions().bias(g.b));
    out.push_back(ToMapRes((z * z).sum(1, true), mh, mw));
  }
  return torch::cat(out);
}

torch::Tensor Blur(const torch::Tensor& m, float sigma) {
  torch::Tensor k = MapBlurKernel(sigma);
  return F::conv2d(m, k, F::Conv2dFuncOptions().padding(k.size(2) / 2));
}

// Per-cell calibration as in the trainer (flip-symmetrised, 3x3 smoothed, std shrink).
torch::Tensor CellCalibrate(const torch::Tensor& hold, const torch::Tensor& maps, float shrink) {
  torch::Tensor h = torch::cat({hold, hold.flip({3}), hold.flip({2}), hold.flip({2, 3})});
  auto smooth = [](torch::Tensor t) {
    torch::Tensor p = torch::replication_pad2d(t.view({1, 1, t.size(0), t.size(1)}), {1, 1, 1, 1});
    return torch::avg_pool2d(p, 3, 1)[0][0];
  };
  torch::Tensor mean = smooth(h.mean(0)[0]);
  torch::Tensor sd = smooth(h.std(0)[0]);
  float floor = std::max(1e-3f, 0.5f * sd.median().item<float>());
  sd = sd.clamp_min(floor);
  sd = torch::sqrt((1 - shrink) * sd * sd + shrink * (sd * sd).mean());
  return (maps - mean) / sd;
}

}  // namespace

void RunResearch(FlawNet& net, const ResearchData& d) {
  torch::NoGradGuard ng;
  std::fprintf(stderr, "research: computing taps...\n");
  TapSet fit = ComputeTaps(net, *d.fit_x);
  TapSet hold = ComputeTaps(net, *d.hold_x);
  TapSet val = ComputeTaps(net, *d.val_x);
  const int64_t mh = d.map_h, mw = d.map_w;
  const auto& lab = *d.defective;

  // Standardised (on held-out good) raw maps per candidate branch.
  std::map<std::string, std::pair<torch::Tensor, torch::Tensor>> branch;  // hold, val
  auto standardise = [&](const std::string& name, torch::Tensor h, torch::Tensor v) {
    float m = h.mean().item<float>(), s = std::max(1e-6f, h.std().item<float>());
    branch[name] = {(h - m) / s, (v - m) / s};
  };
  standardise("seg", hold.seg, val.seg);
  for (const char* f : {"f2dec", "e1", "f2", "dec", "f3", "e1p+f2dec", "sr15:f2dec",
                               "sr31:f2dec", "sr15:f3", "sr31:e1"}) {
    Gauss g = Fit(Feature(fit, f));
    standardise(f, Mahalanobis(g, Feature(hold, f), mh, mw), Mahalanobis(g, Feature(val, f), mh, mw));
  }

  auto evaluate = [&](const std::string& label,
                      const std::vector<std::pair<std::string, float>>& parts, float shrink,
                      bool minus_median) {
    torch::Tensor h, v;
    for (const auto& [name, w] : parts) {
      const auto& bv = branch.at(name);
      h = h.defined() ? h + w * bv.first : w * bv.first;
      v = v.defined() ? v + w * bv.second : w * bv.second;
    }
    h = Blur(h, 1.0f);
    v = Blur(v, 1.0f);
    torch::Tensor cv = CellCalibrate(h, v, shrink);
    torch::Tensor flat = cv.reshape({cv.size(0), -1});
    torch::Tensor sc = std::get<0>(flat.max(1));
    if (minus_median) sc = sc - std::get<0>(flat.median(1));
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
    std::vector<float> px;
    std::vector<bool> pl;
    for (size_t i = 0; i < s.size(); ++i) {
      const torch::Tensor& m = (*d.masks)[i];
      if (lab[i] && !m.defined()) continue;
      torch::Tensor c = cv[int64_t(i)][0].contiguous();
      torch::Tensor g = lab[i] ? m.contiguous() : torch::zeros_like(c);
      const float* pc = c.data_ptr<float>();
      const float* pg = g.data_ptr<float>();
      for (int64_t j = 0; j < c.numel(); j += 2) {
        px.push_back(pc[j]);
        pl.push_back(pg[j] > 0.5f);
      }
    }
    std::printf("research %-44s img %.3f px %.3f |%s\n", label.c_str(), auc, Auroc(px, pl),
                line.c_str());
    std::fflush(stdout);
  };

  for (const auto& [name, unused] : branch) evaluate(name, {{name, 1.0f}}, 0.5f, false);
  evaluate("seg.35+f2dec (default)", {{"seg", 0.35f}, {"f2dec", 1.0f}}, 0.5f, false);
  evaluate("seg.35+f2dec shrink1", {{"seg", 0.35f}, {"f2dec", 1.0f}}, 1.0f, false);
  evaluate("seg.35+f2dec -median", {{"seg", 0.35f}, {"f2dec", 1.0f}}, 0.5f, true);
  evaluate("seg.35+f2dec+e1", {{"seg", 0.35f}, {"f2dec", 1.0f}, {"e1", 1.0f}}, 0.5f, false);
  evaluate("seg.35+f2dec+f3", {{"seg", 0.35f}, {"f2dec", 1.0f}, {"f3", 1.0f}}, 0.5f, false);
  evaluate("seg.35+f2dec+e1+f3", {{"seg", 0.35f}, {"f2dec", 1.0f}, {"e1", 1.0f}, {"f3", 1.0f}}, 0.5f, false);
  evaluate("seg.35+f2dec+sr15:f2dec", {{"seg", 0.35f}, {"f2dec", 1.0f}, {"sr15:f2dec", 1.0f}}, 0.5f, false);
  evaluate("seg.35+f2dec+sr31:f2dec", {{"seg", 0.35f}, {"f2dec", 1.0f}, {"sr31:f2dec", 1.0f}}, 0.5f, false);
  evaluate("seg.35+f2dec+sr31:e1", {{"seg", 0.35f}, {"f2dec", 1.0f}, {"sr31:e1", 1.0f}}, 0.5f, false);
  evaluate("seg.35+f2dec+sr15:f3", {{"seg", 0.35f}, {"f2dec", 1.0f}, {"sr15:f3", 1.0f}}, 0.5f, false);
  evaluate("seg.35+all", {{"seg", 0.35f}, {"f2dec", 1.0f}, {"e1", 1.0f}, {"f3", 1.0f},
                          {"sr15:f2dec", 1.0f}, {"sr31:e1", 1.0f}}, 0.5f, false);
  evaluate("seg.35+all -median", {{"seg", 0.35f}, {"f2dec", 1.0f}, {"e1", 1.0f}, {"f3", 1.0f},
                                  {"sr15:f2dec", 1.0f}, {"sr31:e1", 1.0f}}, 0.5f, true);
}

}  // namespace flawlens::train
