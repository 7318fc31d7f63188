// Helpers of the from-scratch trainer's phases (trainer_run.h).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include "fit/calibration.h"
#include "train/trainer_run.h"

namespace flawlens::train::scratch {
namespace {

// `fn(plane)` on each map of a copy of `maps` (N x 1 x h x w).
template <typename Fn>
torch::Tensor ForEachPlane(const torch::Tensor& maps, Fn fn) {
  torch::Tensor out = maps.detach().to(torch::kFloat32).contiguous().clone();
  const int64_t cells = out.size(2) * out.size(3);
  float* p = out.data_ptr<float>();
  for (int64_t i = 0; i < out.size(0); ++i) fn(p + i * cells);
  return out;
}

}  // namespace

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

// Preprocess to an HWC float buffer.
Result<std::vector<float>> Prep(const ImageView& view, const PreprocessConfig& cfg) {
  std::vector<float> out(size_t(cfg.out_h()) * cfg.out_w() * cfg.channels);
  PreprocessScratch scratch;
  RectF covered;
  FLAWLENS_RETURN_IF_ERROR(Preprocess(view, cfg, RectF{}, out.data(), &scratch, &covered));
  return out;
}

torch::Tensor HwcToTensor(const std::vector<float>& hwc, int h, int w, int c) {
  return torch::from_blob(const_cast<float*>(hwc.data()), {h, w, c}, torch::kFloat32)
      .permute({2, 0, 1})
      .clone();
}

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

}  // namespace flawlens::train::scratch
