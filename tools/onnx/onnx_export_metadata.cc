// anomalib's metadata of an exported model and the input modes
// (onnx_export_internal.h).
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "fit/calibration.h"
#include "image/preprocess.h"
#include "onnx/onnx_export_internal.h"

namespace flawlens::onnx_export {
namespace internal {

// The shortest decimal that reads back as the same float.
std::string ShortFloat(float v) {
  char buf[40];
  for (int digits = 6; digits <= 9; ++digits) {
    std::snprintf(buf, sizeof buf, "%.*g", digits, double(v));
    if (std::strtof(buf, nullptr) == v) break;
  }
  return buf;
}

Json FloatJson(float v) { return Json(std::strtod(ShortFloat(v).c_str(), nullptr)); }

namespace {

Json ChannelList(const float* v, int c) {
  Json a = Json::array();
  for (int i = 0; i < c; ++i) a.push_back(FloatJson(v[i]));
  return a;
}

}  // namespace

// anomalib's metadata (metadata.json / the OpenVINO model's rt_info): task,
// thresholds, input size, the transform the caller applies (albumentations'
// serialisation, as anomalib 0.x writes it), plus what flawlens adds.
Json BuildMetadata(const Model& m, InputMode mode, const Shape& in, const Shape& map) {
  const PreprocessConfig& pre = m.preprocess;
  const Calibration& cal = m.calibration;
  const bool lcn = pre.norm == NormMode::kLocalContrast;
  Json transforms = Json::array();
  // OpenCV's INTER_AREA: area averaging when shrinking, bilinear when
  // enlarging, as the engine resizes.
  transforms.push_back({{"__class_fullname__", "Resize"}, {"always_apply", true}, {"p", 1.0},
                        {"height", pre.resize_h}, {"width", pre.resize_w}, {"interpolation", 3}});
  if (pre.crop.w > 0) {
    transforms.push_back({{"__class_fullname__", "Crop"}, {"always_apply", true}, {"p", 1.0},
                          {"x_min", pre.crop.x}, {"y_min", pre.crop.y},
                          {"x_max", pre.crop.x + pre.crop.w}, {"y_max", pre.crop.y + pre.crop.h}});
  }
  if (mode == InputMode::kUnit) {
    transforms.push_back({{"__class_fullname__", "ToFloat"}, {"always_apply", true}, {"p", 1.0},
                          {"max_value", 255}});
  } else if (mode == InputMode::kNormalized) {
    if (lcn) {
      transforms.push_back({{"__class_fullname__", "flawlens.LocalContrastNormalize"},
                            {"always_apply", true}, {"p", 1.0}, {"scale", FloatJson(pre.scale)},
                            {"sigma", FloatJson(pre.lcn_sigma)}, {"eps", FloatJson(pre.lcn_eps)},
                            {"mean", ChannelList(pre.mean, in.c)},
                            {"std", ChannelList(pre.std, in.c)}});
    } else {
      transforms.push_back({{"__class_fullname__", "Normalize"}, {"always_apply", true},
                            {"p", 1.0}, {"mean", ChannelList(pre.mean, in.c)},
                            {"std", ChannelList(pre.std, in.c)},
                            {"max_pixel_value", FloatJson(1.0f / pre.scale)}});
    }
  }
  transforms.push_back({{"__class_fullname__", "ToTensorV2"}, {"always_apply", true}, {"p", 1.0},
                        {"transpose_mask", false}});
  Json transform = {{"__version__", "1.3.1"},
                    {"transform",
                     {{"__class_fullname__", "Compose"}, {"p", 1.0}, {"transforms", transforms},
                      {"bbox_params", nullptr}, {"keypoint_params", nullptr},
                      {"additional_targets", Json::object()}}}};

  const char* range = mode == InputMode::kPixels ? "0..255"
                      : mode == InputMode::kUnit ? "0..1"
                                                 : "normalized";
  Json normalization = {{"norm", lcn ? "local_contrast" : "mean_std"},
                        {"scale", FloatJson(pre.scale)},
                        {"mean", ChannelList(pre.mean, in.c)},
                        {"std", ChannelList(pre.std, in.c)},
                        {"in_graph", mode != InputMode::kNormalized}};
  if (lcn) {
    normalization["lcn_sigma"] = FloatJson(pre.lcn_sigma);
    normalization["lcn_eps"] = FloatJson(pre.lcn_eps);
  }
  Json roi = nullptr;
  Json card = Json::parse(m.card_json, nullptr, false);
  if (card.is_object() && card.contains("roi")) roi = card["roi"];

  std::string steps = "crop the region of interest (metadata 'roi', fractions of the image) if "
                      "there is one; ";
  steps += "resize to " + std::to_string(pre.resize_w) + "x" + std::to_string(pre.resize_h) +
           " (area averaging when shrinking, bilinear when enlarging: cv2.INTER_AREA)";
  if (pre.crop.w > 0) {
    steps += ", crop x " + std::to_string(pre.crop.x) + ", y " + std::to_string(pre.crop.y) +
             ", " + std::to_string(pre.crop.w) + "x" + std::to_string(pre.crop.h);
  }
  steps += in.c == 3 ? ", RGB channel order" : ", one gray channel (0.299 R + 0.587 G + 0.114 B)";
  steps += mode == InputMode::kPixels ? ", float values 0..255"
           : mode == InputMode::kUnit ? ", float values 0..1 (pixel / 255)"
                                      : ", then the model's normalisation (see 'normalization')";
  steps += ", NCHW [batch, " + std::to_string(in.c) + ", " + std::to_string(in.h) + ", " +
           std::to_string(in.w) + "]";

  Json meta = {
      {"task", "segmentation"},
      {"image_threshold", FloatJson(cal.threshold)},
      {"pixel_threshold", FloatJson(cal.threshold)},
      {"threshold", FloatJson(cal.threshold)},
      {"input_size", {in.h, in.w}},
      {"input_name", kInputName},
      {"input_shape", {kBatchDim, in.c, in.h, in.w}},
      {"input_layout", "NCHW"},
      {"input_channels", in.c == 3 ? "RGB" : "gray"},
      {"input_range", range},
      {"preprocessing", steps},
      {"normalization", normalization},
      {"mean", ChannelList(pre.mean, in.c)},
      {"std", ChannelList(pre.std, in.c)},
      {"transform", transform},
      {"roi", roi},
      {"outputs",
       {{kScoreName, "[batch] anomaly score in calibrated units ((raw - offset) / scale); >= "
                     "image_threshold: anomalous"},
        {kMapName, "[batch, 1, " + std::to_string(map.h) + ", " + std::to_string(map.w) +
                       "] anomaly map over the network input, same units"},
        {kLabelName, "[batch] bool, pred_score >= threshold"}}},
      {"map_size", {map.h, map.w}},
      {"map_display_range", {FloatJson(cal.map_low), FloatJson(cal.map_high)}},
      {"score_calibration",
       {{"offset", FloatJson(cal.offset)}, {"scale", FloatJson(cal.scale)}, {"applied", true}}},
      {"model_name", m.name},
      {"producer", "flawlens export-onnx"},
  };
  if (std::isfinite(cal.f1_threshold)) meta["f1_threshold"] = FloatJson(cal.f1_threshold);
  // What the threshold promises: about this fraction of new good parts flagged.
  if (std::isfinite(cal.false_alarm_rate)) {
    meta["false_alarm_rate"] = FloatJson(cal.false_alarm_rate);
  }
  return meta;
}

}  // namespace internal

const char* InputModeName(InputMode mode) {
  switch (mode) {
    case InputMode::kPixels: return "pixels";
    case InputMode::kUnit: return "unit";
    case InputMode::kNormalized: return "normalized";
  }
  return "pixels";
}

Result<InputMode> ParseInputMode(const std::string& name) {
  if (name == "pixels" || name.empty()) return InputMode::kPixels;
  if (name == "unit") return InputMode::kUnit;
  if (name == "normalized" || name == "normalised") return InputMode::kNormalized;
  return MakeError(ErrorCode::kInvalidArgument,
                   "unknown input mode '%s' (expected pixels, unit or normalized)", name.c_str());
}

}  // namespace flawlens::onnx_export
