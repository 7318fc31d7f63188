#include "model/json_util.h"

#include <cfloat>
#include <cmath>

#include "core/limits.h"

namespace flawlens {

const JsonValue* FindMember(const JsonValue& obj, const char* key) {
  return obj.Find(key);
}

bool JsonToInt64(const JsonValue& v, int64_t lo, int64_t hi, int64_t* out) {
  return v.ToInt64(lo, hi, out);
}

Status GetInt(const JsonValue& obj, const char* key, int64_t lo, int64_t hi, ErrorCode code,
              const std::string& ctx, int* out) {
  const JsonValue* v = FindMember(obj, key);
  if (v == nullptr) return Status::Ok();
  int64_t x = 0;
  if (!JsonToInt64(*v, lo, hi, &x)) {
    return MakeError(code, "%s: '%s' must be an integer in [%lld, %lld] (got %s)", ctx.c_str(),
                     key, static_cast<long long>(lo), static_cast<long long>(hi),
                     DumpJson(*v).substr(0, 64).c_str());
  }
  *out = static_cast<int>(x);
  return Status::Ok();
}

Status GetIntPair(const JsonValue& obj, const char* key, int64_t lo, int64_t hi, ErrorCode code,
                  const std::string& ctx, int* a, int* b) {
  const JsonValue* v = FindMember(obj, key);
  if (v == nullptr) return Status::Ok();
  int64_t x = 0, y = 0;
  bool ok = false;
  if (v->is_number()) {
    ok = JsonToInt64(*v, lo, hi, &x);
    y = x;
  } else if (v->is_array() && v->size() == 2) {
    ok = JsonToInt64((*v)[0], lo, hi, &x) && JsonToInt64((*v)[1], lo, hi, &y);
  }
  if (!ok) {
    return MakeError(code, "%s: '%s' must be an integer or [h, w] of integers in [%lld, %lld] (got %s)",
                     ctx.c_str(), key, static_cast<long long>(lo), static_cast<long long>(hi),
                     DumpJson(*v).substr(0, 64).c_str());
  }
  *a = static_cast<int>(x);
  *b = static_cast<int>(y);
  return Status::Ok();
}

Status GetFloat(const JsonValue& obj, const char* key, double lo, double hi, ErrorCode code,
                const std::string& ctx, float* out) {
  const JsonValue* v = FindMember(obj, key);
  if (v == nullptr) return Status::Ok();
  if (!v->is_number()) {
    return MakeError(code, "%s: '%s' must be a number (got %s)", ctx.c_str(), key,
                     v->type_name());
  }
  const double d = v->as_double();
  if (!std::isfinite(d) || std::fabs(d) > FLT_MAX || d < lo || d > hi) {
    return MakeError(code, "%s: '%s' must be a finite number in [%g, %g] (got %g)", ctx.c_str(),
                     key, lo, hi, d);
  }
  *out = static_cast<float>(d);
  return Status::Ok();
}

Status GetBool(const JsonValue& obj, const char* key, ErrorCode code, const std::string& ctx,
               bool* out) {
  const JsonValue* v = FindMember(obj, key);
  if (v == nullptr) return Status::Ok();
  if (!v->is_bool()) {
    return MakeError(code, "%s: '%s' must be true or false (got %s)", ctx.c_str(), key,
                     v->type_name());
  }
  *out = v->as_bool();
  return Status::Ok();
}

Status GetString(const JsonValue& obj, const char* key, ErrorCode code, const std::string& ctx,
                 std::string* out) {
  const JsonValue* v = FindMember(obj, key);
  if (v == nullptr) return Status::Ok();
  if (!v->is_string()) {
    return MakeError(code, "%s: '%s' must be a string (got %s)", ctx.c_str(), key,
                     v->type_name());
  }
  *out = v->str();
  return Status::Ok();
}

// ---- Config sections ---------------------------------------------------------

const char* ScoreReduceName(ScoreReduce reduce) {
  switch (reduce) {
    case ScoreReduce::kMax: return "max";
    case ScoreReduce::kTopKMean: return "topk_mean";
    case ScoreReduce::kMean: return "mean";
  }
  return "?";
}

const char* NormModeName(NormMode mode) {
  switch (mode) {
    case NormMode::kMeanStd: return "mean_std";
    case NormMode::kLocalContrast: return "local_contrast";
  }
  return "?";
}

namespace {

constexpr ErrorCode kHdr = ErrorCode::kBadHeader;

// "mean"/"std": a number (all channels) or an array of 1 or 3 numbers.
Status GetChannelTriple(const JsonValue& obj, const char* key, double lo, const std::string& ctx,
                        float out[3]) {
  const JsonValue* v = FindMember(obj, key);
  if (v == nullptr) return Status::Ok();
  double vals[3] = {0, 0, 0};
  bool ok = false;
  if (v->is_number()) {
    vals[0] = vals[1] = vals[2] = v->as_double();
    ok = true;
  } else if (v->is_array() && (v->size() == 1 || v->size() == 3)) {
    ok = true;
    for (size_t i = 0; i < 3; ++i) {
      const JsonValue& e = (*v)[v->size() == 1 ? 0 : i];
      if (!e.is_number()) {
        ok = false;
        break;
      }
      vals[i] = e.as_double();
    }
  }
  for (double d : vals) {
    if (!std::isfinite(d) || std::fabs(d) > FLT_MAX || d < lo) ok = false;
  }
  if (!ok) {
    return MakeError(kHdr, "%s: '%s' must be a finite number or an array of 1 or 3 finite numbers%s",
                     ctx.c_str(), key, lo > 0 ? " > 0" : "");
  }
  for (int i = 0; i < 3; ++i) out[i] = static_cast<float>(vals[i]);
  return Status::Ok();
}

JsonValue FloatJson(float f) { return JsonValue(static_cast<double>(f)); }

JsonValue FloatTriple(const float v[3]) {
  JsonValue a = JsonValue::Array();
  for (int i = 0; i < 3; ++i) a.Push(FloatJson(v[i]));
  return a;
}

}  // namespace

Status ParsePreprocessJson(const JsonValue& j, PreprocessConfig* out) {
  const std::string ctx = "preprocess";
  if (!j.is_object()) return MakeError(kHdr, "preprocess: must be a JSON object");
  PreprocessConfig c;
  FLAWLENS_RETURN_IF_ERROR(GetInt(j, "resize_w", 0, kMaxImageSide, kHdr, ctx, &c.resize_w));
  FLAWLENS_RETURN_IF_ERROR(GetInt(j, "resize_h", 0, kMaxImageSide, kHdr, ctx, &c.resize_h));
  if (const JsonValue* crop = FindMember(j, "crop")) {
    if (!crop->is_object()) {
      return MakeError(kHdr, "preprocess: 'crop' must be an object {\"x\",\"y\",\"w\",\"h\"}");
    }
    const std::string cctx = "preprocess.crop";
    FLAWLENS_RETURN_IF_ERROR(GetInt(*crop, "x", 0, kMaxImageSide, kHdr, cctx, &c.crop.x));
    FLAWLENS_RETURN_IF_ERROR(GetInt(*crop, "y", 0, kMaxImageSide, kHdr, cctx, &c.crop.y));
    FLAWLENS_RETURN_IF_ERROR(GetInt(*crop, "w", 0, kMaxImageSide, kHdr, cctx, &c.crop.w));
    FLAWLENS_RETURN_IF_ERROR(GetInt(*crop, "h", 0, kMaxImageSide, kHdr, cctx, &c.crop.h));
  }
  FLAWLENS_RETURN_IF_ERROR(GetInt(j, "channels", 1, 4, kHdr, ctx, &c.channels));
  FLAWLENS_RETURN_IF_ERROR(GetFloat(j, "scale", -FLT_MAX, FLT_MAX, kHdr, ctx, &c.scale));
  FLAWLENS_RETURN_IF_ERROR(GetChannelTriple(j, "mean", -FLT_MAX, ctx, c.mean));
  FLAWLENS_RETURN_IF_ERROR(GetChannelTriple(j, "std", 1e-30, ctx, c.std));
  std::string norm = NormModeName(c.norm);
  FLAWLENS_RETURN_IF_ERROR(GetString(j, "norm", kHdr, ctx, &norm));
  if (norm == "mean_std") {
    c.norm = NormMode::kMeanStd;
  } else if (norm == "local_contrast") {
    c.norm = NormMode::kLocalContrast;
  } else {
    return MakeError(kHdr, "preprocess: unknown norm '%s' (expected mean_std or local_contrast)",
                     norm.c_str());
  }
  FLAWLENS_RETURN_IF_ERROR(GetFloat(j, "lcn_sigma", 1e-6, 1e6, kHdr, ctx, &c.lcn_sigma));
  FLAWLENS_RETURN_IF_ERROR(GetFloat(j, "lcn_eps", 1e-30, 1e6, kHdr, ctx, &c.lcn_eps));
  FLAWLENS_RETURN_IF_ERROR(GetFloat(j, "pixel_scale", 0, 64, kHdr, ctx, &c.pixel_scale));
  // The geometry (FORMAT.md section 5): absent = what pixel_scale implies.
  std::string geometry = c.geometry_name();
  FLAWLENS_RETURN_IF_ERROR(GetString(j, "geometry", kHdr, ctx, &geometry));
  if (geometry == "keep_aspect") {
    c.keep_aspect = true;
  } else if (geometry != "stretch" && geometry != "pixel_scale") {
    return MakeError(kHdr,
                     "preprocess: unknown geometry '%s' (expected stretch, keep_aspect or "
                     "pixel_scale)",
                     geometry.substr(0, 64).c_str());
  }
  if (geometry != c.geometry_name()) {
    return MakeError(kHdr,
                     "preprocess: geometry '%s' contradicts pixel_scale %g (pixel_scale > 0 is the "
                     "geometry pixel_scale; stretch and keep_aspect need it absent or 0)",
                     geometry.c_str(), double(c.pixel_scale));
  }
  *out = c;
  return Status::Ok();
}

std::string PreprocessToJson(const PreprocessConfig& c) {
  JsonValue j = JsonValue::Object();
  j.Set("resize_w", c.resize_w);
  j.Set("resize_h", c.resize_h);
  j.Set("crop", JsonValue::Object()
                    .Set("x", c.crop.x)
                    .Set("y", c.crop.y)
                    .Set("w", c.crop.w)
                    .Set("h", c.crop.h));
  j.Set("channels", c.channels);
  j.Set("scale", FloatJson(c.scale));
  j.Set("mean", FloatTriple(c.mean));
  j.Set("std", FloatTriple(c.std));
  j.Set("norm", NormModeName(c.norm));
  j.Set("lcn_sigma", FloatJson(c.lcn_sigma));
  j.Set("lcn_eps", FloatJson(c.lcn_eps));
  if (c.pixel_scale > 0.0f) j.Set("pixel_scale", FloatJson(c.pixel_scale));
  if (c.keep_aspect) j.Set("geometry", "keep_aspect");
  return DumpJson(j);
}

Status ParseCalibrationJson(const JsonValue& j, Calibration* out) {
  const std::string ctx = "calibration";
  if (!j.is_object()) return MakeError(kHdr, "calibration: must be a JSON object");
  Calibration c;
  FLAWLENS_RETURN_IF_ERROR(GetFloat(j, "offset", -FLT_MAX, FLT_MAX, kHdr, ctx, &c.offset));
  if (const JsonValue* s = FindMember(j, "scale")) {
    if (!s->is_number() || !std::isfinite(s->as_double()) || !(s->as_double() > 0) ||
        s->as_double() > FLT_MAX || static_cast<float>(s->as_double()) <= 0.0f ||
        !std::isfinite(1.0f / static_cast<float>(s->as_double()))) {
      return MakeError(kHdr,
                       "calibration: 'scale' must be a finite number > 0 whose inverse is "
                       "finite (got %s)",
                       DumpJson(*s).substr(0, 64).c_str());
    }
    c.scale = static_cast<float>(s->as_double());
  }
  FLAWLENS_RETURN_IF_ERROR(GetFloat(j, "threshold", -FLT_MAX, FLT_MAX, kHdr, ctx, &c.threshold));
  if (const JsonValue* f = FindMember(j, "f1_threshold")) {
    if (!f->is_null()) {
      FLAWLENS_RETURN_IF_ERROR(
          GetFloat(j, "f1_threshold", -FLT_MAX, FLT_MAX, kHdr, ctx, &c.f1_threshold));
    }
  }
  FLAWLENS_RETURN_IF_ERROR(GetFloat(j, "map_low", -FLT_MAX, FLT_MAX, kHdr, ctx, &c.map_low));
  FLAWLENS_RETURN_IF_ERROR(GetFloat(j, "map_high", -FLT_MAX, FLT_MAX, kHdr, ctx, &c.map_high));
  if (!(c.map_low < c.map_high)) {
    return MakeError(kHdr, "calibration: map_low (%g) must be < map_high (%g)", c.map_low,
                     c.map_high);
  }
  if (const JsonValue* f = FindMember(j, "false_alarm_rate")) {
    if (!f->is_null()) {
      FLAWLENS_RETURN_IF_ERROR(
          GetFloat(j, "false_alarm_rate", 0.0, 1.0, kHdr, ctx, &c.false_alarm_rate));
    }
  }
  if (const JsonValue* g = FindMember(j, "good_scores")) {
    if (!g->is_array() || g->size() > size_t(kMaxCalibrationScores)) {
      return MakeError(kHdr, "calibration: 'good_scores' must be an array of at most %d numbers",
                       kMaxCalibrationScores);
    }
    for (size_t i = 0; i < g->size(); ++i) {
      const JsonValue& v = (*g)[i];
      const double d = v.is_number() ? v.as_double() : NAN;
      if (!std::isfinite(d) || std::fabs(d) > FLT_MAX ||
          (i > 0 && !(float(d) >= c.good_scores.back()))) {
        return MakeError(kHdr,
                         "calibration: 'good_scores' must hold finite numbers in ascending order "
                         "(entry %zu is %s)",
                         i, DumpJson(v).substr(0, 32).c_str());
      }
      c.good_scores.push_back(float(d));
    }
  }
  FLAWLENS_RETURN_IF_ERROR(GetInt(j, "good_images", 0, 1 << 30, kHdr, ctx, &c.good_images));
  FLAWLENS_RETURN_IF_ERROR(GetInt(j, "good_groups", 0, 1 << 30, kHdr, ctx, &c.good_groups));
  if (c.good_images < int(c.good_scores.size())) {
    return MakeError(kHdr, "calibration: 'good_images' (%d) is less than the %zu good_scores",
                     c.good_images, c.good_scores.size());
  }
  *out = c;
  return Status::Ok();
}

std::string CalibrationToJson(const Calibration& c) {
  JsonValue j = JsonValue::Object();
  j.Set("offset", FloatJson(c.offset));
  j.Set("scale", FloatJson(c.scale));
  j.Set("threshold", FloatJson(c.threshold));
  if (!std::isnan(c.f1_threshold)) j.Set("f1_threshold", FloatJson(c.f1_threshold));
  j.Set("map_low", FloatJson(c.map_low));
  j.Set("map_high", FloatJson(c.map_high));
  if (!std::isnan(c.false_alarm_rate)) j.Set("false_alarm_rate", FloatJson(c.false_alarm_rate));
  if (!c.good_scores.empty()) {
    JsonValue g = JsonValue::Array();
    for (float v : c.good_scores) g.Push(FloatJson(v));
    j.Set("good_scores", std::move(g));
  }
  if (c.good_images > 0) j.Set("good_images", c.good_images);
  if (c.good_groups > 0) j.Set("good_groups", c.good_groups);
  return DumpJson(j);
}

Status ParsePostprocessJson(const JsonValue& j, PostprocessConfig* out, std::string names[4]) {
  const std::string ctx = "postprocess";
  if (!j.is_object()) return MakeError(kHdr, "postprocess: must be a JSON object");
  PostprocessConfig c;
  FLAWLENS_RETURN_IF_ERROR(GetBool(j, "sigmoid", kHdr, ctx, &c.sigmoid));
  FLAWLENS_RETURN_IF_ERROR(GetFloat(j, "blur_sigma", 0.0, 64.0, kHdr, ctx, &c.blur_sigma));
  std::string reduce = ScoreReduceName(c.reduce);
  FLAWLENS_RETURN_IF_ERROR(GetString(j, "reduce", kHdr, ctx, &reduce));
  if (reduce == "max") {
    c.reduce = ScoreReduce::kMax;
  } else if (reduce == "topk_mean") {
    c.reduce = ScoreReduce::kTopKMean;
  } else if (reduce == "mean") {
    c.reduce = ScoreReduce::kMean;
  } else {
    return MakeError(kHdr, "postprocess: unknown reduce '%s' (expected max, topk_mean or mean)",
                     reduce.c_str());
  }
  FLAWLENS_RETURN_IF_ERROR(GetFloat(j, "topk_fraction", 0.0, 1.0, kHdr, ctx, &c.topk_fraction));
  if (!(c.topk_fraction > 0.0f)) {
    return MakeError(kHdr, "postprocess: 'topk_fraction' must be in (0, 1] (got %g)",
                     c.topk_fraction);
  }
  std::string n[4];
  const char* keys[4] = {"cell_mean", "cell_std", "edge_mean", "edge_std"};
  for (int k = 0; k < 4; ++k) FLAWLENS_RETURN_IF_ERROR(GetString(j, keys[k], kHdr, ctx, &n[k]));
  *out = c;
  for (int k = 0; k < 4; ++k) names[k] = n[k];
  return Status::Ok();
}

std::string PostprocessToJson(const PostprocessConfig& c, const std::string& cell_mean,
                              const std::string& cell_std) {
  JsonValue j = JsonValue::Object();
  j.Set("sigmoid", c.sigmoid);
  j.Set("blur_sigma", FloatJson(c.blur_sigma));
  j.Set("reduce", ScoreReduceName(c.reduce));
  j.Set("topk_fraction", FloatJson(c.topk_fraction));
  if (!cell_mean.empty()) j.Set("cell_mean", cell_mean);
  if (!cell_std.empty()) j.Set("cell_std", cell_std);
  return DumpJson(j);
}

}  // namespace flawlens
