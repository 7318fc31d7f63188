// flawlens info MODEL [--json]: the model card and what the file implies
// (input size, preprocessing, post-processing, calibration, parameters,
// GFLOPs per frame = 2 * multiply-accumulates / 1e9).
#include <CLI/CLI.hpp>

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/cli_util.h"
#include "commands.h"
#include "fit/threshold.h"
#include "model/json_util.h"

namespace flawlens::cli {
namespace {

using Json = nlohmann::json;

struct InfoOptions {
  std::string model;
  bool json = false;
};

Json ParseOrString(const std::string& text) {
  Json j = Json::parse(text, nullptr, false);
  if (j.is_discarded()) return Json(text);
  return j;
}

std::string Scalar(const Json& v) {
  if (v.is_string()) return v.get<std::string>();
  return v.dump(-1, ' ', false, Json::error_handler_t::replace);
}

// Nested objects as "a.b: value" lines; short arrays of scalars inline.
void PrintTree(const Json& j, const std::string& prefix, int indent) {
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string key = prefix.empty() ? it.key() : prefix + "." + it.key();
    const Json& v = it.value();
    if (v.is_object() && !v.empty()) {
      PrintTree(v, key, indent);
    } else {
      std::string text = Scalar(v);
      if (text.size() > 200) text = text.substr(0, 197) + "...";
      std::printf("%*s%-28s %s\n", indent, "", (key + ":").c_str(), text.c_str());
    }
  }
}

// "2026-12-02T16:40:00Z" -> "2026-12-02 16:40 UTC"; anything else as it is.
std::string ReadableTime(const std::string& iso) {
  if (iso.size() >= 16 && iso[4] == '-' && iso[7] == '-' && iso[10] == 'T' && iso[13] == ':' &&
      (iso.back() == 'Z' || iso.size() == 16)) {
    return iso.substr(0, 10) + " " + iso.substr(11, 5) + (iso.back() == 'Z' ? " UTC" : "");
  }
  return iso;
}

// The card's "taught" record (a model taught in the page) in one line:
// "taught in the browser from 100 camera frames on 2026-12-02 16:40 UTC".
// "" when the card has none.
std::string TaughtLine(const Json& card) {
  if (!card.is_object() || !card.contains("taught") || !card["taught"].is_object()) return "";
  const Json& t = card["taught"];
  auto str = [&](const char* key) {
    return t.contains(key) && t[key].is_string() ? t[key].get<std::string>() : std::string();
  };
  const std::string where = str("where"), source = str("source");
  std::string line = "taught " + (where == "browser" ? std::string("in the browser")
                                  : where.empty()    ? std::string("in the page")
                                                     : "in " + where);
  std::string what = source == "camera"   ? "camera frames"
                     : source == "photos" ? "photos"
                     : source == "both"   ? "camera frames and photos"
                                          : "images";
  if (t.contains("frames") && t["frames"].is_number_integer()) {
    const long long n = t["frames"].get<long long>();
    if (n == 1) what = source == "photos" ? "photo" : source == "camera" ? "camera frame" : "image";
    line += " from " + std::to_string(n) + " " + what;
  } else {
    line += " from " + what;
  }
  const std::string created = !str("created").empty() ? str("created")
                              : card.contains("created") && card["created"].is_string()
                                  ? card["created"].get<std::string>()
                                  : std::string();
  if (!created.empty()) line += " on " + ReadableTime(created);
  return line;
}

// The pretrained backbone a model stands on: a backbone file names itself, a
// taught model names its backbone. "" when there is none.
std::string BackboneLine(const Json& card) {
  if (!card.is_object()) return "";
  const bool self = card.contains("kind") && card["kind"] == "backbone";
  if (!self && !(card.contains("backbone") && card["backbone"].is_object())) return "";
  const Json& b = self ? card : card["backbone"];
  auto str = [&](const char* key) {
    return b.contains(key) && b[key].is_string() ? b[key].get<std::string>() : std::string();
  };
  const std::string name = str("name").empty() ? "unnamed" : str("name");
  const std::string licence = !str("licence").empty() ? str("licence") : str("license");
  return name + " (licence: " + (licence.empty() ? "not stated" : licence) + ")";
}

// A backbone file (`flawlens import-tfjs`) is a feature extractor, not a
// detector: its card, size and licence, without a detector's fields.
int PrintBackbone(const InfoOptions& opt, const LoadedModel& lm, const Json& card) {
  const Model& m = *lm.model;
  const Shape& out = m.graph.output_shape();
  int64_t parameters = 0;
  for (const Node& n : m.graph.nodes) {
    if (n.weight.data) parameters += n.weight.elements();
    if (n.bias.data) parameters += n.bias.elements();
  }
  if (opt.json) {
    Json j = {{"file", opt.model}, {"bytes", lm.bytes.size()}, {"kind", "backbone"},
              {"name", m.name}, {"backbone", BackboneLine(card)},
              {"input", {{"width", m.graph.input.w}, {"height", m.graph.input.h},
                         {"channels", m.graph.input.c}}},
              {"features", {{"width", out.w}, {"height", out.h}, {"channels", out.c}}},
              {"parameters", parameters}, {"macs", m.graph.Macs()},
              {"layers", m.graph.nodes.size()}, {"card", card}};
    std::printf("%s\n", j.dump(2, ' ', false, Json::error_handler_t::replace).c_str());
    return 0;
  }
  std::printf("%s (a backbone: train a detector on it with flawlens train --backbone)\n",
              m.name.c_str());
  std::printf("  file                         %s (%zu bytes)\n", opt.model.c_str(), lm.bytes.size());
  std::printf("  backbone                     %s\n", BackboneLine(card).c_str());
  std::printf("  input                        %d x %d x %d (w x h x c)\n", m.graph.input.w,
              m.graph.input.h, m.graph.input.c);
  std::printf("  features                     %d x %d x %d\n", out.w, out.h, out.c);
  std::printf("  parameters                   %lld\n", static_cast<long long>(parameters));
  std::printf("  compute                      %.4f GFLOPs per frame, %zu layers\n",
              2.0 * static_cast<double>(m.graph.Macs()) / 1e9, m.graph.nodes.size());
  std::printf("model card\n");
  PrintTree(card, "", 2);
  return 0;
}

int RunInfo(const InfoOptions& opt) {
  auto model = LoadModelFile(opt.model);
  if (!model.ok()) {
    std::fprintf(stderr, "flawlens info: %s\n", model.status().ToString().c_str());
    return 1;
  }
  if (const Json c = ParseOrString(model->model->card_json);
      c.is_object() && c.contains("kind") && c["kind"] == "backbone") {
    return PrintBackbone(opt, *model, c);
  }
  auto dets = MakeDetectors(*model, 1);
  if (!dets.ok()) {
    std::fprintf(stderr, "flawlens info: %s\n", dets.status().ToString().c_str());
    return 1;
  }
  const ModelInfo& info = (*dets)[0]->info();
  const Model& m = *model->model;
  const Json card = ParseOrString(m.card_json);
  const Json pre = ParseOrString(PreprocessToJson(m.preprocess));
  const Json cal = ParseOrString(CalibrationToJson(m.calibration));
  const double gflops = 2.0 * static_cast<double>(info.macs) / 1e9;
  Json post = {{"sigmoid", m.postprocess.sigmoid},
               {"blur_sigma", m.postprocess.blur_sigma},
               {"reduce", ScoreReduceName(m.postprocess.reduce)},
               {"topk_fraction", m.postprocess.topk_fraction},
               {"cell_calibration", m.postprocess.cell_mean.data != nullptr},
               {"edge_calibration", m.postprocess.edge_mean.data != nullptr}};

  if (opt.json) {
    Json j = {{"file", opt.model},
              {"bytes", model->bytes.size()},
              {"name", info.name},
              {"input", {{"width", info.input_width}, {"height", info.input_height},
                         {"channels", info.input_channels}}},
              {"map", {{"width", info.map_width}, {"height", info.map_height}}},
              {"threshold", info.threshold},
              {"parameters", info.parameters},
              {"macs", info.macs},
              {"gflops", gflops},
              {"layers", m.graph.nodes.size()},
              {"backend", info.backend},
              {"preprocess", pre},
              {"postprocess", post},
              {"calibration", cal},
              {"card", card}};
    if (const std::string t = TaughtLine(card); !t.empty()) j["origin"] = t;
    if (const std::string b = BackboneLine(card); !b.empty()) j["backbone"] = b;
    std::printf("%s\n", j.dump(2, ' ', false, Json::error_handler_t::replace).c_str());
    return 0;
  }
  std::printf("%s\n", info.name.c_str());
  std::printf("  file                         %s (%zu bytes)\n", opt.model.c_str(),
              model->bytes.size());
  if (card.is_object() && card.contains("created")) {
    std::printf("  created                      %s\n", Scalar(card["created"]).c_str());
  }
  if (const std::string t = TaughtLine(card); !t.empty()) {
    std::printf("  origin                       %s\n", t.c_str());
  }
  if (const std::string b = BackboneLine(card); !b.empty()) {
    std::printf("  backbone                     %s\n", b.c_str());
  }
  RectF roi;
  auto has_roi = CardRoi(m, &roi);
  if (!has_roi.ok()) {
    std::printf("  region of interest           invalid: %s\n", has_roi.status().message().c_str());
  } else if (*has_roi) {
    std::printf(
        "  region of interest           x %.4g, y %.4g, w %.4g, h %.4g of the image "
        "(score / eval apply it; --no-roi)\n",
        double(roi.x), double(roi.y), double(roi.w), double(roi.h));
  }
  std::printf("  input                        %d x %d x %d (w x h x c)\n", info.input_width,
              info.input_height, info.input_channels);
  std::printf("  anomaly map                  %d x %d\n", info.map_width, info.map_height);
  if (m.preprocess.pixel_scale > 0) {
    std::printf("  fit                          fixed pixel scale %.4g: images keep their aspect "
                "ratio;\n                               the map covers the image, up to %d x %d\n",
                m.preprocess.pixel_scale, info.map_width, info.map_height);
  }
  std::printf("  parameters                   %lld\n", static_cast<long long>(info.parameters));
  std::printf("  compute                      %.4f GFLOPs per frame (%lld MACs), %zu layers\n",
              gflops, static_cast<long long>(info.macs), m.graph.nodes.size());
  std::printf("  threshold                    %.4f (score >= threshold = anomaly)\n",
              info.threshold);
  if (m.calibration.false_alarm_rate > 0) {
    const double now = fit::EstimatedFalseAlarmRate(m.calibration, m.calibration.threshold);
    std::printf("                               %s flagged (target %.3g), estimated from %d good "
                "images of %d parts or sessions that the scoring model had not seen",
                fit::DescribeRate(double(m.calibration.false_alarm_rate)).c_str(),
                double(m.calibration.false_alarm_rate), m.calibration.good_images,
                m.calibration.good_groups);
    if (std::isfinite(now)) std::printf("; their estimate at this threshold: %.3g", now);
    std::printf("\n");
  }
  // `flawlens calibrate` appends to the card's "recalibrations": the latest.
  if (card.is_object() && card.contains("recalibrations") && card["recalibrations"].is_array() &&
      !card["recalibrations"].empty() && card["recalibrations"].back().is_object()) {
    const Json& r = card["recalibrations"];
    const Json& last = r.back();
    const std::string at = last.contains("at") ? Scalar(last["at"]) : "?",
                      images = last.contains("images") ? Scalar(last["images"]) : "?",
                      times = r.size() > 1 ? " (" + std::to_string(r.size()) + " times)" : "";
    std::printf("  recalibrated                 %s on %s good images%s\n", at.c_str(), images.c_str(),
                times.c_str());
  }
  std::printf("  backend (auto)               %s\n", info.backend.c_str());
  std::printf("preprocessing\n");
  if (pre.is_object()) PrintTree(pre, "", 2);
  std::printf("postprocessing\n");
  PrintTree(post, "", 2);
  std::printf("calibration\n");
  if (cal.is_object()) {
    Json shown = cal;
    if (shown.contains("good_scores") && shown["good_scores"].is_array()) {
      shown["good_scores"] = std::to_string(shown["good_scores"].size()) + " sorted scores";
    }
    PrintTree(shown, "", 2);
  }
  std::printf("model card\n");
  if (card.is_object()) {
    PrintTree(card, "", 2);
  } else {
    std::printf("  %s\n", Scalar(card).c_str());
  }
  return 0;
}

}  // namespace

void AddInfoCommand(CLI::App& app) {
  auto opt = std::make_shared<InfoOptions>();
  CLI::App* cmd = app.add_subcommand("info", "Show a model's card, size and calibration");
  cmd->add_option("model", opt->model, "model file")->required();
  cmd->add_flag("--json", opt->json, "print JSON instead of text");
  cmd->callback([opt] { ExitCode() = RunInfo(*opt); });
}

}  // namespace flawlens::cli
