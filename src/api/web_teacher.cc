#include "api/web_teacher.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

// Part of the core library: uses the teacher, the size limits and the JSON
// reader/writer.
#include "core/limits.h"
#include "fit/teacher.h"
#include "fit/threshold.h"
#include "model/json_value.h"
#include "model/safetensors.h"

namespace flawlens {
namespace {

std::string Err(const char* code, const std::string& message) {
  return std::string(code) + ": " + message;
}

bool ParsePixelFormat(const std::string& format, PixelFormat* pf) {
  if (format == "rgba") {
    *pf = PixelFormat::kRGBA8;
  } else if (format == "rgb") {
    *pf = PixelFormat::kRGB8;
  } else if (format == "gray") {
    *pf = PixelFormat::kGray8;
  } else {
    return false;
  }
  return true;
}

// The model card of a safetensors file already validated by the loader:
// __metadata__.card parsed ("{}" when anything is missing).
JsonValue CardOf(const uint8_t* bytes, size_t size) {
  JsonValue none = JsonValue::Object();
  auto header = ReadSafetensorsHeader(bytes, size);
  if (!header.ok()) return none;
  auto card = header->metadata.find("card");
  JsonValue out;
  if (card == header->metadata.end() ||
      !ParseJson(card->second.data(), card->second.size(), "card", &out).ok() ||
      !out.is_object()) {
    return none;
  }
  return out;
}

std::string StringOr(const JsonValue* obj, const char* key, const std::string& fallback) {
  const JsonValue* v = obj ? obj->Find(key) : nullptr;
  return v && v->is_string() ? v->str() : fallback;
}

Status ParseOptions(const std::string& json, JsonValue* out) {
  if (json.empty()) {
    *out = JsonValue::Object();
    return Status::Ok();
  }
  FLAWLENS_RETURN_IF_ERROR(ParseJson(json.data(), json.size(), "options", out));
  if (!out->is_object()) {
    return MakeError(ErrorCode::kInvalidArgument, "options must be a JSON object");
  }
  return Status::Ok();
}

}  // namespace

WebTeacher::WebTeacher() = default;
WebTeacher::~WebTeacher() = default;

uint8_t* WebTeacher::buffer(double bytes) {
  if (!(bytes >= 0) || bytes > static_cast<double>(kMaxModelBytes)) return nullptr;
  bytes_.resize(static_cast<size_t>(bytes));
  return bytes_.data();
}

void WebTeacher::releaseBytes() { std::vector<uint8_t>().swap(bytes_); }

void WebTeacher::releaseModel() { std::vector<uint8_t>().swap(model_); }

std::string WebTeacher::begin(const std::string& options_json) {
  JsonValue o;
  Status st = ParseOptions(options_json, &o);
  if (!st.ok()) {
    releaseBytes();
    return st.ToString();
  }
  fit::TeacherOptions to;
  int64_t v = 0;
  if (const JsonValue* seed = o.Find("seed"); seed && !seed->is_null()) {
    if (!seed->ToInt64(0, 0xFFFFFFFFll, &v)) {
      releaseBytes();
      return Err("invalid_argument", "seed must be an integer in [0, 4294967295]");
    }
    to.seed = static_cast<uint32_t>(v);
  }
  if (const JsonValue* dims = o.Find("dims"); dims && !dims->is_null()) {
    if (!dims->ToInt64(1, 1024, &v)) {
      releaseBytes();
      return Err("invalid_argument", "dims must be an integer in [1, 1024]");
    }
    to.dims = static_cast<int>(v);
  }
  if (const JsonValue* threads = o.Find("threads"); threads && !threads->is_null()) {
    if (!threads->ToInt64(1, 64, &v)) {
      releaseBytes();
      return Err("invalid_argument", "threads must be an integer in [1, 64]");
    }
    to.threads = static_cast<int>(v);
  }
  auto t = fit::Teacher::Create(bytes_.data(), bytes_.size(), to);
  if (!t.ok()) {
    releaseBytes();
    const Status& s = t.status();
    // Teacher::Create's "neither a backbone nor a taught model" is the one
    // error the page explains differently (load a model with a backbone).
    if (s.code() == ErrorCode::kInvalidArgument && s.message().rfind("not a backbone", 0) == 0) {
      return Err("no_backbone",
                 "the model has no pretrained backbone to teach on (" + s.message() + ")");
    }
    return s.ToString();
  }
  const JsonValue card = CardOf(bytes_.data(), bytes_.size());
  releaseBytes();
  // A backbone file names itself; a taught model names its backbone.
  const JsonValue* kind = card.Find("kind");
  const JsonValue* bb =
      (kind && kind->is_string() && kind->str() == "backbone") ? &card : card.Find("backbone");
  JsonValue backbone = JsonValue::Object();
  backbone.Set("name", StringOr(bb, "name", "unnamed"))
      .Set("licence", StringOr(bb, "licence", StringOr(bb, "license", "")));
  teacher_ = std::move(t).value();
  JsonValue info = JsonValue::Object();
  info.Set("mapWidth", teacher_->map_width())
      .Set("mapHeight", teacher_->map_height())
      .Set("dims", teacher_->dims())
      .Set("featureChannels", teacher_->feature_channels())
      .Set("featureNode", teacher_->feature_node())
      .Set("minImages", fit::kMinFitImages)
      .Set("backbone", std::move(backbone));
  info_json_ = info.Dump();
  last_hash_ = 0;
  releaseModel();
  result_json_ = "{}";
  return "";
}

std::string WebTeacher::info() const { return teacher_ ? info_json_ : "{}"; }

int WebTeacher::images() const { return teacher_ ? teacher_->images() : 0; }

std::string WebTeacher::addFrame(int width, int height, const std::string& format, double rx,
                                 double ry, double rw, double rh, const std::string& group) {
  if (!teacher_) return Err("no_teacher", "teaching has not begun (no model to teach on)");
  PixelFormat pf;
  if (!ParsePixelFormat(format, &pf)) {
    return Err("invalid_argument",
               "pixel format must be 'rgba', 'rgb' or 'gray', got '" + format + "'");
  }
  if (width <= 0 || height <= 0 || width > kMaxImageSide || height > kMaxImageSide) {
    return Err("invalid_argument", "image size " + std::to_string(width) + "x" +
                                       std::to_string(height) + " is out of range (1.." +
                                       std::to_string(kMaxImageSide) + ")");
  }
  const int bpp = BytesPerPixel(pf);
  const uint64_t need = uint64_t(width) * uint64_t(height) * uint64_t(bpp);
  if (bytes_.size() < need) {
    return Err("invalid_argument", "pixel buffer holds " + std::to_string(bytes_.size()) +
                                       " bytes, a " + std::to_string(width) + "x" +
                                       std::to_string(height) + " " + format + " image needs " +
                                       std::to_string(need));
  }
  for (double v : {rx, ry, rw, rh}) {
    if (!std::isfinite(v))
      return Err("invalid_argument", "region of interest must be finite numbers");
  }
  // The checks look at the pixels the model will see: the region clipped to
  // the frame (the whole frame without one, or when it misses the frame;
  // the preprocessing then reports the bad region).
  int x0 = 0, y0 = 0, x1 = width, y1 = height;
  if (rw > 0 && rh > 0) {
    const int cx0 = int(std::floor(std::max(0.0, rx))), cy0 = int(std::floor(std::max(0.0, ry)));
    const int cx1 = int(std::ceil(std::min(double(width), rx + rw)));
    const int cy1 = int(std::ceil(std::min(double(height), ry + rh)));
    if (cx1 > cx0 && cy1 > cy0) x0 = cx0, y0 = cy0, x1 = cx1, y1 = cy1;
  }
  const uint8_t* px = bytes_.data();
  const size_t stride = size_t(width) * bpp;
  // Luma in integers (BT.601 weights / 256) and a hash of the region's bytes:
  // four independent multiply-xor lanes over 8-byte words, so the hash costs
  // about a memory pass, not a multiply per byte.
  uint64_t sum = 0, sum2 = 0;
  uint64_t lane[4] = {0x9E3779B97F4A7C15ull, 0xC2B2AE3D27D4EB4Full, 0x165667B19E3779F9ull,
                      0x27D4EB2F165667C5ull};
  constexpr uint64_t kMul = 0x100000001B3ull * 0x9E3779B1ull | 1ull;
  const size_t row_bytes = size_t(x1 - x0) * bpp;
  for (int y = y0; y < y1; ++y) {
    const uint8_t* row = px + size_t(y) * stride + size_t(x0) * bpp;
    size_t i = 0;
    for (; i + 32 <= row_bytes; i += 32) {
      for (int k = 0; k < 4; ++k) {
        uint64_t w;
        std::memcpy(&w, row + i + 8 * k, 8);
        lane[k] = (lane[k] ^ w) * kMul;
      }
    }
    for (; i < row_bytes; ++i) lane[0] = (lane[0] ^ row[i]) * kMul;
    if (bpp == 1) {
      for (size_t x = 0; x < row_bytes; ++x) {
        const uint32_t l = row[x];
        sum += l;
        sum2 += l * l;
      }
    } else {
      for (size_t x = 0; x < row_bytes; x += size_t(bpp)) {
        const uint32_t l = (77u * row[x] + 150u * row[x + 1] + 29u * row[x + 2]) >> 8;
        sum += l;
        sum2 += l * l;
      }
    }
  }
  uint64_t hash = uint64_t(x1 - x0) << 32 ^ uint64_t(y1 - y0);
  for (uint64_t l : lane) hash = (hash ^ (l >> 29) ^ l) * kMul;
  if (hash == 0) hash = 1;
  const double n = double(x1 - x0) * double(y1 - y0);
  const double mean = double(sum) / n;
  const double sd = std::sqrt(std::max(0.0, double(sum2) / n - mean * mean));
  if (sd < kBlankStd) {
    char msg[200];
    std::snprintf(msg, sizeof(msg),
                  "the frame is blank (brightness %.0f of 255, contrast %.2f levels): the camera "
                  "shows a black or uniform picture; check the lens, the light and the region",
                  mean, sd);
    return Err("black_frame", msg);
  }
  if (hash == last_hash_) {
    return Err("frozen_frame",
               "the frame is identical to the previous one: the camera seems frozen; check that "
               "it is still connected and streaming");
  }
  ImageView view{px, width, height, pf, 0};
  const RectF roi{float(rx), float(ry), float(rw), float(rh)};
  if (group.size() > 1024) return Err("invalid_argument", "group name longer than 1024 bytes");
  auto added = teacher_->AddImage(view, roi, group);
  if (!added.ok()) return added.status().ToString();
  last_hash_ = hash;
  return "";
}

std::string WebTeacher::fit(const std::string& options_json,
                            const std::function<void(float)>& progress) {
  if (!teacher_) return Err("no_teacher", "teaching has not begun (no model to teach on)");
  JsonValue o;
  Status st = ParseOptions(options_json, &o);
  if (!st.ok()) return st.ToString();
  fit::FitOptions fo;
  fo.taught_by = "flawlens page";
  fo.name = StringOr(&o, "name", "taught model");
  if (fo.name.empty() || fo.name.size() > 200) {
    return Err("invalid_argument", "name must have 1 to 200 characters");
  }
  fo.created = StringOr(&o, "created", "");
  if (fo.created.size() > 64) return Err("invalid_argument", "created must be a short date string");
  if (const JsonValue* s = o.Find("sensitivity"); s && !s->is_null()) {
    if (!s->is_number() || !(s->as_double() >= 0 && s->as_double() <= 1)) {
      return Err("invalid_argument", "sensitivity must be a number in [0, 1]");
    }
    fo.false_alarm_rate = fit::SensitivityToRate(s->as_double());
  }
  if (const JsonValue* s = o.Find("falseAlarmRate"); s && !s->is_null()) {
    if (!s->is_number() || !(s->as_double() >= fit::kMinFalseAlarmRate &&
                             s->as_double() <= fit::kMaxFalseAlarmRate)) {
      return Err("invalid_argument", "falseAlarmRate must be a number in [0.0001, 0.5]");
    }
    fo.false_alarm_rate = s->as_double();
  }
  if (const JsonValue* d = o.Find("density"); d && !d->is_null()) {
    auto kind = fit::ParseDensityKind(d->str());
    if (!kind.ok()) return kind.status().ToString();
    fo.density = kind.value();
  }
  if (const JsonValue* card = o.Find("card"); card && !card->is_null()) {
    if (!card->is_object()) return Err("invalid_argument", "card must be a JSON object");
    fo.card_extra_json = card->Dump();
  }
  auto r = teacher_->Fit(fo, progress);
  if (!r.ok()) {
    const Status& s = r.status();
    if (s.message().rfind("too few images", 0) == 0) return Err("too_few", s.message());
    // Fit's "no variation between the images" (the same frame over and over).
    if (s.code() == ErrorCode::kInvalidArgument &&
        s.message().find("no variation") != std::string::npos) {
      return Err("degenerate", s.message());
    }
    return s.ToString();
  }
  model_ = std::move(r.value().model);
  const Calibration& c = r.value().calibration;
  JsonValue cal = JsonValue::Object();
  cal.Set("offset", c.offset)
      .Set("scale", c.scale)
      .Set("threshold", c.threshold)
      .Set("mapLow", c.map_low)
      .Set("mapHigh", c.map_high)
      .Set("falseAlarmRate", double(c.false_alarm_rate))
      .Set("goodImages", c.good_images)
      .Set("goodGroups", c.good_groups);
  JsonValue warnings = JsonValue::Array();
  for (const std::string& w : r.value().warnings) warnings.Push(w);
  JsonValue j = JsonValue::Object();
  j.Set("calibration", std::move(cal))
      .Set("images", teacher_->images())
      .Set("groups", r.value().groups)
      .Set("folds", r.value().folds)
      .Set("meanShrinkage", r.value().mean_shrinkage)
      .Set("warnings", std::move(warnings));
  result_json_ = j.Dump();
  return "";
}

}  // namespace flawlens
