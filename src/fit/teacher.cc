#include "fit/teacher.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "model/json_util.h"

namespace flawlens::fit {
namespace {

constexpr const char* kProjNode = "fit.proj";
constexpr const char* kDensityNode = "fit.density";
constexpr const char* kWhitenNode = "fit.whiten";
constexpr const char* kGlobalPool = "fit.global.pool";
constexpr const char* kGlobalWhiten = "fit.global.whiten";
constexpr const char* kGlobalDist = "fit.global.dist";
constexpr const char* kGlobalMap = "fit.global.map";
constexpr const char* kMapNode = "fit.map";

// SplitMix64: the same bits natively and in wasm (std:: distributions are not).
uint64_t SplitMix(uint64_t* state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The metadata string `key` of a safetensors header already validated by
// LoadModel, parsed.
Status MetadataJson(const uint8_t* bytes, size_t size, const char* key, JsonValue* out,
                    bool* present) {
  const uint64_t n = ReadHeaderLength(bytes);
  JsonValue header;
  FLAWLENS_RETURN_IF_ERROR(
      ParseJson(reinterpret_cast<const char*>(bytes + 8), size_t(n), "model header", &header));
  const JsonValue* meta = header.Find("__metadata__");
  const JsonValue* s = meta ? meta->Find(key) : nullptr;
  *present = s && s->is_string();
  if (!*present) return Status::Ok();
  return ParseJson(s->str().data(), s->str().size(), key, out);
}

JsonValue IntPair(int a, int b) { return JsonValue::Array().Push(a).Push(b); }

JsonValue ConvNode(const std::string& name, const std::string& input, int out_c,
                   const std::string& weight, const std::string& bias) {
  JsonValue n = JsonValue::Object();
  n.Set("name", name).Set("op", "conv2d").Set("inputs", JsonValue::Array().Push(input));
  n.Set("out_channels", out_c).Set("kernel", IntPair(1, 1)).Set("weight", weight);
  if (!bias.empty()) n.Set("bias", bias);
  return n;
}

JsonValue SimpleNode(const std::string& name, const char* op, std::vector<std::string> inputs) {
  JsonValue in = JsonValue::Array();
  for (std::string& s : inputs) in.Push(std::move(s));
  JsonValue n = JsonValue::Object();
  n.Set("name", name).Set("op", op).Set("inputs", std::move(in));
  return n;
}

// Whitening parameters of one Gaussian as float: a (D x D, lower triangular)
// and mu (D).
struct Gaussian {
  std::vector<float> a, mu;
  double shrinkage = 0;
};

Status FitGaussian(const MomentAccumulator& acc, double shrinkage_option, double floor,
                   Gaussian* g) {
  const int d = acc.dim();
  std::vector<double> mean, cov, w;
  acc.MeanCovariance(&mean, &cov);
  const double s = shrinkage_option < 0 ? acc.LedoitWolfShrinkage() : shrinkage_option;
  FLAWLENS_RETURN_IF_ERROR(ShrunkWhitening(&cov, d, s, floor, &w));
  g->a.resize(w.size());
  g->mu.resize(mean.size());
  for (size_t i = 0; i < w.size(); ++i) g->a[i] = float(w[i]);
  for (size_t i = 0; i < mean.size(); ++i) g->mu[i] = float(mean[i]);
  g->shrinkage = s;
  return Status::Ok();
}

double MeanVariance(const MomentAccumulator& acc) {
  std::vector<double> mean, cov;
  acc.MeanCovariance(&mean, &cov);
  double t = 0;
  const int d = acc.dim();
  for (int i = 0; i < d; ++i) t += cov[size_t(i) * d + i];
  return t / d;
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
  if (!(options.holdout > 0.0f && options.holdout < 1.0f)) {
    return MakeError(ErrorCode::kInvalidArgument, "hold-out fraction must be in (0, 1) (got %g)",
                     double(options.holdout));
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
  if (const JsonValue* in = graph.Find("input")) graph_input_ = *in;
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
  FLAWLENS_ASSIGN_OR_RETURN(executor_, Executor::Create(g, eo));

  cells_.assign(size_t(fh_) * fw_, MomentAccumulator(d_));
  shared_ = MomentAccumulator(d_);
  global_ = MomentAccumulator(d_);
  uint64_t ps = 0xC0FFEEull ^ options.seed;
  phase_ = double(SplitMix(&ps) >> 11) * 0x1.0p-53;
  return Status::Ok();
}

bool Teacher::HoldOut(const std::string& group) {
  if (!group.empty()) {
    auto it = group_held_.find(group);
    if (it != group_held_.end()) return it->second;
  }
  // Evenly spread: group k is held out when k * f + phase crosses an integer.
  const double f = options_.holdout;
  const int k = groups_seen_++;
  const bool held = std::floor((k + 1) * f + phase_) > std::floor(k * f + phase_);
  if (!group.empty()) group_held_[group] = held;
  return held;
}

Result<bool> Teacher::AddImage(const ImageView& image, const RectF& roi, const std::string& group) {
  FLAWLENS_RETURN_IF_ERROR(
      Preprocess(image, model_->preprocess, roi, executor_->input(), &scratch_, nullptr));
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
  const int index = added_++;
  if (HoldOut(group)) {
    holdout_.emplace_back(x, x + n);
    holdout_index_.push_back(index);
    return true;
  }
  std::vector<double> mean(static_cast<size_t>(d_), 0.0);
  for (size_t c = 0; c < cells; ++c) {
    const float* xc = x + c * size_t(d_);
    cells_[c].Add(xc);
    shared_.Add(xc);
    for (int j = 0; j < d_; ++j) mean[size_t(j)] += xc[j];
  }
  std::vector<float> meanf(static_cast<size_t>(d_));
  for (int j = 0; j < d_; ++j) meanf[size_t(j)] = float(mean[size_t(j)] / double(cells));
  global_.Add(meanf.data());
  ++fit_images_;
  return false;
}

void Teacher::RawMap(const float* x, const std::vector<float>& a, const std::vector<float>& mu,
                     bool per_position, const std::vector<float>& ga,
                     const std::vector<float>& gmu, float* map) const {
  const int d = d_;
  const size_t cells = size_t(fh_) * fw_, dd = size_t(d) * d;
  std::vector<float> tmp(static_cast<size_t>(d));
  for (size_t c = 0; c < cells; ++c) {
    const float* ac = per_position ? a.data() + c * dd : a.data();
    const float* mc = per_position ? mu.data() + c * size_t(d) : mu.data();
    map[c] = Mahalanobis2(x + c * size_t(d), ac, mc, d, tmp.data());
  }
  if (!ga.empty()) {
    std::vector<double> m(static_cast<size_t>(d), 0.0);
    for (size_t c = 0; c < cells; ++c)
      for (int j = 0; j < d; ++j) m[size_t(j)] += x[c * size_t(d) + size_t(j)];
    std::vector<float> mf(static_cast<size_t>(d));
    for (int j = 0; j < d; ++j) mf[size_t(j)] = float(m[size_t(j)] / double(cells));
    const float gv = Mahalanobis2(mf.data(), ga.data(), gmu.data(), d, tmp.data());
    for (size_t c = 0; c < cells; ++c) map[c] += gv;
  }
}

namespace {

// The fit options' ranges, and the card's extra JSON (parsed into `extra`).
Status CheckFitOptions(const FitOptions& o, int fw, int fh, JsonValue* extra) {
  if (!(o.shrinkage <= 1.0f) || !(o.eps >= 0.0f && o.eps <= 10.0f) ||
      !(o.cell_std_shrink >= 0.0f && o.cell_std_shrink <= 1.0f) ||
      !(o.global_weight >= 0.0f && o.global_weight <= 100.0f) ||
      !(o.sensitivity >= 0.0f && o.sensitivity <= 1.0f)) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "fit options out of range: shrinkage %g (<= 1; < 0 = Ledoit-Wolf), eps %g "
                     "([0, 10]), cell std shrink %g ([0, 1]), global weight %g ([0, 100]), "
                     "sensitivity %g ([0, 1])",
                     double(o.shrinkage), double(o.eps), double(o.cell_std_shrink),
                     double(o.global_weight), double(o.sensitivity));
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
  if (fit_images_ < kMinFitImages || holdout_images() < kMinHoldoutImages) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "too few images: %d added (%d to fit, %d held out for calibration); at least "
                     "%d to fit and %d held out are needed (hold-out fraction %.2f): add more "
                     "good images",
                     images(), fit_images_, holdout_images(), kMinFitImages, kMinHoldoutImages,
                     double(options_.holdout));
  }
  JsonValue extra;
  FLAWLENS_RETURN_IF_ERROR(CheckFitOptions(o, fw_, fh_, &extra));
  const int d = d_;
  const size_t cells = size_t(fh_) * fw_, dd = size_t(d) * d;
  const bool per_position = o.density == DensityKind::kPerPosition;
  const double shrink_opt = o.shrinkage < 0 ? -1.0 : double(o.shrinkage);

  // Variation between images at the same cell (not across cells: a still
  // frame repeated has that too). None at all: nothing to learn.
  double cell_var = 0;
  for (const MomentAccumulator& c : cells_) cell_var += MeanVariance(c);
  cell_var /= double(cells);
  const double shared_var = MeanVariance(shared_);
  if (!(cell_var > 1e-9 * shared_var) || !std::isfinite(cell_var) || !std::isfinite(shared_var)) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "the %d fitted images give the same features (variance between images %g): "
                     "there is no variation to learn; teach with good images that show the "
                     "normal variation (parts, positions, light)",
                     fit_images_, cell_var);
  }
  // The floor on the diagonal: eps times the mean variance the Gaussian sees.
  const double mean_var = per_position ? cell_var : shared_var;
  const double floor = double(o.eps) * mean_var + 1e-9 * mean_var;

  FitResult result;
  Gaussian shared;
  std::vector<float> a, mu;  // per position: cells x D x D, cells x D
  double shrink_sum = 0;
  if (per_position) {
    a.resize(cells * dd);
    mu.resize(cells * size_t(d));
    for (size_t c = 0; c < cells; ++c) {
      Gaussian gc;
      Status st = FitGaussian(cells_[c], shrink_opt, floor, &gc);
      if (!st.ok()) {
        return MakeError(ErrorCode::kInvalidArgument, "cell %zu: %s", c, st.message().c_str());
      }
      std::memcpy(a.data() + c * dd, gc.a.data(), dd * sizeof(float));
      std::memcpy(mu.data() + c * size_t(d), gc.mu.data(), size_t(d) * sizeof(float));
      shrink_sum += gc.shrinkage;
      if (progress && (c % 64 == 0)) progress(0.8f * float(c) / float(cells));
    }
    result.mean_shrinkage = shrink_sum / double(cells);
  } else {
    FLAWLENS_RETURN_IF_ERROR(FitGaussian(shared_, shrink_opt, floor, &shared));
    a = shared.a;
    mu = shared.mu;
    result.mean_shrinkage = shared.shrinkage;
  }
  Gaussian global;
  if (o.global_weight > 0) {
    const double gvar = MeanVariance(global_);
    FLAWLENS_RETURN_IF_ERROR(FitGaussian(global_, shrink_opt,
                                         double(o.eps) * gvar + 1e-9 * mean_var, &global));
    const float sw = std::sqrt(o.global_weight);
    for (float& v : global.a) v *= sw;
  }
  if (progress) progress(0.8f);

  // Held-out maps -> blur -> per-cell calibration -> score calibration.
  const int nh = holdout_images();
  std::vector<float> maps(size_t(nh) * cells);
  for (int k = 0; k < nh; ++k) {
    float* m = maps.data() + size_t(k) * cells;
    RawMap(holdout_[size_t(k)].data(), a, mu, per_position, global.a, global.mu, m);
    BlurMap(m, fw_, fh_, o.blur_sigma);
  }
  FLAWLENS_ASSIGN_OR_RETURN(CellCalibration cc,
                            FitCellCalibration(maps.data(), nh, fh_, fw_, false, o.cell_std_shrink));
  std::vector<float> raw(static_cast<size_t>(nh));
  for (int k = 0; k < nh; ++k) {
    float* m = maps.data() + size_t(k) * cells;
    ApplyCellCalibration(cc, m);
    raw[size_t(k)] = *std::max_element(m, m + cells);
  }
  result.calibration = ScoreCalibration(raw, o.sensitivity);
  result.holdout_raw = raw;
  result.holdout_indices = holdout_index_;
  result.fit_images = fit_images_;
  result.holdout_images = nh;
  if (progress) progress(0.9f);

  result.model = WriteModelFile(o, extra, a, mu, global.a, global.mu, cc, result);
  if (progress) progress(1.0f);
  return result;
}

// The model file: the kept backbone, the projection, the density head (and
// the image-level term), postprocessing, calibration and the card.
std::vector<uint8_t> Teacher::WriteModelFile(const FitOptions& o, const JsonValue& extra,
                                             const std::vector<float>& a,
                                             const std::vector<float>& mu,
                                             const std::vector<float>& ga,
                                             const std::vector<float>& gmu,
                                             const CellCalibration& cc,
                                             const FitResult& result) const {
  const int d = d_;
  const bool per_position = o.density == DensityKind::kPerPosition;
  const int nh = holdout_images();
  ModelSpec spec;
  spec.tensors = kept_tensors_;
  JsonValue nodes = kept_nodes_;
  nodes.Push(ConvNode(kProjNode, feature_node_, d, std::string(kProjNode) + ".weight", ""));
  spec.tensors.push_back({std::string(kProjNode) + ".weight", {d, 1, 1, fc_}, projection_});
  std::string density_out = kDensityNode;
  if (per_position) {
    JsonValue n = SimpleNode(kDensityNode, "position_mahalanobis", {kProjNode});
    n.Set("weight", std::string(kDensityNode) + ".weight");
    n.Set("bias", std::string(kDensityNode) + ".bias");
    nodes.Push(std::move(n));
    spec.tensors.push_back({std::string(kDensityNode) + ".weight", {fh_, fw_, d, d}, a});
    spec.tensors.push_back({std::string(kDensityNode) + ".bias", {fh_, fw_, d}, mu});
  } else {
    std::vector<float> bias(static_cast<size_t>(d));
    for (int k = 0; k < d; ++k) {
      double s = 0;
      for (int j = 0; j < d; ++j) s += double(a[size_t(k) * d + j]) * mu[size_t(j)];
      bias[size_t(k)] = float(-s);
    }
    nodes.Push(ConvNode(kWhitenNode, kProjNode, d, std::string(kWhitenNode) + ".weight",
                        std::string(kWhitenNode) + ".bias"));
    spec.tensors.push_back({std::string(kWhitenNode) + ".weight", {d, 1, 1, d}, a});
    spec.tensors.push_back({std::string(kWhitenNode) + ".bias", {d}, bias});
    JsonValue n = SimpleNode(kDensityNode, "reduce_channels", {kWhitenNode});
    n.Set("mode", "sum_squares");
    nodes.Push(std::move(n));
  }
  if (o.global_weight > 0) {
    std::vector<float> bias(static_cast<size_t>(d));
    for (int k = 0; k < d; ++k) {
      double s = 0;
      for (int j = 0; j < d; ++j) s += double(ga[size_t(k) * d + j]) * gmu[size_t(j)];
      bias[size_t(k)] = float(-s);
    }
    nodes.Push(SimpleNode(kGlobalPool, "global_avgpool", {kProjNode}));
    nodes.Push(ConvNode(kGlobalWhiten, kGlobalPool, d, std::string(kGlobalWhiten) + ".weight",
                        std::string(kGlobalWhiten) + ".bias"));
    spec.tensors.push_back({std::string(kGlobalWhiten) + ".weight", {d, 1, 1, d}, ga});
    spec.tensors.push_back({std::string(kGlobalWhiten) + ".bias", {d}, bias});
    JsonValue r = SimpleNode(kGlobalDist, "reduce_channels", {kGlobalWhiten});
    r.Set("mode", "sum_squares");
    nodes.Push(std::move(r));
    JsonValue u = SimpleNode(kGlobalMap, "upsample", {kGlobalDist});
    u.Set("mode", "nearest").Set("scale", IntPair(fh_, fw_));
    nodes.Push(std::move(u));
    nodes.Push(SimpleNode(kMapNode, "add", {kDensityNode, kGlobalMap}));
    density_out = kMapNode;
  }
  JsonValue graph = JsonValue::Object();
  graph.Set("input", graph_input_).Set("nodes", std::move(nodes)).Set("output", density_out);
  spec.graph_json = graph.Dump();
  spec.preprocess_json = preprocess_json_;
  PostprocessConfig post;
  post.blur_sigma = o.blur_sigma;
  post.reduce = ScoreReduce::kMax;
  spec.postprocess_json = PostprocessToJson(post, "post.cell_mean", "post.cell_std");
  spec.tensors.push_back({"post.cell_mean", {fh_, fw_}, cc.mean});
  spec.tensors.push_back({"post.cell_std", {fh_, fw_}, cc.std});
  spec.calibration_json = CalibrationToJson(result.calibration);

  JsonValue card = JsonValue::Object();
  card.Set("name", o.name).Set("kind", "detector").Set("taught_by", o.taught_by);
  if (!o.created.empty()) card.Set("created", o.created);
  card.Set("backbone", source_card_backbone_);
  JsonValue fit = JsonValue::Object();
  fit.Set("feature_node", feature_node_)
      .Set("density", DensityKindName(o.density))
      .Set("dims", d)
      .Set("projection", "rademacher")
      .Set("seed", uint64_t(options_.seed))
      .Set("channels", IntPair(options_.channel_begin, options_.channel_end ? options_.channel_end : fc_))
      .Set("shrinkage", o.shrinkage < 0 ? JsonValue("ledoit_wolf") : JsonValue(double(o.shrinkage)))
      .Set("mean_shrinkage", result.mean_shrinkage)
      .Set("eps", double(o.eps))
      .Set("blur_sigma", double(o.blur_sigma))
      .Set("cell_std_shrink", double(o.cell_std_shrink))
      .Set("global_weight", double(o.global_weight))
      .Set("sensitivity", double(o.sensitivity))
      .Set("holdout", double(options_.holdout))
      .Set("images", images())
      .Set("fit_images", fit_images_)
      .Set("holdout_images", nh)
      .Set("map", IntPair(fh_, fw_));
  card.Set("fit", std::move(fit));
  if (extra.is_object()) {
    for (size_t i = 0; i < extra.size(); ++i) card.Set(extra.keys()[i], extra.items()[i]);
  }
  spec.card_json = card.Dump();
  return WriteModel(spec);
}

}  // namespace flawlens::fit
