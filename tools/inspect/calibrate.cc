// flawlens calibrate MODEL GOOD... --out NEW [--false-alarms R | --sensitivity S] [--threads N]
//
// Re-fits a model's score calibration on good images from where it is used
// (another camera, light or line), without retraining: every image is scored
// by the inference core (the same Detector as `score` and the page). Those
// parts were never fitted, so their scores are what new good parts score:
// fit::CalibrateScores (the rule of `flawlens train`, the page's Teach and
// "Calibrate here") sets offset, scale and the threshold at which about the
// target share of good parts is flagged — the model's own target unless
// --false-alarms or --sensitivity gives another. An F1-optimal threshold from
// training is carried over to the new units (same raw score). The network,
// the preprocessing and the per-cell map calibration are copied unchanged,
// byte for byte; the model card records the recalibration.
//
// Unreadable images are listed and skipped. Exit codes: 0 written; 1 bad
// arguments, model or too few readable images (nothing written); 3 written,
// but some files could not be read.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>

#include "cli/cli_util.h"
#include "cli/dataset.h"
#include "cli/metrics.h"
#include "commands.h"
#include "fit/threshold.h"

namespace flawlens::cli {
namespace {

// Below this many good images the standard deviation (the score's unit) is
// too rough to be worth writing into a model.
constexpr int kMinImages = 5;
// Below this many, say that the threshold rests on few images.
constexpr int kFewImages = 20;

struct CalibrateOptions {
  std::string model, out;
  std::vector<std::string> inputs;
  float sensitivity = std::nanf("");
  double false_alarms = 0;  // > 0: the target rate
  int threads = 0;
};

int RunCalibrate(const CalibrateOptions& opt) {
  auto model = LoadModelFile(opt.model);
  if (!model.ok()) {
    std::fprintf(stderr, "flawlens calibrate: %s\n", model.status().ToString().c_str());
    return 1;
  }
  if (opt.false_alarms != 0 && !(opt.false_alarms >= fit::kMinFalseAlarmRate &&
                                 opt.false_alarms <= fit::kMaxFalseAlarmRate)) {
    std::fprintf(stderr, "flawlens calibrate: --false-alarms must be in [0.0001, 0.5] (got %g)\n",
                 opt.false_alarms);
    return 1;
  }
  if (std::isfinite(opt.sensitivity) && !(opt.sensitivity >= 0 && opt.sensitivity <= 1)) {
    std::fprintf(stderr, "flawlens calibrate: --sensitivity must be in [0, 1] (got %g)\n",
                 opt.sensitivity);
    return 1;
  }
  std::vector<std::string> files, rel;
  if (Status st = CollectImageInputs(opt.inputs, &files, &rel); !st.ok()) {
    std::fprintf(stderr, "flawlens calibrate: %s\n", st.ToString().c_str());
    return 1;
  }
  const int n = static_cast<int>(files.size());
  const int workers = std::min(ResolveThreads(opt.threads), n);
  auto detectors = MakeDetectors(*model, workers);
  if (!detectors.ok()) {
    std::fprintf(stderr, "flawlens calibrate: %s\n", detectors.status().ToString().c_str());
    return 1;
  }
  std::vector<float> raw(size_t(n), std::nanf(""));
  std::vector<std::string> errors(static_cast<size_t>(n));
  ParallelFor(n, workers, [&](int w, int i) {
    auto bytes = ReadFileBytes(files[size_t(i)]);
    if (!bytes.ok()) {
      errors[size_t(i)] = bytes.status().ToString();
      return;
    }
    auto det = (*detectors)[size_t(w)]->DetectEncoded(bytes->data(), bytes->size());
    if (!det.ok()) {
      errors[size_t(i)] = det.status().ToString();
      return;
    }
    if (!std::isfinite((*det)->raw_score)) {
      errors[size_t(i)] = "the network gave a non-finite score";
      return;
    }
    raw[size_t(i)] = (*det)->raw_score;
  });
  std::vector<float> good;
  int failed = 0;
  for (int i = 0; i < n; ++i) {
    if (errors[size_t(i)].empty()) {
      good.push_back(raw[size_t(i)]);
    } else {
      ++failed;
      std::fprintf(stderr, "skipped %s: %s\n", files[size_t(i)].c_str(), errors[size_t(i)].c_str());
    }
  }
  if (int(good.size()) < kMinImages) {
    std::fprintf(stderr,
                 "flawlens calibrate: %zu readable image%s; at least %d good images are needed to "
                 "calibrate (nothing written)\n",
                 good.size(), good.size() == 1 ? "" : "s", kMinImages);
    return 1;
  }

  const Calibration& before = model->model->calibration;
  double rate = fit::kDefaultFalseAlarmRate;
  if (opt.false_alarms > 0) {
    rate = opt.false_alarms;
  } else if (std::isfinite(opt.sensitivity)) {
    rate = fit::SensitivityToRate(opt.sensitivity);
  } else if (before.false_alarm_rate > 0) {
    rate = before.false_alarm_rate;
  }
  std::vector<std::string> groups;
  for (int i = 0; i < n; ++i) {
    if (errors[size_t(i)].empty()) groups.push_back(GroupKey(files[size_t(i)]));
  }
  std::sort(groups.begin(), groups.end());
  const int distinct = int(std::unique(groups.begin(), groups.end()) - groups.begin());
  auto fitted = fit::CalibrateScores(good, rate, distinct);
  if (!fitted.ok()) {
    std::fprintf(stderr, "flawlens calibrate: %s\n", fitted.status().ToString().c_str());
    return 1;
  }
  Calibration after = fitted->calibration;
  if (std::isfinite(before.f1_threshold)) {  // the same raw score, in the new units
    after.f1_threshold = float((before.offset + double(before.scale) * before.f1_threshold -
                                after.offset) / after.scale);
  }
  auto flagged = [&](const Calibration& c, float* max_score) {
    int count = 0;
    *max_score = -INFINITY;
    for (float r : good) {
      const float s = (r - c.offset) / c.scale;
      count += s >= c.threshold;
      *max_score = std::max(*max_score, s);
    }
    return count;
  };
  float max_before = 0, max_after = 0;
  const int flagged_before = flagged(before, &max_before), flagged_after = flagged(after, &max_after);

  nlohmann::json card = nlohmann::json::parse(model->model->card_json, nullptr, false);
  if (!card.is_object()) card = nlohmann::json::object();
  char now[32];
  const std::time_t t = std::time(nullptr);
  std::strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  nlohmann::json entry = {
      {"at", now},
      {"images", good.size()},
      {"inputs", opt.inputs},
      {"previous", {{"offset", before.offset}, {"scale", before.scale}, {"threshold", before.threshold}}},
      {"flagged_before", flagged_before},
      {"note", "score offset / scale (and threshold) re-fitted on good images by flawlens calibrate; "
               "network, preprocessing and per-cell calibration unchanged"}};
  if (!card["recalibrations"].is_array()) card["recalibrations"] = nlohmann::json::array();
  card["recalibrations"].push_back(entry);
  auto bytes = ReplaceModelMetadata(model->bytes, {{"calibration", CalibrationToJson(after)},
                                                   {"card", card.dump()}});
  if (!bytes.ok()) {
    std::fprintf(stderr, "flawlens calibrate: %s\n", bytes.status().ToString().c_str());
    return 1;
  }
  // The written file must load and score like this one, in the new units.
  {
    auto check = LoadModel(bytes->data(), bytes->size());
    if (!check.ok()) {
      std::fprintf(stderr, "flawlens calibrate: internal error, the new model does not load: %s\n",
                   check.status().ToString().c_str());
      return 1;
    }
  }
  if (Status st = WriteFileBytes(opt.out, *bytes); !st.ok()) {
    std::fprintf(stderr, "flawlens calibrate: %s\n", st.ToString().c_str());
    return 1;
  }
  const std::string skipped = failed ? " (" + std::to_string(failed) + " unreadable, skipped)" : "";
  std::printf("scored %zu good image%s%s\n", good.size(), good.size() == 1 ? "" : "s",
              skipped.c_str());
  std::printf("%-8s %12s %12s %10s %26s\n", "", "offset", "scale", "threshold",
              "these images flagged / max");
  std::printf("%-8s %12.6g %12.6g %10.3f %16d (%4.1f %%) %6.2f\n", "before", before.offset,
              before.scale, before.threshold, flagged_before, 100.0 * flagged_before / good.size(),
              max_before);
  std::printf("%-8s %12.6g %12.6g %10.3f %16d (%4.1f %%) %6.2f\n", "after", after.offset,
              after.scale, after.threshold, flagged_after, 100.0 * flagged_after / good.size(),
              max_after);
  std::printf("threshold %.3f: %s flagged (target %.3g), estimated from %zu good images of %d "
              "parts\n",
              double(after.threshold), fit::DescribeRate(rate).c_str(), rate, good.size(), distinct);
  for (const std::string& w : fitted->estimate.warnings) std::printf("warning: %s\n", w.c_str());
  if (int(good.size()) < kFewImages) {
    std::printf("note: only %zu images; the score's unit (their standard deviation) is rough, "
                "%d or more are better\n",
                good.size(), kFewImages);
  }
  std::printf("wrote %s\n", opt.out.c_str());
  return failed ? 3 : 0;
}

}  // namespace

void AddCalibrateCommand(CLI::App& app) {
  auto opt = std::make_shared<CalibrateOptions>();
  CLI::App* cmd = app.add_subcommand(
      "calibrate", "Re-fit a model's score calibration on good images from a new site (no retraining)");
  cmd->add_option("model", opt->model, "model file")->required();
  cmd->add_option("inputs", opt->inputs, "good image files and/or folders (recursive)")->required();
  cmd->add_option("--out", opt->out, "the recalibrated model file (may be MODEL itself)")->required();
  cmd->add_option("--false-alarms", opt->false_alarms,
                  "target share of good parts flagged, in [0.0001, 0.5] (default: the model's)");
  cmd->add_option("--sensitivity", opt->sensitivity,
                  "the target as a slider in [0, 1]: 0.5 = 1 in 20 good parts flagged, each +0.25 "
                  "ten times more");
  cmd->add_option("--threads", opt->threads, "worker threads, one Detector each (default: cores)");
  cmd->callback([opt] { ExitCode() = RunCalibrate(*opt); });
}

}  // namespace flawlens::cli
