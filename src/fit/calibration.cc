#include "fit/calibration.h"

#include <algorithm>
#include <cmath>

#include "fit/threshold.h"
#include "image/gaussian_blur.h"

namespace flawlens::fit {
namespace {

// 3x3 box mean with replicated borders.
std::vector<double> Smooth3x3(const std::vector<double>& v, int h, int w) {
  std::vector<double> out(v.size());
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      double s = 0;
      for (int dy = -1; dy <= 1; ++dy) {
        const int yy = std::clamp(y + dy, 0, h - 1);
        for (int dx = -1; dx <= 1; ++dx) s += v[size_t(yy) * w + std::clamp(x + dx, 0, w - 1)];
      }
      out[size_t(y) * w + x] = s / 9.0;
    }
  }
  return out;
}

}  // namespace

Result<CellCalibration> FitCellCalibration(const float* maps, int n, int h, int w, bool mirror,
                                           float shrink, const RectI* content) {
  if (n < 2 || h < 1 || w < 1) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "cell calibration needs at least 2 maps of at least 1x1 cells (got %d of %dx%d)",
                     n, w, h);
  }
  if (mirror && content) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "cell calibration: mirroring and content rectangles exclude each other");
  }
  const size_t cells = size_t(h) * w;
  std::vector<double> sum(cells, 0.0), sq(cells, 0.0), count(cells, 0.0);
  // Whether cell (y, x) of map k is over its image.
  auto inside = [&](int k, int y, int x) {
    if (!content) return true;
    const RectI& r = content[k];
    return y >= r.y && y < r.y + r.h && x >= r.x && x < r.x + r.w;
  };
  const int flips = mirror ? 4 : 1;
  // visit(cell, value) for every cell over its image, of every map (and of
  // its mirror images), always in the same order.
  auto for_each_value = [&](auto&& visit) {
    for (int f = 0; f < flips; ++f) {
      const bool fx = f & 1, fy = f & 2;
      for (int k = 0; k < n; ++k) {
        const float* m = maps + size_t(k) * cells;
        for (int y = 0; y < h; ++y) {
          for (int x = 0; x < w; ++x) {
            if (!inside(k, y, x)) continue;
            visit(size_t(y) * w + x, double(m[size_t(fy ? h - 1 - y : y) * w + (fx ? w - 1 - x : x)]));
          }
        }
      }
    }
  };
  double all_sum = 0, all_count = 0;
  for_each_value([&](size_t i, double v) {
    sum[i] += v;
    count[i] += 1;
    all_sum += v;
    all_count += 1;
  });
  // Cells over fewer than 2 images (padding nearly always) take the values of
  // all cells over images: they are rarely or never scored.
  const double all_mean = all_sum / std::max(1.0, all_count);
  std::vector<double> mean(cells), sd(cells);
  for (size_t i = 0; i < cells; ++i) mean[i] = count[i] >= 2 ? sum[i] / count[i] : all_mean;
  double all_sq = 0;
  for_each_value([&](size_t i, double v) {
    sq[i] += (v - mean[i]) * (v - mean[i]);
    all_sq += (v - all_mean) * (v - all_mean);
  });
  const double all_sd = std::sqrt(all_sq / std::max(1.0, all_count - 1));
  for (size_t i = 0; i < cells; ++i) {
    sd[i] = count[i] >= 2 ? std::sqrt(sq[i] / (count[i] - 1)) : all_sd;
  }
  mean = Smooth3x3(mean, h, w);
  sd = Smooth3x3(sd, h, w);
  std::vector<double> sorted = sd;
  const size_t mid = (cells - 1) / 2;  // the lower median, as torch::median
  std::nth_element(sorted.begin(), sorted.begin() + long(mid), sorted.end());
  const double floor = std::max(1e-3, 0.5 * sorted[mid]);
  double mean_var = 0;
  for (double& s : sd) {
    s = std::max(s, floor);
    mean_var += s * s;
  }
  mean_var /= double(cells);
  const double k = std::clamp(double(shrink), 0.0, 1.0);
  CellCalibration cc;
  cc.h = h;
  cc.w = w;
  cc.mean.resize(cells);
  cc.std.resize(cells);
  for (size_t i = 0; i < cells; ++i) {
    cc.mean[i] = float(mean[i]);
    cc.std[i] = float(std::sqrt((1 - k) * sd[i] * sd[i] + k * mean_var));
  }
  for (size_t i = 0; i < cells; ++i) {
    if (!std::isfinite(cc.mean[i]) || !(cc.std[i] > 0) || !std::isfinite(cc.std[i])) {
      return MakeError(ErrorCode::kNonFinite,
                       "cell calibration: cell %zu has mean %g and std %g (non-finite maps?)", i,
                       double(cc.mean[i]), double(cc.std[i]));
    }
  }
  return cc;
}

Result<EdgeCalibration> FitEdgeCalibration(const float* maps, int n, int h, int w,
                                           const RectI* content, int s, float shrink) {
  if (n < 2 || h < 1 || w < 1 || s < 2 || s > 128 || s % 2 != 0 || content == nullptr) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "edge calibration needs at least 2 maps, their content rectangles and an "
                     "even table side in [2, 128] (got %d maps of %dx%d, side %d)",
                     n, w, h, s);
  }
  const size_t entries = size_t(s) * s, cells = size_t(h) * w;
  std::vector<double> sum(entries, 0.0), sq(entries, 0.0), count(entries, 0.0);
  double all_sum = 0, all_sq = 0, all_count = 0;
  for (int k = 0; k < n; ++k) {
    const RectI& c = content[k];
    const float* m = maps + size_t(k) * cells;
    for (int y = 0; y < c.h; ++y) {
      const int r = EdgeTableIndex(y, c.h, s);
      for (int x = 0; x < c.w; ++x) {
        const size_t e = size_t(r) * s + size_t(EdgeTableIndex(x, c.w, s));
        const double v = m[size_t(c.y + y) * w + size_t(c.x + x)];
        sum[e] += v;
        sq[e] += v * v;
        count[e] += 1;
        all_sum += v;
        all_sq += v * v;
        all_count += 1;
      }
    }
  }
  const double all_mean = all_sum / std::max(1.0, all_count);
  const double all_sd =
      std::sqrt(std::max(0.0, all_sq - all_count * all_mean * all_mean) / std::max(1.0, all_count - 1));
  std::vector<double> mean(entries), sd(entries);
  for (size_t e = 0; e < entries; ++e) {
    const bool enough = count[e] >= 30;
    mean[e] = enough ? sum[e] / count[e] : all_mean;
    sd[e] = enough ? std::sqrt(std::max(0.0, sq[e] - count[e] * mean[e] * mean[e]) / (count[e] - 1))
                   : all_sd;
  }
  std::vector<double> sorted = sd;
  const size_t mid = (entries - 1) / 2;
  std::nth_element(sorted.begin(), sorted.begin() + long(mid), sorted.end());
  const double floor = std::max(1e-3, 0.5 * sorted[mid]);
  const double k = std::clamp(double(shrink), 0.0, 1.0);
  const double pooled = std::max(all_sd, floor);
  EdgeCalibration ec;
  ec.s = s;
  ec.mean.resize(entries);
  ec.std.resize(entries);
  for (size_t e = 0; e < entries; ++e) {
    const double v = std::max(sd[e], floor);
    ec.mean[e] = float(mean[e]);
    ec.std[e] = float(std::sqrt((1 - k) * v * v + k * pooled * pooled));
    if (!std::isfinite(ec.mean[e]) || !(ec.std[e] > 0) || !std::isfinite(ec.std[e])) {
      return MakeError(ErrorCode::kNonFinite,
                       "edge calibration: entry %zu has mean %g and std %g (non-finite maps?)", e,
                       double(ec.mean[e]), double(ec.std[e]));
    }
  }
  return ec;
}

void ApplyEdgeCalibration(const EdgeCalibration& e, float* map, int w, const RectI& content) {
  for (int y = 0; y < content.h; ++y) {
    const int r = EdgeTableIndex(y, content.h, e.s);
    float* row = map + size_t(content.y + y) * w + content.x;
    for (int x = 0; x < content.w; ++x) {
      const size_t i = size_t(r) * e.s + size_t(EdgeTableIndex(x, content.w, e.s));
      row[x] = (row[x] - e.mean[i]) / e.std[i];
    }
  }
}

void ApplyCellCalibration(const CellCalibration& cc, float* map) {
  const size_t cells = size_t(cc.h) * cc.w;
  for (size_t i = 0; i < cells; ++i) map[i] = (map[i] - cc.mean[i]) / cc.std[i];
}

Calibration ScoreCalibration(const std::vector<float>& good_raw_scores, float sensitivity) {
  auto r = CalibrateScores(good_raw_scores, SensitivityToRate(sensitivity));
  if (r.ok()) return r->calibration;
  // One score (or non-finite ones): no spread to estimate; flag anything
  // above the one good score seen by a margin.
  Calibration cal;
  const float v = good_raw_scores.empty() || !std::isfinite(good_raw_scores[0]) ? 0.0f
                                                                                : good_raw_scores[0];
  cal.offset = v;
  cal.scale = std::max(1e-3f, std::fabs(v) * 0.1f);
  cal.threshold = 3.0f;
  cal.map_low = 0.0f;
  cal.map_high = 6.0f;
  return cal;
}

void BlurMap(float* map, int w, int h, float sigma) {
  if (!(sigma > 0) || w * h <= 1) return;
  const std::vector<float> k = GaussianKernel(sigma);
  const int r = int(k.size() / 2);
  std::vector<float> scratch(BlurScratchFloats(w, h, 1, r));
  std::vector<int> rows(k.size());
  GaussianBlurPlane(map, map, w, h, 1, k.data(), r, BlurBorder::kReflect101, scratch.data(),
                    rows.data());
}

}  // namespace flawlens::fit
