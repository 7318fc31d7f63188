#include "kernels/backends.h"
#include "fit/teacher.h"

#include <algorithm>
#include <cmath>
#include <cctype>
#include <cstring>
#include <limits>
#include <map>

#include "fit/threshold.h"
#include "model/graph_builder.h"
#include "model/json_util.h"
#include "model/safetensors.h"

namespace flawlens::fit {
namespace {

// Side of the coarse summary grid of a map (near-duplicate linking).
constexpr int kSummaryGrid = 4;
// Photos are cut into this many blocks of consecutive captures
// (FitOptions::capture_order): about 2.5 % of the photos each, enough to keep
// the lightings or burst of one part together on the data measured (blocks
// of half that size let them leak across folds: docs/METHOD-threshold.md).
constexpr int kCaptureBlocks = 40;
// Side of the edge calibration's table of padded inputs: 4 cells from each
// edge told apart (model/FORMAT.md section 6).
constexpr int kEdgeTable = 8;

// SplitMix64: the same bits natively and in wasm (std:: distributions are not).
uint64_t SplitMix(uint64_t* state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The metadata string `key` of a model file, parsed.
Status MetadataJson(const uint8_t* bytes, size_t size, const char* key, JsonValue* out,
                    bool* present) {
  FLAWLENS_ASSIGN_OR_RETURN(SafetensorsHeader header, ReadSafetensorsHeader(bytes, size));
  auto it = header.metadata.find(key);
  *present = it != header.metadata.end();
  if (!*present) return Status::Ok();
  return ParseJson(it->second.data(), it->second.size(), key, out);
}

// |a (x - mu)|^2 for lower triangular a (D x D).
float Mahalanobis2(const float* x, const float* a, const float* mu, int d, float* tmp) {
  for (int j = 0; j < d; ++j) tmp[j] = x[j] - mu[j];
  double s = 0;
  for (int k = 0; k < d; ++k) {
    const float* row = a + size_t(k) * d;
    double v = 0;
    for (int j = 0; j <= k; ++j) v += double(row[j]) * tmp[j];
    s += v * v;
  }
  return float(s);
}

// OAS shrinkage intensity (Chen et al. 2010, as scikit-learn's oas) of a
// d x d covariance estimated from n samples.
double OasShrinkage(const std::vector<double>& cov, int d, double n) {
  double trace = 0, sq = 0;
  for (int i = 0; i < d; ++i) trace += cov[size_t(i) * d + i];
  for (double v : cov) sq += v * v;
  const double mu = trace / d, alpha = sq / (double(d) * d);
  const double den = (n + 1.0) * (alpha - mu * mu / d);
  return den > 0 ? std::min(1.0, (alpha + mu * mu) / den) : 1.0;
}

// Natural order of names: digit runs compare as numbers ("num_99" <
// "num_100"), the rest byte by byte.
bool NaturalLess(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    const bool da = std::isdigit(static_cast<unsigned char>(a[i])) != 0;
    const bool db = std::isdigit(static_cast<unsigned char>(b[j])) != 0;
    if (da && db) {
      size_t ie = i, je = j;
      while (ie < a.size() && std::isdigit(static_cast<unsigned char>(a[ie]))) ++ie;
      while (je < b.size() && std::isdigit(static_cast<unsigned char>(b[je]))) ++je;
      size_t is = i, js = j;  // skip leading zeros
      while (is + 1 < ie && a[is] == '0') ++is;
      while (js + 1 < je && b[js] == '0') ++js;
      if (ie - is != je - js) return ie - is < je - js;
      const int c = a.compare(is, ie - is, b, js, je - js);
      if (c != 0) return c < 0;
      i = ie;
      j = je;
    } else {
      if (a[i] != b[j]) return static_cast<unsigned char>(a[i]) < static_cast<unsigned char>(b[j]);
      ++i;
      ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

// The largest value of a map (w cells wide) inside `cells`.
float ContentMax(const float* map, int w, const RectI& cells) {
  float m = -INFINITY;
  for (int y = cells.y; y < cells.y + cells.h; ++y) {
    const float* row = map + size_t(y) * w + cells.x;
    m = std::max(m, *std::max_element(row, row + cells.w));
  }
  return m;
}

}  // namespace

const char* DensityKindName(DensityKind kind) {
  return kind == DensityKind::kShared ? "shared" : "per_position";
}

Result<DensityKind> ParseDensityKind(const std::string& name) {
  if (name == "per_position" || name == "per-position") return DensityKind::kPerPosition;
  if (name == "shared") return DensityKind::kShared;
  return MakeError(ErrorCode::kInvalidArgument,
                   "unknown density '%s' (expected per_position or shared)", name.c_str());
}

Teacher::Teacher() = default;
Teacher::~Teacher() = default;

const PreprocessConfig& Teacher::preprocess() const { return model_->preprocess; }

Result<std::unique_ptr<Teacher>> Teacher::Create(const uint8_t* bytes, size_t size,
                                                 const TeacherOptions& options) {
  std::unique_ptr<Teacher> t(new Teacher());
  FLAWLENS_RETURN_IF_ERROR(t->Init(bytes, size, options));
  return t;
}

Status Teacher::Init(const uint8_t* bytes, size_t size, const TeacherOptions& options) {
  options_ = options;
  if (options.pool < 1 || options.pool > 15 || options.pool % 2 == 0) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "local average window must be odd and in [1, 15] (got %d)", options.pool);
  }
  if (options.dims < 1 || options.dims > 1024) {
    return MakeError(ErrorCode::kInvalidArgument, "projection dims must be in [1, 1024] (got %d)",
                     options.dims);
  }
  FLAWLENS_ASSIGN_OR_RETURN(model_, LoadModel(bytes, size));

  // Backbone, or a model taught here (its card names the feature node)?
  JsonValue card, graph, pre;
  bool has_card = false, has_graph = false, has_pre = false;
  FLAWLENS_RETURN_IF_ERROR(MetadataJson(bytes, size, "card", &card, &has_card));
  FLAWLENS_RETURN_IF_ERROR(MetadataJson(bytes, size, "graph", &graph, &has_graph));
  FLAWLENS_RETURN_IF_ERROR(MetadataJson(bytes, size, "preprocess", &pre, &has_pre));
  const JsonValue* kind = card.Find("kind");
  const JsonValue* fit = card.Find("fit");
  const JsonValue* fit_node = fit ? fit->Find("feature_node") : nullptr;
  const JsonValue* nodes = graph.Find("nodes");
  if (!nodes || !nodes->is_array() || nodes->size() != model_->graph.nodes.size()) {
    return MakeError(ErrorCode::kInternal, "the graph JSON does not match the loaded graph");
  }
  int feature = -1;  // node index
  if (fit_node && fit_node->is_string()) {
    feature_node_ = fit_node->str();
    for (size_t i = 0; i < model_->graph.nodes.size(); ++i) {
      if (model_->graph.nodes[i].name == feature_node_) feature = int(i);
    }
    if (feature < 0) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "model card names feature node '%s', which is not in the graph",
                       feature_node_.c_str());
    }
    if (const JsonValue* b = card.Find("backbone")) source_card_backbone_ = *b;
  } else if (kind && kind->is_string() && kind->str() == "backbone") {
    feature = model_->graph.output - 1;
    if (feature < 0) {
      return MakeError(ErrorCode::kInvalidArgument, "backbone graph's output is its input");
    }
    feature_node_ = model_->graph.nodes[size_t(feature)].name;
    source_card_backbone_ = card;
  } else {
    return MakeError(ErrorCode::kInvalidArgument,
                     "not a backbone: the model card's \"kind\" is %s (expected \"backbone\", a "
                     "file written by flawlens import-tfjs), and it names no feature node of a "
                     "taught model",
                     kind && kind->is_string() ? ("'" + kind->str() + "'").c_str() : "absent");
  }

  // Keep the nodes up to the feature node (topological order: they read
  // nothing after it) and their tensors.
  Graph& g = model_->graph;
  kept_nodes_ = JsonValue::Array();
  std::map<std::string, bool> have;
  for (int i = 0; i <= feature; ++i) {
    const JsonValue& jn = (*nodes)[size_t(i)];
    const Node& node = g.nodes[size_t(i)];
    const JsonValue* name = jn.Find("name");
    if (!name || name->str() != node.name) {
      return MakeError(ErrorCode::kInternal, "graph JSON node %d is not '%s'", i, node.name.c_str());
    }
    if (node.name.rfind("fit.", 0) == 0) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "backbone node '%s' uses the reserved prefix 'fit.'", node.name.c_str());
    }
    kept_nodes_.Push(jn);
    for (const char* key : {"weight", "bias"}) {
      const JsonValue* tn = jn.Find(key);
      const TensorRef& ref = key[0] == 'w' ? node.weight : node.bias;
      if (!tn || !tn->is_string() || !ref.data || have[tn->str()]) continue;
      have[tn->str()] = true;
      ModelTensor mt;
      mt.name = tn->str();
      mt.shape = ref.shape;
      mt.data.assign(ref.data, ref.data + ref.elements());
      kept_tensors_.push_back(std::move(mt));
    }
  }
  if (options.input_width > 0 || options.input_height > 0) {
    // Another input size (an aspect ratio that matches the parts): the
    // backbone's convolutions take any size whose strides divide it, and the
    // preprocessing resizes to it.
    const int w = options.input_width, h = options.input_height;
    PreprocessConfig& pc = model_->preprocess;
    if (w < 32 || h < 32 || w > 2048 || h > 2048 || w % 32 != 0 || h % 32 != 0) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "input size %dx%d: both sides must be multiples of 32 in [32, 2048]", w, h);
    }
    if (pc.crop.w > 0 || pc.pixel_scale > 0) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "input size %dx%d: the backbone's preprocessing crops or keeps a fixed pixel "
                       "scale, so its input size cannot change",
                       w, h);
    }
    pc.resize_w = w;
    pc.resize_h = h;
    g.input.w = w;
    g.input.h = h;
    pre.Set("resize_w", w).Set("resize_h", h);
  }
  if (options.keep_aspect || options.pixel_scale > 0) {
    PreprocessConfig& pc = model_->preprocess;
    if (options.keep_aspect && options.pixel_scale > 0) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "keep aspect and a fixed pixel scale exclude each other");
    }
    const bool same = pc.keep_aspect == options.keep_aspect && pc.pixel_scale == options.pixel_scale;
    if (pc.crop.w > 0 || (pc.padded() && !same)) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "the backbone's preprocessing crops or already pads (%s), so its geometry "
                       "cannot change",
                       pc.geometry_name());
    }
    if (!(options.pixel_scale <= 64.0f)) {
      return MakeError(ErrorCode::kInvalidArgument, "pixel scale %g out of range (0, 64]",
                       double(options.pixel_scale));
    }
    pc.keep_aspect = options.keep_aspect;
    pc.pixel_scale = options.pixel_scale;
    if (pc.keep_aspect) pre.Set("geometry", "keep_aspect");
    if (pc.pixel_scale > 0) pre.Set("pixel_scale", double(pc.pixel_scale));
  }
  preprocess_json_ = pre.Dump();

  g.nodes.resize(size_t(feature) + 1);
  g.output = feature + 1;
  g.output_names.clear();
  FLAWLENS_RETURN_IF_ERROR(g.Finalize());
  const Shape fs = g.output_shape();
  fh_ = fs.h;
  fw_ = fs.w;
  fc_ = fs.c;
  d_ = options.dims;
  int cb = options.channel_begin, ce = options.channel_end;
  if (cb == 0 && ce == 0) ce = fc_;
  if (cb < 0 || ce > fc_ || cb >= ce) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "channel range [%d, %d) is not inside the backbone's %d feature channels",
                     options.channel_begin, options.channel_end, fc_);
  }

  // The projection: Rademacher (+-1 / sqrt(channels)), a random projection
  // that is bit-identical on every platform.
  projection_.assign(size_t(d_) * fc_, 0.0f);
  uint64_t state = 0x5EED0000ull ^ (uint64_t(options.seed) << 20);
  const float v = 1.0f / std::sqrt(float(ce - cb));
  for (int o = 0; o < d_; ++o) {
    for (int c = cb; c < ce; ++c) {
      projection_[size_t(o) * fc_ + c] = (SplitMix(&state) >> 63) ? v : -v;
    }
  }
  Node proj;
  proj.name = kProjNode;
  proj.op = OpType::kConv2d;
  proj.inputs = {feature + 1};
  proj.out_channels = d_;
  proj.weight.data = projection_.data();
  proj.weight.shape = {d_, 1, 1, fc_};
  g.nodes.push_back(std::move(proj));
  if (options.pool > 1) {
    // Stride 1, same size; border cells average the cells that exist.
    Node pool;
    pool.name = kPoolNode;
    pool.op = OpType::kAvgPool2d;
    pool.inputs = {int(g.nodes.size())};
    pool.kernel_h = pool.kernel_w = options.pool;
    pool.pad_top = pool.pad_left = pool.pad_bottom = pool.pad_right = options.pool / 2;
    pool.count_include_pad = false;
    g.nodes.push_back(std::move(pool));
  }
  g.output = int(g.nodes.size());
  FLAWLENS_RETURN_IF_ERROR(g.Finalize());

  ExecutorOptions eo;
  if (options.backend == "auto" || options.backend.empty()) {
    eo.backend = BackendKind::kAuto;
  } else if (options.backend == "simd") {
    eo.backend = BackendKind::kSimd;
  } else if (options.backend == "ref") {
    eo.backend = BackendKind::kReference;
  } else if (options.backend == "xnnpack") {
    eo.backend = BackendKind::kXnnpack;
  } else {
    return MakeError(ErrorCode::kInvalidArgument, "unknown backend '%s'", options.backend.c_str());
  }
  eo.threads = std::max(1, options.threads);
  FLAWLENS_ASSIGN_OR_RETURN(executor_, CreateExecutor(g, eo));

  return Status::Ok();
}

Result<int> Teacher::AddImage(const ImageView& image, const RectF& roi, const std::string& group) {
  FLAWLENS_RETURN_IF_ERROR(
      Preprocess(image, model_->preprocess, roi, executor_->input(), &scratch_, nullptr));
  RectI content_cells{0, 0, fw_, fh_};
  if (model_->preprocess.padded()) {
    FLAWLENS_ASSIGN_OR_RETURN(RectI content,
                              PreprocessContent(model_->preprocess, image.width, image.height, roi));
    content_cells = ContentCells(content, model_->graph.input.w, model_->graph.input.h, fw_, fh_);
  }
  executor_->Run();
  const float* x = executor_->output();
  const size_t cells = size_t(fh_) * fw_, n = cells * size_t(d_);
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) {
      return MakeError(ErrorCode::kNonFinite,
                       "the backbone gave a non-finite feature for this image (cell %zu, channel "
                       "%zu); the image was not added",
                       i / size_t(d_), i % size_t(d_));
    }
  }
  // The summary: the map averaged over a kSummaryGrid^2 grid of blocks.
  const int gh = std::min(kSummaryGrid, fh_), gw = std::min(kSummaryGrid, fw_);
  std::vector<float> summary(size_t(gh) * gw * d_, 0.0f);
  std::vector<int> count(size_t(gh) * gw, 0);
  for (int y = 0; y < fh_; ++y) {
    for (int xx = 0; xx < fw_; ++xx) {
      const size_t b = size_t(y * gh / fh_) * gw + size_t(xx * gw / fw_);
      const float* v = x + (size_t(y) * fw_ + xx) * d_;
      float* s = summary.data() + b * d_;
      for (int j = 0; j < d_; ++j) s[j] += v[j];
      ++count[b];
    }
  }
  for (size_t b = 0; b < count.size(); ++b) {
    for (int j = 0; j < d_; ++j) summary[b * d_ + j] /= float(count[b]);
  }
  features_.emplace_back(x, x + n);
  summaries_.push_back(std::move(summary));
  groups_.push_back(group);
  content_.push_back(content_cells);
  return int(groups_.size()) - 1;
}

namespace {

// Covariance regions of an h x w map for the options.
void RegionGrid(const FitOptions& o, int h, int w, int* gh, int* gw) {
  if (o.density == DensityKind::kShared) {
    *gh = *gw = 1;
    return;
  }
  const int r = std::max(1, o.region);
  *gh = std::clamp((h + r / 2) / r, 1, h);
  *gw = std::clamp((w + r / 2) / r, 1, w);
}

}  // namespace

void Teacher::Accumulate(const std::vector<int>& images, const FitOptions& o, Stats* s) const {
  const int d = d_;
  const size_t cells = size_t(fh_) * fw_, dd = size_t(d) * d;
  int gh, gw;
  RegionGrid(o, fh_, fw_, &gh, &gw);
  s->images = int(images.size());
  s->cell_sum.assign(cells * d, 0.0);
  s->scatter.assign(size_t(gh) * gw * dd, 0.0);
  s->samples = 0;
  std::vector<double> v(static_cast<size_t>(d));
  // Per position every cell has every image (padding included: a cell needs
  // all of them); shared pools only the cells over the images.
  const bool mask = o.density == DensityKind::kShared && model_->preprocess.padded();
  for (int i : images) {
    const float* x = features_[size_t(i)].data();
    const RectI& cc = content_[size_t(i)];
    for (size_t c = 0; c < cells; ++c) {
      const int cy = int(c / size_t(fw_)), cx = int(c % size_t(fw_));
      if (mask && (cy < cc.y || cy >= cc.y + cc.h || cx < cc.x || cx >= cc.x + cc.w)) continue;
      s->samples += 1;
      const float* xc = x + c * d;
      double* sum = s->cell_sum.data() + c * d;
      for (int j = 0; j < d; ++j) {
        v[size_t(j)] = xc[j];
        sum[j] += xc[j];
      }
      double* sc = s->scatter.data() + size_t(PositionRegion(int64_t(c), fh_, fw_, gh, gw)) * dd;
      for (int k = 0; k < d; ++k) {
        const double vk = v[size_t(k)];
        double* row = sc + size_t(k) * d;
        for (int j = 0; j <= k; ++j) row[j] += vk * v[size_t(j)];
      }
    }
  }
}

Status Teacher::FitDensity(const Stats& s, const FitOptions& o, Density* out) const {
  const int d = d_, n = s.images;
  const size_t cells = size_t(fh_) * fw_, dd = size_t(d) * d;
  int gh, gw;
  RegionGrid(o, fh_, fw_, &gh, &gw);
  const size_t regions = size_t(gh) * gw;
  const bool shared = o.density == DensityKind::kShared;
  out->grid_h = gh;
  out->grid_w = gw;
  out->mean.assign(cells * d, 0.0f);
  // Means: per cell, or one for the whole map.
  std::vector<double> shared_mean(static_cast<size_t>(d), 0.0);
  if (shared) {
    for (size_t c = 0; c < cells; ++c)
      for (int j = 0; j < d; ++j) shared_mean[size_t(j)] += s.cell_sum[c * d + j];
    for (double& m : shared_mean) m /= s.samples;
  }
  for (size_t c = 0; c < cells; ++c) {
    for (int j = 0; j < d; ++j) {
      out->mean[c * d + j] = float(shared ? shared_mean[size_t(j)] : s.cell_sum[c * d + j] / n);
    }
  }
  // Within-cell (or, shared, overall) scatter per region -> covariance.
  std::vector<std::vector<double>> cov(regions, std::vector<double>(dd, 0.0));
  std::vector<int> region_cells(regions, 0);
  for (size_t c = 0; c < cells; ++c) {
    const size_t r = size_t(PositionRegion(int64_t(c), fh_, fw_, gh, gw));
    ++region_cells[r];
    if (shared) continue;
    const double* sum = s.cell_sum.data() + c * d;
    double* cr = cov[r].data();
    for (int k = 0; k < d; ++k)
      for (int j = 0; j <= k; ++j) cr[size_t(k) * d + j] -= sum[k] * sum[j] / n;
  }
  double variance_sum = 0, square_sum = 0;
  std::vector<double> samples(regions);
  for (size_t r = 0; r < regions; ++r) {
    double* cr = cov[r].data();
    const double* sc = s.scatter.data() + r * dd;
    for (size_t i = 0; i < dd; ++i) cr[i] += sc[i];
    for (int k = 0; k < d; ++k) square_sum += sc[size_t(k) * d + k];
    if (shared) {
      for (int k = 0; k < d; ++k)
        for (int j = 0; j <= k; ++j)
          cr[size_t(k) * d + j] -= s.samples * shared_mean[size_t(k)] * shared_mean[size_t(j)];
    }
    const double dof = shared ? s.samples - 1.0 : double(region_cells[r]) * double(n - 1);
    samples[r] = shared ? s.samples : double(region_cells[r]) * double(n);
    for (int k = 0; k < d; ++k) {
      for (int j = 0; j <= k; ++j) {
        const double v = cr[size_t(k) * d + j] / std::max(1.0, dof);
        cr[size_t(k) * d + j] = v;
        cr[size_t(j) * d + k] = v;
      }
      variance_sum += cr[size_t(k) * d + k];
    }
  }
  const double mean_var = variance_sum / (double(regions) * d);
  const double mean_square = square_sum / (double(n) * double(cells) * d);
  // Variation between images at the same cell (not across cells: a still
  // frame repeated has that too), against the features' own size.
  double cell_mean_square = 0;
  for (double v : s.cell_sum) cell_mean_square += v * v;
  const double between =
      (square_sum - cell_mean_square / n) / (double(cells) * d * std::max(1, n - 1));
  if (!(between > 1e-9 * mean_square) || !std::isfinite(mean_var)) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "the %d images give the same features (variance between images %g): "
                     "there is no variation to learn; teach with good images that show the "
                     "normal variation (parts, positions, light)",
                     n, between);
  }
  const double floor = double(o.eps) * mean_var + 1e-9 * mean_var;
  out->whitening.assign(regions * dd, 0.0f);
  double shrink_sum = 0;
  std::vector<double> w;
  for (size_t r = 0; r < regions; ++r) {
    const double shrink = o.shrinkage < 0 ? OasShrinkage(cov[r], d, samples[r]) : o.shrinkage;
    Status st = ShrunkWhitening(&cov[r], d, shrink, floor, &w);
    if (!st.ok()) {
      return MakeError(ErrorCode::kInvalidArgument, "covariance region %zu: %s", r,
                       st.message().c_str());
    }
    for (size_t i = 0; i < dd; ++i) out->whitening[r * dd + i] = float(w[i]);
    shrink_sum += shrink;
  }
  out->mean_shrinkage = shrink_sum / double(regions);
  return Status::Ok();
}

void Teacher::RawMap(const float* x, const Density& dens, float* map) const {
  const int d = d_;
  const size_t cells = size_t(fh_) * fw_, dd = size_t(d) * d;
  std::vector<float> tmp(static_cast<size_t>(d));
  for (size_t c = 0; c < cells; ++c) {
    const size_t r = size_t(PositionRegion(int64_t(c), fh_, fw_, dens.grid_h, dens.grid_w));
    map[c] = Mahalanobis2(x + c * d, dens.whitening.data() + r * dd, dens.mean.data() + c * d, d,
                          tmp.data());
  }
}

namespace {

// The fit options' ranges, and the card's extra JSON (parsed into `extra`).
Status CheckFitOptions(const FitOptions& o, int fw, int fh, JsonValue* extra) {
  if (!(o.shrinkage <= 1.0f) || !(o.eps >= 0.0f && o.eps <= 10.0f) ||
      !(o.cell_std_shrink >= 0.0f && o.cell_std_shrink <= 1.0f) ||
      !(o.false_alarm_rate >= kMinFalseAlarmRate && o.false_alarm_rate <= kMaxFalseAlarmRate) ||
      o.region < 1 || o.region > 4096 || o.folds < 2 || o.folds > 100 ||
      !(o.link >= 0.0f && o.link <= 10.0f)) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "fit options out of range: shrinkage %g (<= 1; < 0 = OAS), eps %g "
                     "([0, 10]), cell std shrink %g ([0, 1]), false-alarm rate %g ([%g, %g]), "
                     "region %d ([1, 4096]), folds %d ([2, 100]), link %g ([0, 10])",
                     double(o.shrinkage), double(o.eps), double(o.cell_std_shrink),
                     o.false_alarm_rate, kMinFalseAlarmRate, kMaxFalseAlarmRate, o.region,
                     o.folds, double(o.link));
  }
  if (!(o.blur_sigma >= 0.0f && o.blur_sigma <= 64.0f) ||
      (o.blur_sigma > 0 && fh * fw > 1 &&
       std::max(1, int(std::ceil(3.0f * o.blur_sigma))) >= std::min(fh, fw))) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "blur sigma %g does not fit the %dx%d map (its radius ceil(3 sigma) must be "
                     "smaller than the map's sides)",
                     double(o.blur_sigma), fw, fh);
  }
  if (!o.card_extra_json.empty()) {
    FLAWLENS_RETURN_IF_ERROR(
        ParseJson(o.card_extra_json.data(), o.card_extra_json.size(), "card extra", extra));
    if (!extra->is_object()) {
      return MakeError(ErrorCode::kInvalidArgument, "card extra must be a JSON object");
    }
  }
  return Status::Ok();
}

}  // namespace

Result<FitResult> Teacher::Fit(const FitOptions& o, const ProgressFn& progress) const {
  const int n = images();
  JsonValue extra;
  FLAWLENS_RETURN_IF_ERROR(CheckFitOptions(o, fw_, fh_, &extra));
  FitResult result;
  result.group_of = Groups(o, &result.groups);
  if (n < kMinFitImages || result.groups < kMinFitGroups) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "too few images: %d added, from %d distinct parts or time blocks; at least "
                     "%d images from %d are needed to fit and to check the threshold on images "
                     "the model has not seen: add more good images",
                     n, result.groups, kMinFitImages, kMinFitGroups);
  }
  const size_t cells = size_t(fh_) * fw_;

  // Folds hold whole groups. By default groups are taken in capture order
  // (photos by their group names in natural order, camera frames in time
  // order) and cut into blocks that are dealt to the folds in turn: photos
  // taken one after the other (the lightings of one part, a burst) stay
  // together, while every fold spans the whole collection. Camera frames
  // are one block per fold (neighbouring frames are near-copies). Otherwise
  // groups are dealt, largest first, to the fold with the fewest images
  // (ties: a seeded order).
  const int k_folds = std::min(o.folds, result.groups);
  result.folds = k_folds;
  std::vector<int> group_size(size_t(result.groups), 0);
  for (int g : result.group_of) ++group_size[size_t(g)];
  std::vector<int> fold_of_group(size_t(result.groups), -1);
  if (o.capture_order) {
    std::vector<int> seq(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) seq[size_t(i)] = i;
    std::stable_sort(seq.begin(), seq.end(), [&](int a, int b) {
      const std::string &ga = groups_[size_t(a)], &gb = groups_[size_t(b)];
      if (ga.empty() != gb.empty()) return gb.empty();  // photos first, then frames
      return NaturalLess(ga, gb);
    });
    int photos = 0;
    for (const std::string& g : groups_) photos += !g.empty();
    const int frames = n - photos;
    const int block = std::max(1, photos / kCaptureBlocks);
    int seen = 0, block_index = -1, block_start = -block;
    for (int i : seq) {
      const int g = result.group_of[size_t(i)];
      if (fold_of_group[size_t(g)] >= 0) continue;
      if (!groups_[size_t(i)].empty()) {
        if (seen - block_start >= block) {
          ++block_index;
          block_start = seen;
        }
        fold_of_group[size_t(g)] = block_index % k_folds;
      } else {
        const int k = seen - photos;  // frames seen so far
        fold_of_group[size_t(g)] = std::min(k_folds - 1, int(int64_t(k) * k_folds / std::max(1, frames)));
      }
      seen += group_size[size_t(g)];
    }
  } else {
    std::vector<std::pair<uint64_t, int>> order;
    uint64_t state = 0xF01D5ull ^ (uint64_t(options_.seed) << 16);
    for (int g = 0; g < result.groups; ++g) {
      order.push_back({(uint64_t(std::numeric_limits<int>::max() - group_size[size_t(g)]) << 32) |
                           (SplitMix(&state) >> 32),
                       g});
    }
    std::sort(order.begin(), order.end());
    std::vector<int> fold_size(static_cast<size_t>(k_folds), 0);
    for (const auto& og : order) {
      const int f = int(std::min_element(fold_size.begin(), fold_size.end()) - fold_size.begin());
      fold_of_group[size_t(og.second)] = f;
      fold_size[size_t(f)] += group_size[size_t(og.second)];
    }
  }
  std::vector<std::vector<int>> fold_images(static_cast<size_t>(k_folds));
  std::vector<int> all(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    all[size_t(i)] = i;
    fold_images[size_t(fold_of_group[size_t(result.group_of[size_t(i)])])].push_back(i);
  }

  // The density of every image, and the out-of-group maps.
  Stats total, fold;
  Accumulate(all, o, &total);
  if (progress) progress(0.1f);
  std::vector<float> maps(size_t(n) * cells);
  Density dens;
  for (int f = 0; f < k_folds; ++f) {
    if (fold_images[size_t(f)].empty()) continue;  // a group larger than a fold took its place
    Accumulate(fold_images[size_t(f)], o, &fold);
    Stats rest;
    rest.images = total.images - fold.images;
    rest.samples = total.samples - fold.samples;
    rest.cell_sum = total.cell_sum;
    rest.scatter = total.scatter;
    for (size_t i = 0; i < rest.cell_sum.size(); ++i) rest.cell_sum[i] -= fold.cell_sum[i];
    for (size_t i = 0; i < rest.scatter.size(); ++i) rest.scatter[i] -= fold.scatter[i];
    if (rest.images < 2) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "too few images outside one group to fit on: add good images of more parts");
    }
    FLAWLENS_RETURN_IF_ERROR(FitDensity(rest, o, &dens));
    for (int i : fold_images[size_t(f)]) {
      float* m = maps.data() + size_t(i) * cells;
      RawMap(features_[size_t(i)].data(), dens, m);
      BlurMap(m, fw_, fh_, o.blur_sigma);
    }
    if (progress) progress(0.1f + 0.7f * float(f + 1) / float(k_folds));
  }
  // Padded inputs: the cells over each image only, as the detector scores.
  // A shared density has no positions: its maps are calibrated by distance
  // to the photo's edges (which fall on other cells in every photo) instead
  // of per cell. Per position keeps the per-cell calibration (the cells of
  // padding excluded); adding the edge one measured no better
  // (docs/METHOD-backbone.md).
  const bool padded = model_->preprocess.padded();
  const bool by_edge = padded && o.density == DensityKind::kShared;
  CellCalibration cc;
  if (by_edge) {
    cc.h = fh_;
    cc.w = fw_;
    cc.mean.assign(cells, 0.0f);
    cc.std.assign(cells, 1.0f);
  } else {
    FLAWLENS_ASSIGN_OR_RETURN(cc, FitCellCalibration(maps.data(), n, fh_, fw_, false,
                                                     o.cell_std_shrink,
                                                     padded ? content_.data() : nullptr));
  }
  for (int i = 0; i < n; ++i) ApplyCellCalibration(cc, maps.data() + size_t(i) * cells);
  EdgeCalibration ec;
  if (by_edge) {
    FLAWLENS_ASSIGN_OR_RETURN(ec, FitEdgeCalibration(maps.data(), n, fh_, fw_, content_.data(),
                                                     kEdgeTable, o.cell_std_shrink));
    for (int i = 0; i < n; ++i) {
      ApplyEdgeCalibration(ec, maps.data() + size_t(i) * cells, fw_, content_[size_t(i)]);
    }
  }
  result.oof_raw.resize(size_t(n));
  for (int i = 0; i < n; ++i) {
    result.oof_raw[size_t(i)] = ContentMax(maps.data() + size_t(i) * cells, fw_, content_[size_t(i)]);
  }
  FLAWLENS_ASSIGN_OR_RETURN(ScoreCalibrationResult sc,
                            CalibrateScores(result.oof_raw, o.false_alarm_rate, result.groups));
  result.calibration = sc.calibration;
  result.warnings = sc.estimate.warnings;

  FLAWLENS_RETURN_IF_ERROR(FitDensity(total, o, &dens));
  result.mean_shrinkage = dens.mean_shrinkage;
  {
    float* m = maps.data();
    RawMap(features_[0].data(), dens, m);
    BlurMap(m, fw_, fh_, o.blur_sigma);
    ApplyCellCalibration(cc, m);
    if (by_edge) ApplyEdgeCalibration(ec, m, fw_, content_[0]);
    result.first_raw = ContentMax(m, fw_, content_[0]);
  }
  if (progress) progress(0.9f);
  result.model = WriteModelFile(o, extra, dens, cc, ec, result);
  if (progress) progress(1.0f);
  return result;
}

}  // namespace flawlens::fit
