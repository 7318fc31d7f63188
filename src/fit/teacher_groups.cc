// Teacher::Groups: which images are one part (held out together).
#include <algorithm>
#include <cmath>
#include <map>

#include "fit/teacher.h"

namespace flawlens::fit {
namespace {

// Union-find over image indices.
int Find(std::vector<int>& parent, int i) {
  while (parent[size_t(i)] != i) i = parent[size_t(i)] = parent[size_t(parent[size_t(i)])];
  return i;
}

}  // namespace

// Groups: images with one non-empty group name; images whose summaries are
// near-duplicates (closer than o.link times the median distance from an
// image to its nearest neighbour under another name, linked transitively);
// camera frames (group "") in contiguous blocks, one per fold. Returns each
// image's group (0-based).
std::vector<int> Teacher::Groups(const FitOptions& o, int* count) const {
  const int n = images();
  std::vector<int> parent(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) parent[size_t(i)] = i;
  std::map<std::string, int> first;
  std::vector<int> named, frames;
  for (int i = 0; i < n; ++i) {
    const std::string& g = groups_[size_t(i)];
    if (g.empty()) {
      frames.push_back(i);
      continue;
    }
    named.push_back(i);
    auto it = first.find(g);
    if (it == first.end()) {
      first.emplace(g, i);
    } else {
      parent[size_t(Find(parent, i))] = Find(parent, it->second);
    }
  }
  // Frames: o.folds contiguous blocks.
  const size_t blocks = size_t(std::min<int>(std::max(1, o.folds), int(frames.size())));
  std::vector<int> block_first(blocks, -1);
  for (size_t k = 0; k < frames.size(); ++k) {
    int& b = block_first[k * blocks / frames.size()];
    if (b < 0) {
      b = frames[k];
    } else {
      parent[size_t(Find(parent, frames[k]))] = Find(parent, b);
    }
  }
  // Near-duplicates among named images.
  const size_t m = named.size();
  if (o.link > 0 && m >= 3) {
    const size_t len = summaries_[size_t(named[0])].size();
    std::vector<float> dist(m * m, 0.0f);
    for (size_t a = 0; a < m; ++a) {
      const float* sa = summaries_[size_t(named[a])].data();
      for (size_t b = a + 1; b < m; ++b) {
        const float* sb = summaries_[size_t(named[b])].data();
        double t = 0;
        for (size_t j = 0; j < len; ++j) {
          const double e = double(sa[j]) - sb[j];
          t += e * e;
        }
        dist[a * m + b] = dist[b * m + a] = float(std::sqrt(t));
      }
    }
    // The typical distance between different parts: each image's nearest
    // neighbour under another name.
    std::vector<float> nn(m, INFINITY);
    for (size_t a = 0; a < m; ++a)
      for (size_t b = 0; b < m; ++b)
        if (groups_[size_t(named[a])] != groups_[size_t(named[b])]) {
          nn[a] = std::min(nn[a], dist[a * m + b]);
        }
    std::vector<float> sorted = nn;
    std::nth_element(sorted.begin(), sorted.begin() + long(m / 2), sorted.end());
    const float limit = o.link * sorted[m / 2];
    for (size_t a = 0; a < m; ++a)
      for (size_t b = a + 1; b < m; ++b)
        if (dist[a * m + b] < limit) {
          parent[size_t(Find(parent, named[a]))] = Find(parent, named[b]);
        }
  }
  std::map<int, int> id;
  std::vector<int> out(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    const int root = Find(parent, i);
    auto it = id.find(root);
    if (it == id.end()) it = id.emplace(root, int(id.size())).first;
    out[size_t(i)] = it->second;
  }
  *count = int(id.size());
  return out;
}

}  // namespace flawlens::fit
