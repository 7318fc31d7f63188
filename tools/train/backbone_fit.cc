// flawlens train --backbone: read the good training images, teach src/fit's
// Teacher on the backbone's features, fit, write, check the file against the
// fit, and report the validation AUROC when the dataset has defects.
#include "train/backbone_fit.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <map>

#include "cli/cli_util.h"
#include "cli/dataset.h"
#include "cli/metrics.h"
#include "fit/threshold.h"
#include "flawlens/detector.h"

namespace flawlens::train {

// The CLI's shared code: datasets, file reading, metrics.
using namespace cli;  // NOLINT(google-build-using-namespace)

namespace {

namespace fs = std::filesystem;

double Seconds() {
  using Clock = std::chrono::steady_clock;
  return std::chrono::duration<double>(Clock::now().time_since_epoch()).count();
}

// Images decoded per batch (in parallel) before they go through the Teacher.
constexpr int kDecodeBatch = 16;

std::string UtcNow() {
  char now[32];
  const std::time_t t = std::time(nullptr);
  std::strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return now;
}

// The split for the closing metrics: --val-split, else val, else test; "" if none.
std::string MetricsSplit(const BackboneTrainOptions& o) {
  if (!o.val_split.empty()) return o.val_split;
  const std::vector<std::string> splits = ListSplits(o.data);
  for (const char* s : {"val", "test"}) {
    if (std::find(splits.begin(), splits.end(), s) != splits.end()) return s;
  }
  return "";
}

// Image AUROC of the written model on the metrics split, overall and per
// defect type (each type against all good images); nothing when the split
// has no defects.
void ReportValidation(const BackboneTrainOptions& o, const std::string& model_path) {
  const std::string split = MetricsSplit(o);
  if (split.empty()) return;
  auto ds = LoadDataset(o.data, split);
  if (!ds.ok() || ds->num_good() == 0 || ds->num_defective() == 0) return;
  auto model = LoadModelFile(model_path);
  if (!model.ok()) return;
  const int n = static_cast<int>(ds->samples.size());
  const int workers = std::max(1, std::min(ResolveThreads(o.threads), n));
  auto detectors = MakeDetectors(*model, workers);
  if (!detectors.ok()) return;
  std::vector<float> scores(size_t(n), std::nanf(""));
  ParallelFor(n, workers, [&](int w, int i) {
    auto bytes = ReadFileBytes(ds->samples[size_t(i)].path);
    if (!bytes.ok()) return;
    auto det = (*detectors)[size_t(w)]->DetectEncoded(bytes->data(), bytes->size());
    if (det.ok()) scores[size_t(i)] = (*det)->score;
  });
  std::vector<float> s;
  std::vector<bool> l;
  std::map<std::string, std::pair<std::vector<float>, std::vector<bool>>> per_type;
  std::vector<float> good;
  int flagged_good = 0, flagged_bad = 0, bad = 0;
  const float thr = model->model->calibration.threshold;
  for (int i = 0; i < n; ++i) {
    const Sample& smp = ds->samples[size_t(i)];
    if (!std::isfinite(scores[size_t(i)])) continue;
    s.push_back(scores[size_t(i)]);
    l.push_back(smp.defective);
    if (!smp.defective) {
      good.push_back(scores[size_t(i)]);
      flagged_good += scores[size_t(i)] >= thr;
    } else {
      ++bad;
      flagged_bad += scores[size_t(i)] >= thr;
    }
  }
  std::printf("validation (%s split, %d good, %d defective): image AUROC %s; defects caught at "
              "1 %% / 5 %% false alarms: %s / %s\n",
              split.c_str(), int(good.size()), bad, FormatMetric(Auroc(s, l), 3).c_str(),
              FormatMetric(RecallAtFalseAlarms(s, l, 0.01), 3).c_str(),
              FormatMetric(RecallAtFalseAlarms(s, l, 0.05), 3).c_str());
  for (const std::string& type : ds->defect_types) {
    std::vector<float> ts = good;
    std::vector<bool> tl(good.size(), false);
    for (int i = 0; i < n; ++i) {
      const Sample& smp = ds->samples[size_t(i)];
      if (smp.defect_type != type || !std::isfinite(scores[size_t(i)])) continue;
      ts.push_back(scores[size_t(i)]);
      tl.push_back(true);
    }
    std::printf("  %-20s %s\n", type.c_str(), FormatMetric(Auroc(ts, tl), 3).c_str());
  }
  std::printf("at the threshold %.2f (promised: %s flagged): %d of %d good (%.1f %%) and %d of "
              "%d defective images (%.1f %%) flagged\n",
              double(thr), fit::DescribeRate(double(model->model->calibration.false_alarm_rate)).c_str(),
              flagged_good, int(good.size()), 100.0 * flagged_good / std::max<size_t>(1, good.size()),
              flagged_bad, bad, 100.0 * flagged_bad / std::max(1, bad));
}

}  // namespace

std::vector<std::string> BackboneSearchDirs() {
  std::vector<std::string> dirs;
  if (const char* env = std::getenv("FLAWLENS_BACKBONES"); env && *env) dirs.push_back(env);
  char exe[4096];
  const ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (len > 0) {
    exe[len] = 0;
    dirs.push_back((fs::path(exe).parent_path() / "backbones").string());
  }
  dirs.push_back("build/backbones");
  return dirs;
}

Result<std::string> ResolveBackbone(const std::string& name_or_file) {
  if (name_or_file.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "--backbone: empty name");
  }
  std::error_code ec;
  const bool is_path = name_or_file.find('/') != std::string::npos ||
                       (name_or_file.size() > 12 &&
                        name_or_file.compare(name_or_file.size() - 12, 12, ".safetensors") == 0);
  if (fs::is_regular_file(name_or_file, ec) || is_path) {
    if (!fs::is_regular_file(name_or_file, ec)) {
      return MakeError(ErrorCode::kInvalidArgument, "--backbone: no such file: %s",
                       name_or_file.c_str());
    }
    return name_or_file;
  }
  std::string looked;
  for (const std::string& dir : BackboneSearchDirs()) {
    const fs::path p = fs::path(dir) / (name_or_file + ".safetensors");
    if (fs::is_regular_file(p, ec)) return p.string();
    looked += "\n  " + p.string();
  }
  return MakeError(ErrorCode::kInvalidArgument,
                   "backbone '%s': no converted backbone found; looked in:%s\n"
                   "convert it, from the repository root, with model/build_default.sh "
                   "build/model/default.safetensors (which also builds the page's default "
                   "model) or tools/backbones/convert.sh build/backbones; or set "
                   "FLAWLENS_BACKBONES to the folder that holds %s.safetensors",
                   name_or_file.c_str(), looked.c_str(), name_or_file.c_str());
}

Result<std::pair<int, int>> ChooseInput(const std::string& input, int bw, int bh,
                                        double median_aspect) {
  if (input.empty()) return std::pair<int, int>{0, 0};
  if (input == "auto") {
    if (!(median_aspect > 0) || (median_aspect >= 0.8 && median_aspect <= 1.25)) {
      return std::pair<int, int>{0, 0};
    }
    // The backbone's short side; the long side at the photos' aspect, in
    // multiples of 32, at most 4 times the short side.
    const int s = std::max(32, std::min(bw, bh) / 32 * 32);
    const double a = std::clamp(median_aspect, 0.25, 4.0);
    const int l = std::max(s, int(std::lround(s * std::max(a, 1.0 / a) / 32.0)) * 32);
    return a > 1 ? std::pair<int, int>{l, s} : std::pair<int, int>{s, l};
  }
  int w = 0, h = 0;
  char tail = 0;
  if (std::sscanf(input.c_str(), "%dx%d%c", &w, &h, &tail) != 2 || w < 32 || h < 32 ||
      w > 2048 || h > 2048 || w % 32 != 0 || h % 32 != 0) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "--input '%s': expected auto or WxH with both sides multiples of 32 in "
                     "[32, 2048] (e.g. 256x640)",
                     input.c_str());
  }
  return std::pair<int, int>{w, h};
}

PhotoShapes MeasureShapes(const std::vector<std::pair<int, int>>& sizes) {
  PhotoShapes s;
  std::vector<double> aspects, sides;
  for (const auto& wh : sizes) {
    if (wh.first < 1 || wh.second < 1) continue;
    aspects.push_back(double(wh.first) / double(wh.second));
    sides.push_back(std::max(wh.first, wh.second));
  }
  s.count = int(aspects.size());
  if (aspects.empty()) return s;
  std::sort(aspects.begin(), aspects.end());
  std::sort(sides.begin(), sides.end());
  const size_t n = aspects.size();
  const size_t lo = n / 10, hi = std::min(n - 1, n - 1 - n / 10);
  s.median_aspect = aspects[n / 2];
  s.aspect_spread = aspects[hi] / aspects[lo];
  s.long_side_p90 = sides[hi];
  return s;
}

Result<InputGeometry> ChooseGeometry(const std::string& geometry, const std::string& input,
                                const PhotoShapes& shapes, int iw, int ih) {
  InputGeometry g;
  g.name = geometry;
  if (geometry == "auto") {
    g.name = input == "auto" && shapes.count > 0 && shapes.aspect_spread >= kMixedShapesSpread
                 ? "keep-aspect"
                 : "stretch";
  } else if (geometry != "stretch" && geometry != "keep-aspect" && geometry != "pixel-scale") {
    return MakeError(ErrorCode::kInvalidArgument,
                     "--geometry '%s': expected auto, stretch, keep-aspect or pixel-scale",
                     geometry.c_str());
  }
  g.keep_aspect = g.name == "keep-aspect";
  if (g.name == "pixel-scale") {
    if (!(shapes.long_side_p90 > 0)) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "--geometry pixel-scale: no readable photo to measure the scale on");
    }
    g.pixel_scale = float(std::min(iw, ih) / shapes.long_side_p90);
  }
  return g;
}

Result<fit::FitOptions> MakeFitOptions(const BackboneTrainOptions& o) {
  fit::FitOptions f;
  FLAWLENS_ASSIGN_OR_RETURN(f.density, fit::ParseDensityKind(o.density));
  f.shrinkage = o.shrinkage;
  f.eps = o.eps;
  f.blur_sigma = o.blur_sigma;
  f.cell_std_shrink = o.cell_std_shrink;
  f.region = o.region;
  f.folds = o.folds;
  f.link = o.link;
  f.false_alarm_rate =
      o.false_alarm_rate > 0 ? o.false_alarm_rate : fit::SensitivityToRate(o.sensitivity);
  f.name = o.name;
  if (f.name.empty()) {
    fs::path p = fs::path(o.data);
    if (p.filename().empty()) p = p.parent_path();
    f.name = p.filename().string();
    if (f.name.empty()) f.name = "taught model";
  }
  f.created = UtcNow();
  f.taught_by = o.taught_by;
  return f;
}

Result<TaughtDataset> TeachDataset(const BackboneTrainOptions& o) {
  const double t0 = Seconds();
  TaughtDataset out;
  FLAWLENS_ASSIGN_OR_RETURN(out.backbone_path, ResolveBackbone(o.backbone));
  FLAWLENS_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, ReadFileBytes(out.backbone_path, 1ull << 30));

  std::vector<std::string> paths;
  {
    const std::vector<std::string> splits = ListSplits(o.data);
    const bool has_train = std::find(splits.begin(), splits.end(), "train") != splits.end();
    FLAWLENS_ASSIGN_OR_RETURN(Dataset ds, LoadDataset(o.data, has_train ? "train" : ""));
    if (!has_train && ds.split != "flat" && !splits.empty()) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "%s: no train/ split and not a flat folder of images", o.data.c_str());
    }
    for (const auto& w : ds.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
    paths = ds.good_paths();
  }
  if (paths.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "%s: no good training images", o.data.c_str());
  }

  fit::TeacherOptions to;
  {
    // The photos' shapes: up to 64 of them, spread over the list.
    std::vector<std::pair<int, int>> sizes;
    const size_t step = std::max<size_t>(1, paths.size() / 64);
    for (size_t i = 0; i < paths.size(); i += step) {
      auto file = ReadFileBytes(paths[i]);
      auto image = file.ok() ? DecodeImage(file->data(), file->size()) : Result<Image>(file.status());
      if (image.ok()) sizes.push_back({image->width, image->height});
    }
    const PhotoShapes shapes = MeasureShapes(sizes);
    auto probe = fit::Teacher::Create(bytes.data(), bytes.size(), to);
    if (!probe.ok()) {
      return MakeError(probe.status().code(), "backbone %s: %s", out.backbone_path.c_str(),
                       probe.status().message().c_str());
    }
    const PreprocessConfig& pc = (*probe)->preprocess();
    FLAWLENS_ASSIGN_OR_RETURN(
        auto wh, ChooseInput(o.input, pc.resize_w, pc.resize_h, shapes.median_aspect));
    to.input_width = wh.first;
    to.input_height = wh.second;
    const int iw = wh.first > 0 ? wh.first : pc.out_w(), ih = wh.first > 0 ? wh.second : pc.out_h();
    FLAWLENS_ASSIGN_OR_RETURN(InputGeometry geo, ChooseGeometry(o.geometry, o.input, shapes, iw, ih));
    to.keep_aspect = geo.keep_aspect;
    to.pixel_scale = geo.pixel_scale;
    if (!o.quiet) {
      std::fprintf(stderr,
                   "input %dx%d, geometry %s%s (photos' median aspect ratio %.2f, spread %.2f)\n",
                   iw, ih, geo.name.c_str(),
                   geo.pixel_scale > 0 ? (" " + std::to_string(geo.pixel_scale)).c_str() : "",
                   shapes.median_aspect, shapes.aspect_spread);
    }
  }
  to.dims = o.dims;
  to.pool = o.pool;
  to.seed = static_cast<uint32_t>(o.seed);
  to.channel_begin = o.channel_begin;
  to.channel_end = o.channel_end;
  to.threads = ResolveThreads(o.threads);
  auto teacher = fit::Teacher::Create(bytes.data(), bytes.size(), to);
  if (!teacher.ok()) {
    return MakeError(teacher.status().code(), "backbone %s: %s", out.backbone_path.c_str(),
                     teacher.status().message().c_str());
  }
  out.teacher = std::move(teacher).value();
  bytes = {};
  if (!o.quiet) {
    std::fprintf(stderr,
                 "flawlens train --backbone: %s (feature node '%s', %dx%dx%d -> %d dims), %zu good "
                 "images\n",
                 out.backbone_path.c_str(), out.teacher->feature_node().c_str(),
                 out.teacher->map_height(), out.teacher->map_width(),
                 out.teacher->feature_channels(), out.teacher->dims(), paths.size());
  }

  const int n = static_cast<int>(paths.size());
  const int workers = ResolveThreads(o.threads);
  for (int begin = 0; begin < n; begin += kDecodeBatch) {
    const int count = std::min(kDecodeBatch, n - begin);
    std::vector<Result<Image>> images(size_t(count), Status(ErrorCode::kInternal, "not read"));
    ParallelFor(count, std::min(workers, count), [&](int, int i) {
      auto file = ReadFileBytes(paths[size_t(begin + i)]);
      images[size_t(i)] = file.ok() ? DecodeImage(file->data(), file->size())
                                    : Result<Image>(file.status());
    });
    for (int i = 0; i < count; ++i) {
      const std::string& path = paths[size_t(begin + i)];
      if (!images[size_t(i)].ok()) {
        std::fprintf(stderr, "skipped %s: %s\n", path.c_str(),
                     images[size_t(i)].status().ToString().c_str());
        ++out.skipped;
        continue;
      }
      auto added = out.teacher->AddImage(images[size_t(i)]->view(), {}, GroupKey(path));
      if (!added.ok()) {
        std::fprintf(stderr, "skipped %s: %s\n", path.c_str(), added.status().ToString().c_str());
        ++out.skipped;
        continue;
      }
      out.added.push_back(path);
    }
    if (!o.quiet) {
      std::fprintf(stderr, "\rfeatures: %d / %d images", begin + count, n);
      std::fflush(stderr);
    }
  }
  if (!o.quiet) std::fprintf(stderr, "\n");
  out.seconds = Seconds() - t0;
  return out;
}

Status RunBackboneTraining(const BackboneTrainOptions& o) {
  const double t0 = Seconds();
  if (o.out.empty()) return MakeError(ErrorCode::kInvalidArgument, "--out: no model file given");
  if (!(o.sensitivity >= 0 && o.sensitivity <= 1)) {
    return MakeError(ErrorCode::kInvalidArgument, "--sensitivity must be in [0, 1] (got %g)",
                     double(o.sensitivity));
  }
  if (o.holdout != BackboneTrainOptions{}.holdout) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "--holdout applies to --from-scratch only: training on a backbone scores "
                     "every good image with a model fitted without its group, and sets the "
                     "threshold from all of them");
  }
  FLAWLENS_ASSIGN_OR_RETURN(fit::FitOptions fo, MakeFitOptions(o));
  FLAWLENS_ASSIGN_OR_RETURN(TaughtDataset taught, TeachDataset(o));
  const fit::Teacher& t = *taught.teacher;
  const double t1 = Seconds();
  auto fitted = t.Fit(fo);
  if (!fitted.ok()) return fitted.status();
  const double fit_s = Seconds() - t1;
  FLAWLENS_RETURN_IF_ERROR(WriteFileBytes(o.out, fitted->model));
  const double total_s = Seconds() - t0;

  // The engine must score the first image as the fit's final density does
  // (the file holds what the fit computed).
  auto det = Detector::Create(fitted->model.data(), fitted->model.size());
  if (!det.ok()) {
    return MakeError(ErrorCode::kInternal, "the written model does not load: %s",
                     det.status().ToString().c_str());
  }
  double engine_diff = 0;
  {
    const std::string& path = taught.added[0];
    auto file = ReadFileBytes(path);
    if (!file.ok()) return file.status();
    auto d = (*det)->DetectEncoded(file->data(), file->size());
    if (!d.ok()) return d.status();
    const float want = fitted->first_raw;
    engine_diff = std::fabs(double((*d)->raw_score) - want) / std::max(1.0, std::fabs(double(want)));
    if (!(engine_diff < 1e-3)) {
      return MakeError(ErrorCode::kInternal,
                       "the engine scores %s %g, the fit %g (relative difference %.2g > 1e-3)",
                       path.c_str(), double((*d)->raw_score), double(want), engine_diff);
    }
  }

  const Calibration& cal = fitted->calibration;
  std::printf("wrote %s (%.1f MB): %s density, %s geometry, %d dims, backbone %s\n",
              o.out.c_str(), double(fitted->model.size()) / 1e6, o.density.c_str(),
              t.preprocess().geometry_name(), t.dims(),
              taught.backbone_path.c_str());
  std::printf("images: %d from %d groups (parts or near-duplicates), scored out of group in %d "
              "folds (%d unreadable, skipped)\n",
              t.images(), fitted->groups, fitted->folds, taught.skipped);
  std::printf("threshold %.2f: %s flagged (target %.3g; estimated from %d out-of-group "
              "scores); offset %.4g, scale %.4g, shrinkage %.3f (mean)\n",
              double(cal.threshold), fit::DescribeRate(double(cal.false_alarm_rate)).c_str(),
              double(cal.false_alarm_rate), cal.good_images, double(cal.offset),
              double(cal.scale), fitted->mean_shrinkage);
  for (const std::string& w : fitted->warnings) std::printf("warning: %s\n", w.c_str());
  std::printf("time: %.1f s (features %.1f s, fit %.1f s); engine vs fit: %.1e relative\n",
              total_s, taught.seconds, fit_s, engine_diff);
  ReportValidation(o, o.out);
  return Status::Ok();
}

}  // namespace flawlens::train
