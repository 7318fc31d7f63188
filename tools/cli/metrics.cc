#include "cli/metrics.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>

namespace flawlens::cli {

namespace {

// Indices sorted by descending score (stable: equal scores keep input order).
std::vector<size_t> DescendingOrder(const std::vector<float>& scores) {
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return scores[a] > scores[b]; });
  return order;
}

F1Score MakeF1(int64_t tp, int64_t fp, int64_t fn, int64_t tn, double threshold) {
  F1Score r;
  r.tp = tp;
  r.fp = fp;
  r.fn = fn;
  r.tn = tn;
  r.threshold = threshold;
  r.precision = tp + fp > 0 ? static_cast<double>(tp) / static_cast<double>(tp + fp) : 0.0;
  r.recall = tp + fn > 0 ? static_cast<double>(tp) / static_cast<double>(tp + fn) : 0.0;
  const int64_t denom = 2 * tp + fp + fn;
  r.f1 = denom > 0 ? 2.0 * static_cast<double>(tp) / static_cast<double>(denom) : 0.0;
  return r;
}

}  // namespace

double RecallAtFalseAlarms(const std::vector<float>& scores, const std::vector<bool>& labels,
                           double false_alarms) {
  std::vector<float> neg, pos;
  for (size_t i = 0; i < scores.size() && i < labels.size(); ++i) {
    (labels[i] ? pos : neg).push_back(scores[i]);
  }
  if (neg.empty() || pos.empty()) return kNaN;
  std::sort(neg.begin(), neg.end());
  const size_t allowed = size_t(std::floor(std::max(0.0, false_alarms) * double(neg.size()) + 1e-9));
  if (allowed >= neg.size()) return 1.0;
  const float limit = neg[neg.size() - 1 - allowed];  // the highest unflagged negative
  size_t caught = 0;
  for (float p : pos) caught += p > limit;
  return double(caught) / double(pos.size());
}

double Auroc(const std::vector<float>& scores, const std::vector<bool>& labels) {
  if (scores.size() != labels.size()) return kNaN;
  const size_t n = scores.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  // Mid-ranks (1-based) of tied groups; sum of the ranks of the positives.
  double rank_sum = 0;
  int64_t pos = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && scores[order[j]] == scores[order[i]]) ++j;
    const double mid_rank = 0.5 * static_cast<double>(i + 1 + j);  // mean of i+1..j
    for (size_t k = i; k < j; ++k) {
      if (labels[order[k]]) {
        rank_sum += mid_rank;
        ++pos;
      }
    }
    i = j;
  }
  const int64_t neg = static_cast<int64_t>(n) - pos;
  if (pos == 0 || neg == 0) return kNaN;
  const double u = rank_sum - 0.5 * static_cast<double>(pos) * static_cast<double>(pos + 1);
  return u / (static_cast<double>(pos) * static_cast<double>(neg));
}

Interval AurocBootstrap(const std::vector<float>& scores, const std::vector<bool>& labels,
                        const std::vector<std::string>& groups, double level, int resamples,
                        uint32_t seed) {
  Interval out;
  const size_t n = scores.size();
  if (labels.size() != n || (!groups.empty() && groups.size() != n) || resamples < 1) return out;
  // Units of resampling: the groups of each class (a group that holds both
  // classes becomes two units).
  std::vector<std::vector<size_t>> units[2];
  {
    std::map<std::string, size_t> index[2];
    for (size_t i = 0; i < n; ++i) {
      const int c = labels[i] ? 1 : 0;
      const std::string key = groups.empty() ? std::to_string(i) : groups[i];
      auto [it, added] = index[c].emplace(key, units[c].size());
      if (added) units[c].emplace_back();
      units[c][it->second].push_back(i);
    }
  }
  if (units[0].empty() || units[1].empty()) return out;
  std::mt19937 rng(seed);
  std::vector<double> aucs;
  aucs.reserve(static_cast<size_t>(resamples));
  std::vector<float> s;
  std::vector<bool> l;
  for (int r = 0; r < resamples; ++r) {
    s.clear();
    l.clear();
    for (int c = 0; c < 2; ++c) {
      std::uniform_int_distribution<size_t> pick(0, units[c].size() - 1);
      for (size_t k = 0; k < units[c].size(); ++k) {
        for (size_t i : units[c][pick(rng)]) {
          s.push_back(scores[i]);
          l.push_back(c == 1);
        }
      }
    }
    aucs.push_back(Auroc(s, l));
  }
  std::sort(aucs.begin(), aucs.end());
  auto quantile = [&](double q) {
    const double pos = q * static_cast<double>(aucs.size() - 1);
    const size_t i = static_cast<size_t>(pos);
    const double f = pos - static_cast<double>(i);
    return i + 1 < aucs.size() ? aucs[i] * (1 - f) + aucs[i + 1] * f : aucs[i];
  };
  out.lo = quantile(0.5 * (1 - level));
  out.hi = quantile(0.5 * (1 + level));
  return out;
}

std::vector<RocPoint> RocCurve(const std::vector<float>& scores, const std::vector<bool>& labels) {
  std::vector<RocPoint> out;
  if (scores.size() != labels.size()) return out;
  const int64_t pos = std::count(labels.begin(), labels.end(), true);
  const int64_t neg = static_cast<int64_t>(labels.size()) - pos;
  if (pos == 0 || neg == 0) return out;
  const std::vector<size_t> order = DescendingOrder(scores);
  out.push_back({0.0, 0.0, std::numeric_limits<double>::infinity()});
  int64_t tp = 0, fp = 0;
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j < order.size() && scores[order[j]] == scores[order[i]]) {
      labels[order[j]] ? ++tp : ++fp;
      ++j;
    }
    out.push_back({static_cast<double>(fp) / static_cast<double>(neg),
                   static_cast<double>(tp) / static_cast<double>(pos), scores[order[i]]});
    i = j;
  }
  return out;
}

F1Score F1AtThreshold(const std::vector<float>& scores, const std::vector<bool>& labels,
                      double threshold) {
  int64_t tp = 0, fp = 0, fn = 0, tn = 0;
  const size_t n = std::min(scores.size(), labels.size());
  for (size_t i = 0; i < n; ++i) {
    const bool predicted = scores[i] >= threshold;
    if (labels[i]) {
      predicted ? ++tp : ++fn;
    } else {
      predicted ? ++fp : ++tn;
    }
  }
  return MakeF1(tp, fp, fn, tn, threshold);
}

F1Score BestF1(const std::vector<float>& scores, const std::vector<bool>& labels) {
  const size_t n = std::min(scores.size(), labels.size());
  const int64_t pos = std::count(labels.begin(), labels.begin() + static_cast<long>(n), true);
  const int64_t neg = static_cast<int64_t>(n) - pos;
  F1Score best = MakeF1(0, 0, pos, neg, std::numeric_limits<double>::infinity());
  std::vector<float> s(scores.begin(), scores.begin() + static_cast<long>(n));
  const std::vector<size_t> order = DescendingOrder(s);
  int64_t tp = 0, fp = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && s[order[j]] == s[order[i]]) {
      labels[order[j]] ? ++tp : ++fp;
      ++j;
    }
    F1Score cur = MakeF1(tp, fp, pos - tp, neg - fp, s[order[i]]);
    if (cur.f1 > best.f1) best = cur;
    i = j;
  }
  return best;
}

double AreaUnderCurve(const std::vector<double>& x, const std::vector<double>& y, double x_max) {
  double area = 0;
  const size_t n = std::min(x.size(), y.size());
  for (size_t i = 1; i < n; ++i) {
    const double x0 = x[i - 1], x1 = x[i], y0 = y[i - 1], y1 = y[i];
    if (x0 >= x_max) break;
    if (x1 <= x_max) {
      area += 0.5 * (x1 - x0) * (y0 + y1);
    } else {
      const double y_end = x1 > x0 ? y0 + (y1 - y0) * (x_max - x0) / (x1 - x0) : y0;
      area += 0.5 * (x_max - x0) * (y0 + y_end);
      break;
    }
  }
  return area;
}

int LabelComponents(const uint8_t* mask, int width, int height, std::vector<int32_t>* labels) {
  const size_t count = static_cast<size_t>(width) * static_cast<size_t>(height);
  labels->assign(count, 0);
  std::vector<int32_t> stack;
  int32_t next = 0;
  for (size_t start = 0; start < count; ++start) {
    if (!mask[start] || (*labels)[start]) continue;
    ++next;
    (*labels)[start] = next;
    stack.push_back(static_cast<int32_t>(start));
    while (!stack.empty()) {
      const int32_t p = stack.back();
      stack.pop_back();
      const int px = p % width, py = p / width;
      for (int dy = -1; dy <= 1; ++dy) {
        for (int dx = -1; dx <= 1; ++dx) {
          const int qx = px + dx, qy = py + dy;
          if (qx < 0 || qy < 0 || qx >= width || qy >= height) continue;
          const size_t q = static_cast<size_t>(qy) * width + qx;
          if (mask[q] && !(*labels)[q]) {
            (*labels)[q] = next;
            stack.push_back(static_cast<int32_t>(q));
          }
        }
      }
    }
  }
  return next;
}

void UpsampleMap(const float* map, int map_width, int map_height, const RectF& map_rect,
                 int width, int height, std::vector<float>* out) {
  out->assign(static_cast<size_t>(width) * height, 0.0f);
  if (map_width <= 0 || map_height <= 0 || width <= 0 || height <= 0) return;
  RectF r = map_rect;
  if (r.w <= 0 || r.h <= 0) r = {0, 0, static_cast<float>(width), static_cast<float>(height)};
  // Per-column / per-row source index and weight.
  auto axis = [](int n, float origin, float extent, int cells, std::vector<int>* i0,
                 std::vector<float>* f) {
    i0->resize(n);
    f->resize(n);
    for (int k = 0; k < n; ++k) {
      double u = (k + 0.5 - origin) * cells / extent - 0.5;
      u = std::min(std::max(u, 0.0), static_cast<double>(cells - 1));
      int a = static_cast<int>(std::floor(u));
      if (a >= cells - 1) a = std::max(cells - 2, 0);
      (*i0)[k] = a;
      (*f)[k] = cells > 1 ? static_cast<float>(u - a) : 0.0f;
    }
  };
  std::vector<int> cx, cy;
  std::vector<float> fx, fy;
  axis(width, r.x, r.w, map_width, &cx, &fx);
  axis(height, r.y, r.h, map_height, &cy, &fy);
  const int dx = map_width > 1 ? 1 : 0;
  const int dy = map_height > 1 ? 1 : 0;
  for (int y = 0; y < height; ++y) {
    const float* row0 = map + static_cast<size_t>(cy[y]) * map_width;
    const float* row1 = row0 + static_cast<size_t>(dy) * map_width;
    const float wy = fy[y];
    float* dst = out->data() + static_cast<size_t>(y) * width;
    for (int x = 0; x < width; ++x) {
      const int a = cx[x];
      const float wx = fx[x];
      const float top = row0[a] + (row0[a + dx] - row0[a]) * wx;
      const float bottom = row1[a] + (row1[a + dx] - row1[a]) * wx;
      dst[x] = top + (bottom - top) * wy;
    }
  }
}

std::vector<float> PixelAccumulator::EdgesFromSample(std::vector<float> sample, int max_bins) {
  sample.erase(std::remove_if(sample.begin(), sample.end(), [](float v) { return std::isnan(v); }),
               sample.end());
  if (sample.empty()) return {0.0f};
  std::sort(sample.begin(), sample.end());
  std::vector<float> unique = sample;
  unique.erase(std::unique(unique.begin(), unique.end()), unique.end());
  if (max_bins < 2) max_bins = 2;
  if (static_cast<int64_t>(unique.size()) <= max_bins) return unique;
  // Quantiles of the sample (dense value ranges get more edges); keep min.
  std::vector<float> edges;
  edges.reserve(max_bins);
  const size_t n = sample.size();
  for (int i = 0; i < max_bins; ++i) {
    edges.push_back(sample[static_cast<size_t>(static_cast<double>(i) * n / max_bins)]);
  }
  edges.erase(std::unique(edges.begin(), edges.end()), edges.end());
  return edges;
}

PixelAccumulator::PixelAccumulator(std::vector<float> edges) : edges_(std::move(edges)) {
  if (edges_.empty()) edges_.push_back(0.0f);
  pos_.assign(edges_.size(), 0);
  neg_.assign(edges_.size(), 0);
  region_weight_.assign(edges_.size(), 0.0);
}

int PixelAccumulator::Bin(float v) const {
  const auto it = std::upper_bound(edges_.begin(), edges_.end(), v);
  const int b = static_cast<int>(it - edges_.begin()) - 1;
  return b < 0 ? 0 : b;
}

void PixelAccumulator::Add(const float* scores, const uint8_t* mask, int width, int height) {
  const size_t count = static_cast<size_t>(width) * static_cast<size_t>(height);
  if (mask == nullptr) {
    for (size_t i = 0; i < count; ++i) ++neg_[Bin(scores[i])];
    negatives_ += static_cast<int64_t>(count);
    return;
  }
  const int n = LabelComponents(mask, width, height, &labels_);
  sizes_.assign(static_cast<size_t>(n) + 1, 0);
  for (size_t i = 0; i < count; ++i) ++sizes_[labels_[i]];
  regions_ += n;
  for (size_t i = 0; i < count; ++i) {
    const int b = Bin(scores[i]);
    const int32_t l = labels_[i];
    if (l == 0) {
      ++neg_[b];
      ++negatives_;
    } else {
      ++pos_[b];
      ++positives_;
      region_weight_[b] += 1.0 / static_cast<double>(sizes_[l]);
    }
  }
}

bool PixelAccumulator::Merge(const PixelAccumulator& other) {
  if (other.edges_ != edges_) return false;
  for (size_t b = 0; b < edges_.size(); ++b) {
    pos_[b] += other.pos_[b];
    neg_[b] += other.neg_[b];
    region_weight_[b] += other.region_weight_[b];
  }
  positives_ += other.positives_;
  negatives_ += other.negatives_;
  regions_ += other.regions_;
  return true;
}

double PixelAccumulator::Auroc() const {
  if (positives_ == 0 || negatives_ == 0) return kNaN;
  // Going from the highest bin down: each negative beats... each positive in
  // a higher bin beats the negatives below; same bin = tie (0.5).
  double pairs = 0;
  double pos_above = 0;
  for (size_t b = edges_.size(); b-- > 0;) {
    pairs += static_cast<double>(neg_[b]) * (pos_above + 0.5 * static_cast<double>(pos_[b]));
    pos_above += static_cast<double>(pos_[b]);
  }
  return pairs / (static_cast<double>(positives_) * static_cast<double>(negatives_));
}

double PixelAccumulator::AurocTieBound() const {
  if (positives_ == 0 || negatives_ == 0) return kNaN;
  double ties = 0;
  for (size_t b = 0; b < edges_.size(); ++b) {
    ties += static_cast<double>(pos_[b]) * static_cast<double>(neg_[b]);
  }
  return 0.5 * ties / (static_cast<double>(positives_) * static_cast<double>(negatives_));
}

std::vector<RocPoint> PixelAccumulator::Roc() const {
  std::vector<RocPoint> out;
  if (positives_ == 0 || negatives_ == 0) return out;
  out.push_back({0.0, 0.0, std::numeric_limits<double>::infinity()});
  double tp = 0, fp = 0;
  for (size_t b = edges_.size(); b-- > 0;) {
    if (pos_[b] == 0 && neg_[b] == 0) continue;
    tp += static_cast<double>(pos_[b]);
    fp += static_cast<double>(neg_[b]);
    out.push_back({fp / static_cast<double>(negatives_), tp / static_cast<double>(positives_),
                   edges_[b]});
  }
  return out;
}

double PixelAccumulator::Pro(double max_fpr) const {
  if (regions_ == 0 || negatives_ == 0 || max_fpr <= 0) return kNaN;
  std::vector<double> fpr{0.0}, pro{0.0};
  double fp = 0, weight = 0;
  for (size_t b = edges_.size(); b-- > 0;) {
    if (pos_[b] == 0 && neg_[b] == 0) continue;
    fp += static_cast<double>(neg_[b]);
    weight += region_weight_[b];
    fpr.push_back(fp / static_cast<double>(negatives_));
    pro.push_back(std::min(1.0, weight / static_cast<double>(regions_)));
  }
  return AreaUnderCurve(fpr, pro, max_fpr) / max_fpr;
}

std::string AurocIntervalNote(const std::string& groups_file) {
  const std::string how =
      groups_file.empty()
          ? "files that differ only by a capture tag such as exp3_ are drawn together"
          : "images given one group in " + groups_file + " are drawn together";
  return "95% CI: bootstrap of the images (2000 resamples; " + how + ")";
}

}  // namespace flawlens::cli
