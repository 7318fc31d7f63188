// The detector: model bytes -> executor; pixels -> preprocess -> network ->
// postprocess (sigmoid, blur, per-cell calibration, score reduction,
// normalisation) -> Detection. Steady-state Detect() allocates nothing: every
// buffer is sized at Create() or grows once with the input size.
#include "flawlens/detector.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>

#include "core/limits.h"
#include "image/gaussian_blur.h"
#include "image/preprocess.h"
#include "model/model.h"
#include "nn/executor.h"
#include "kernels/backends.h"

namespace flawlens {

namespace {

double NowMs() {
  using Clock = std::chrono::steady_clock;
  return std::chrono::duration<double, std::milli>(Clock::now().time_since_epoch()).count();
}

Result<BackendKind> ParseBackend(const std::string& name) {
  if (name == "auto" || name.empty()) return BackendKind::kAuto;
  if (name == "simd") return BackendKind::kSimd;
  if (name == "ref" || name == "reference") return BackendKind::kReference;
  if (name == "xnnpack") {
    if (!HaveXnnpack()) {
      return MakeError(ErrorCode::kUnsupported, "backend 'xnnpack' is not available in this build");
    }
    return BackendKind::kXnnpack;
  }
  return MakeError(ErrorCode::kInvalidArgument,
                   "unknown backend '%s' (expected auto, simd, ref or xnnpack)", name.c_str());
}

}  // namespace

struct Detector::Scratch {
  PreprocessScratch preprocess;
  std::vector<float> blur_kernel;
  std::vector<float> blur_scratch;  // GaussianBlurPlane's (map + one padded row)
  std::vector<int> blur_rows;
  std::vector<float> tmp;  // top-k scratch, map-sized
  Image decoded;
};

Detector::Detector() : scratch_(new Scratch) {}
Detector::~Detector() = default;

Result<std::unique_ptr<Detector>> Detector::Create(const uint8_t* model_bytes, size_t size,
                                                    const DetectorOptions& options) {
  if (model_bytes == nullptr || size == 0) {
    return MakeError(ErrorCode::kInvalidArgument, "model: no bytes given (empty file?)");
  }
  FLAWLENS_ASSIGN_OR_RETURN(BackendKind kind, ParseBackend(options.backend));
  std::unique_ptr<Detector> det(new Detector());
  FLAWLENS_ASSIGN_OR_RETURN(det->model_, LoadModel(model_bytes, size));
  const Model& m = *det->model_;

  const Shape& out = m.graph.output_shape();
  if (out.c != 1) {
    return MakeError(ErrorCode::kBadGraph,
                     "network output '%s' has %d channels; a detector needs a 1-channel anomaly map "
                     "(h x w x 1) or a single score (1 x 1 x 1)",
                     m.graph.output == 0 ? "input" : m.graph.nodes[m.graph.output - 1].name.c_str(),
                     out.c);
  }
  ExecutorOptions eo;
  eo.backend = kind;
  eo.threads = std::max(1, options.threads);
  FLAWLENS_ASSIGN_OR_RETURN(det->executor_, CreateExecutor(m.graph, eo));

  const int map_cells = out.h * out.w;
  det->detection_.map.assign(map_cells, 0.0f);
  det->detection_.map_width = out.w;
  det->detection_.map_height = out.h;
  det->scratch_->tmp.assign(map_cells, 0.0f);
  if (m.postprocess.blur_sigma > 0) {
    Scratch& sc = *det->scratch_;
    sc.blur_kernel = GaussianKernel(m.postprocess.blur_sigma);
    const int r = static_cast<int>(sc.blur_kernel.size() / 2);
    sc.blur_scratch.assign(BlurScratchFloats(out.w, out.h, 1, r), 0.0f);
    sc.blur_rows.assign(sc.blur_kernel.size(), 0);
  }

  ModelInfo& info = det->info_;
  info.name = m.name;
  info.input_width = m.graph.input.w;
  info.input_height = m.graph.input.h;
  info.input_channels = m.graph.input.c;
  info.map_width = out.w;
  info.map_height = out.h;
  info.threshold = m.calibration.threshold;
  info.false_alarm_rate = m.calibration.false_alarm_rate;
  info.good_scores = m.calibration.good_scores;
  info.good_images = m.calibration.good_images;
  info.good_groups = m.calibration.good_groups;
  info.macs = m.graph.Macs();
  for (const Node& n : m.graph.nodes) {
    if (n.weight.data) info.parameters += n.weight.elements();
    if (n.bias.data) info.parameters += n.bias.elements();
  }
  info.card_json = m.card_json;
  info.map_low = m.calibration.map_low;
  info.map_high = m.calibration.map_high;
  info.pixel_scale = m.preprocess.pixel_scale;
  info.backend = BackendKindName(kind);
  if (kind == BackendKind::kAuto) info.backend = HaveXnnpack() ? "xnnpack" : "simd";
  det->threshold_ = m.calibration.threshold;
  return det;
}

void Detector::reset_threshold() { threshold_ = model_->calibration.threshold; }

size_t Detector::network_output_count() const {
  return static_cast<size_t>(executor_->output_shape().elements());
}

Status Detector::RunNetwork(const float* input, size_t input_count, float* output,
                            size_t output_count) {
  const size_t need_in = static_cast<size_t>(executor_->input_shape().elements());
  const size_t need_out = network_output_count();
  if (input == nullptr || input_count != need_in) {
    return MakeError(ErrorCode::kInvalidArgument, "network input: expected %zu floats, got %zu",
                     need_in, input == nullptr ? size_t{0} : input_count);
  }
  if (output == nullptr || output_count != need_out) {
    return MakeError(ErrorCode::kInvalidArgument, "network output: expected %zu floats, got %zu",
                     need_out, output == nullptr ? size_t{0} : output_count);
  }
  std::memcpy(executor_->input(), input, need_in * sizeof(float));
  executor_->Run();
  std::memcpy(output, executor_->output(), need_out * sizeof(float));
  return Status::Ok();
}

Result<const Detection*> Detector::DetectEncoded(const uint8_t* bytes, size_t size,
                                                 const RectF& roi) {
  FLAWLENS_ASSIGN_OR_RETURN(scratch_->decoded, DecodeImage(bytes, size));
  return Detect(scratch_->decoded.view(), roi);
}

Result<const Detection*> Detector::Detect(const ImageView& image, const RectF& roi) {
  const Model& m = *model_;
  const PostprocessConfig& post = m.postprocess;
  const Calibration& cal = m.calibration;
  Detection& d = detection_;

  const double t0 = NowMs();
  RectF covered;
  FLAWLENS_RETURN_IF_ERROR(
      Preprocess(image, m.preprocess, roi, executor_->input(), &scratch_->preprocess, &covered));
  const double t1 = NowMs();
  executor_->Run();
  const double t2 = NowMs();

  int h = info_.map_height, w = info_.map_width, n = h * w;
  d.map.resize(static_cast<size_t>(n));  // within capacity: no allocation
  float* map = d.map.data();
  std::memcpy(map, executor_->output(), n * sizeof(float));
  if (post.sigmoid) {
    for (int i = 0; i < n; ++i) map[i] = 1.0f / (1.0f + std::exp(-map[i]));
  }
  if (!scratch_->blur_kernel.empty() && n > 1) {
    // Separable, reflect-101 borders (d c b | a b c d | c b a), SIMD128.
    const std::vector<float>& k = scratch_->blur_kernel;
    GaussianBlurPlane(map, map, w, h, 1, k.data(), static_cast<int>(k.size() / 2),
                      BlurBorder::kReflect101, scratch_->blur_scratch.data(),
                      scratch_->blur_rows.data());
  }
  if (post.cell_mean.data) {
    for (int i = 0; i < n; ++i) map[i] -= post.cell_mean.data[i];
  }
  if (post.cell_std.data) {
    for (int i = 0; i < n; ++i) map[i] /= post.cell_std.data[i];
  }

  // Fixed pixel scale or keep aspect: keep only the cells over the image, not
  // its mirror padding, so padding never raises the score (compacted in place,
  // row by row; destinations never pass sources).
  RectF map_rect = covered;
  if (m.preprocess.padded()) {
    FLAWLENS_ASSIGN_OR_RETURN(RectI content, PreprocessContent(m.preprocess, image.width,
                                                              image.height, roi));
    const RectI cells = ContentCells(content, info_.input_width, info_.input_height, w, h);
    for (int y = 0; y < cells.h; ++y) {
      std::memmove(map + static_cast<size_t>(y) * cells.w,
                   map + static_cast<size_t>(cells.y + y) * w + cells.x,
                   static_cast<size_t>(cells.w) * sizeof(float));
    }
    map_rect.x = covered.x + cells.x * covered.w / w;
    map_rect.y = covered.y + cells.y * covered.h / h;
    map_rect.w = cells.w * covered.w / w;
    map_rect.h = cells.h * covered.h / h;
    w = cells.w;
    h = cells.h;
    n = w * h;
    d.map.resize(static_cast<size_t>(n));
  }
  d.map_width = w;
  d.map_height = h;

  // Calibration by distance to each edge of the kept map.
  if (post.edge_mean.data || post.edge_std.data) {
    const TensorRef& ref = post.edge_mean.data ? post.edge_mean : post.edge_std;
    const int s = static_cast<int>(ref.shape[0]);
    for (int y = 0; y < h; ++y) {
      const int ey = EdgeTableIndex(y, h, s);
      for (int x = 0; x < w; ++x) {
        const int e = ey * s + EdgeTableIndex(x, w, s);
        float& v = map[static_cast<size_t>(y) * w + x];
        if (post.edge_mean.data) v -= post.edge_mean.data[e];
        if (post.edge_std.data) v /= post.edge_std.data[e];
      }
    }
  }

  // Every cell must be finite before the reduction: a NaN cell behind a
  // finite maximum would otherwise give a finite score with a NaN heatmap, and
  // std::nth_element (top-k) has undefined behaviour on NaN.
  for (int i = 0; i < n; ++i) {
    if (!std::isfinite(map[i])) {
      return MakeError(ErrorCode::kNonFinite,
                       "the network produced a non-finite anomaly map (cell %d of %dx%d is %s); "
                       "the model's weights overflow on this input",
                       i, w, h, std::isnan(map[i]) ? "NaN" : "Inf");
    }
  }
  double raw = 0;
  switch (post.reduce) {
    case ScoreReduce::kMax:
      raw = *std::max_element(map, map + n);
      break;
    case ScoreReduce::kMean: {
      double s = 0;
      for (int i = 0; i < n; ++i) s += map[i];
      raw = s / n;
      break;
    }
    case ScoreReduce::kTopKMean: {
      const int k = std::clamp(static_cast<int>(std::ceil(post.topk_fraction * n)), 1, n);
      float* tmp = scratch_->tmp.data();
      std::memcpy(tmp, map, n * sizeof(float));
      std::nth_element(tmp, tmp + (k - 1), tmp + n, std::greater<float>());
      double s = 0;
      for (int i = 0; i < k; ++i) s += tmp[i];
      raw = s / k;
      break;
    }
  }
  if (!std::isfinite(raw)) {
    return MakeError(ErrorCode::kNonFinite,
                     "the network produced a non-finite anomaly score (NaN or Inf); the model's "
                     "weights overflow on this input");
  }
  const float inv_scale = 1.0f / cal.scale;
  for (int i = 0; i < n; ++i) map[i] = (map[i] - cal.offset) * inv_scale;

  d.raw_score = static_cast<float>(raw);
  d.score = (d.raw_score - cal.offset) * inv_scale;
  // The calibration can still push finite values out of float range.
  bool finite = std::isfinite(d.score);
  for (int i = 0; i < n && finite; ++i) finite = std::isfinite(map[i]);
  if (!finite) {
    return MakeError(ErrorCode::kNonFinite,
                     "the calibrated anomaly score or map is out of float range (raw score %g, "
                     "calibration offset %g, scale %g)",
                     raw, cal.offset, cal.scale);
  }
  d.threshold = threshold_;
  d.anomalous = d.score >= threshold_;
  d.map_rect = map_rect;
  const double t3 = NowMs();
  d.timings.preprocess_ms = t1 - t0;
  d.timings.network_ms = t2 - t1;
  d.timings.postprocess_ms = t3 - t2;
  d.timings.total_ms = t3 - t0;
  return static_cast<const Detection*>(&d);
}

}  // namespace flawlens
