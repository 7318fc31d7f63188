// flawlens eval MODEL DATA [--split NAME] [--json FILE] [--report DIR] [--threads N] [--no-roi]
//                          [--fuse MODEL2 [--fuse-rule mean|max]]
//
// Scores every image of a dataset split with flawlens::Detector (the same
// inference core as the browser) and prints image AUROC, pixel AUROC and PRO
// (where masks exist) and F1 at the model's threshold, overall and per defect
// type. Per type = that type's images against all good images of the split.
// Image AUROC comes with a 95 % bootstrap interval (AurocBootstrap): a small
// split says little, and the interval says how little. Captures of one part
// are drawn together: by capture tag (GroupKey), or as `--groups FILE` says.
// Pixel metrics: the anomaly map is upsampled bilinearly onto the image
// (following map_rect) and compared with the mask; good images count as
// all-negative; defective images without a mask file are left out of them.
// A model card's region of interest ("roi", fractions of the image: a model
// taught in the page keeps its camera region) is applied to every image, as
// the page does; --no-roi scores whole images.
// --fuse MODEL2 evaluates the score-level fusion of two models: each image's
// score is the mean (or max) of the two models' calibrated scores, its map
// the pixel-wise mean (or max) of the two calibrated maps upsampled onto the
// image. Calibration puts both in the same units (standard deviations of
// held-out good images), which is what makes the two comparable.
//
// Exit codes: 0 ok; 1 bad arguments / model / dataset; 3 some images could
// not be read or scored (they are listed and left out of the metrics).
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>

#include "cli/cli_util.h"
#include "cli/dataset.h"
#include "cli/metrics.h"
#include "fit/threshold.h"
#include "cli/report.h"
#include "commands.h"

namespace flawlens::cli {
namespace {

struct EvalOptions {
  std::string model, data, split, json_path, report_dir, groups_file;
  int threads = 0;
  float threshold = std::nanf("");
  int tiles = 12;
  bool no_roi = false;
  std::string fuse_model;          // --fuse: a second model, fused with the first
  std::string fuse_rule = "mean";  // mean or max
};

struct Scored {
  bool ok = false;
  std::string error;
  float score = 0, raw_score = 0;
  bool anomalous = false;
  int width = 0, height = 0;
  std::vector<float> map;
  int map_w = 0, map_h = 0;
  RectF map_rect;
};

Result<std::vector<uint8_t>> LoadMask(const std::string& path, int width, int height,
                                      bool* resized) {
  FLAWLENS_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, ReadFileBytes(path));
  auto decoded = DecodeImage(bytes.data(), bytes.size());
  if (!decoded.ok()) {
    return Status(decoded.status().code(), "mask '" + path + "': " + decoded.status().message());
  }
  const Image& m = *decoded;
  const int bpp = BytesPerPixel(m.format);
  const int colours = m.format == PixelFormat::kGray8 ? 1 : 3;
  std::vector<uint8_t> out(static_cast<size_t>(width) * height);
  *resized = m.width != width || m.height != height;
  for (int y = 0; y < height; ++y) {
    const int sy = static_cast<int>(static_cast<int64_t>(y) * m.height / height);
    for (int x = 0; x < width; ++x) {
      const int sx = static_cast<int>(static_cast<int64_t>(x) * m.width / width);
      const uint8_t* p = m.pixels.data() + (static_cast<size_t>(sy) * m.width + sx) * bpp;
      uint8_t v = 0;
      for (int c = 0; c < colours; ++c) v = std::max(v, p[c]);
      out[static_cast<size_t>(y) * width + x] = v > 127 ? 1 : 0;
    }
  }
  return out;
}

nlohmann::json Metric(double v) {
  return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
}

nlohmann::json RowJson(const MetricRow& r) {
  return {{"good", r.good},
          {"defective", r.defective},
          {"masks", r.masks},
          {"image_auroc", Metric(r.image_auroc)},
          {"image_auroc_ci95", {Metric(r.image_auroc_ci.lo), Metric(r.image_auroc_ci.hi)}},
          {"pixel_auroc", Metric(r.pixel_auroc)},
          {"pixel_auroc_tie_bound", Metric(r.pixel_auroc_tie_bound)},
          {"pro", Metric(r.pro)},
          {"f1", Metric(r.f1)},
          {"precision", Metric(r.precision)},
          {"recall", Metric(r.recall)},
          {"fpr", Metric(r.fpr)},
          {"best_f1", Metric(r.best_f1)},
          {"best_f1_threshold", Metric(r.best_f1_threshold)},
          {"recall_at_1pct_false_alarms", Metric(r.recall_at_fa1)},
          {"recall_at_5pct_false_alarms", Metric(r.recall_at_fa5)}};
}

std::string Cell(double v) {
  if (!std::isfinite(v)) return "-";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.4f", v);
  return buf;
}

std::string CiCell(const Interval& ci) {
  if (!std::isfinite(ci.lo) || !std::isfinite(ci.hi)) return "-";
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%.3f-%.3f", ci.lo, ci.hi);
  return buf;
}

// One evaluation: the inputs, every image's result and the metrics, filled
// in stage by stage (score, image metrics, pixel metrics) and then written
// out (table, JSON, report).
struct EvalRun {
  EvalRun(const EvalOptions& o, const LoadedModel& m, const Dataset& d) : opt(o), model(m), ds(d) {}

  const EvalOptions& opt;
  const LoadedModel& model;
  const Dataset& ds;
  std::vector<std::string> part_of;  // --groups label per sample ("" = capture tag)
  std::string interval_note;
  int workers = 1;
  float threshold = 0;
  bool has_roi = false;
  RectF roi;  // the model card's region of interest, fractions of each image
  float map_low = 0, map_high = 1;
  int n = 0;
  std::vector<Scored> scored;
  std::vector<std::string> notes;
  int failed = 0;
  std::vector<std::string> groups;  // "all", then each defect type
  std::vector<MetricRow> rows;      // one per group
  std::vector<RocPoint> image_roc, pixel_roc;
  bool fused = false;     // --fuse: scored holds the fusion of two models
  std::string fuse_name;  // the second model's name

  // Sample i counts in group g: every sample for "all", else the good ones
  // and that type's defective ones.
  bool InGroup(int i, size_t g) const {
    return g == 0 || !ds.samples[i].defective || ds.samples[i].defect_type == groups[g];
  }
};

// Pass 1: score every image with one model (its own region of interest).
std::vector<Scored> ScoreImages(const std::vector<std::unique_ptr<Detector>>& detectors,
                                bool has_roi, const RectF& roi, float threshold,
                                const EvalRun& run) {
  const Dataset& ds = run.ds;
  std::vector<Scored> scored(size_t(run.n));
  ParallelFor(run.n, run.workers, [&](int w, int i) {
    Scored& s = scored[size_t(i)];
    auto bytes = ReadFileBytes(ds.samples[i].path);
    if (!bytes.ok()) {
      s.error = bytes.status().ToString();
      return;
    }
    auto image = DecodeImage(bytes->data(), bytes->size());
    if (!image.ok()) {
      s.error = image.status().ToString();
      return;
    }
    const RectF region = has_roi ? RoiPixels(roi, image->width, image->height) : RectF{};
    auto det = detectors[w]->Detect(image->view(), region);
    if (!det.ok()) {
      s.error = det.status().ToString();
      return;
    }
    const Detection& d = **det;
    s.ok = true;
    s.score = d.score;
    s.raw_score = d.raw_score;
    s.anomalous = d.score >= threshold;
    s.width = image->width;
    s.height = image->height;
    s.map = d.map;
    s.map_w = d.map_width;
    s.map_h = d.map_height;
    s.map_rect = d.map_rect;
  });
  return scored;
}

float Fuse(const std::string& rule, float a, float b) {
  return rule == "max" ? std::max(a, b) : 0.5f * (a + b);
}

// --fuse: run->scored (the first model) and `other` (the second) become one
// result per image: fused score, and the fused map at image resolution.
void FuseScored(const std::vector<Scored>& other, const std::string& rule, EvalRun* run) {
  ParallelFor(run->n, run->workers, [&](int, int i) {
    Scored& s = run->scored[size_t(i)];
    const Scored& o = other[size_t(i)];
    if (!s.ok) return;
    if (!o.ok) {
      s.ok = false;
      s.error = "second model: " + o.error;
      return;
    }
    s.score = Fuse(rule, s.score, o.score);
    s.raw_score = s.score;
    s.anomalous = s.score >= run->threshold;
    std::vector<float> a, b;
    UpsampleMap(s.map.data(), s.map_w, s.map_h, s.map_rect, s.width, s.height, &a);
    UpsampleMap(o.map.data(), o.map_w, o.map_h, o.map_rect, s.width, s.height, &b);
    for (size_t k = 0; k < a.size(); ++k) a[k] = Fuse(rule, a[k], b[k]);
    s.map = std::move(a);
    s.map_w = s.width;
    s.map_h = s.height;
    s.map_rect = RectF{0, 0, float(s.width), float(s.height)};
  });
}

// Failures (either model) are counted and listed in notes.
void NoteFailures(EvalRun* run) {
  const Dataset& ds = run->ds;
  for (int i = 0; i < run->n; ++i) {
    if (!run->scored[i].ok) {
      ++run->failed;
      run->notes.push_back("not scored: " + ds.samples[i].path + ": " + run->scored[i].error);
    }
  }
  for (const std::string& note : run->notes) std::fprintf(stderr, "error: %s\n", note.c_str());
}

void ImageMetrics(EvalRun* run) {
  const Dataset& ds = run->ds;
  run->groups = {"all"};
  run->groups.insert(run->groups.end(), ds.defect_types.begin(), ds.defect_types.end());
  run->rows.assign(run->groups.size(), MetricRow{});
  for (size_t g = 0; g < run->groups.size(); ++g) {
    std::vector<float> s;
    std::vector<bool> l;
    std::vector<std::string> parts;
    MetricRow& r = run->rows[g];
    r.name = run->groups[g];
    for (int i = 0; i < run->n; ++i) {
      if (!run->scored[i].ok || !run->InGroup(i, g)) continue;
      s.push_back(run->scored[i].score);
      l.push_back(ds.samples[i].defective);
      parts.push_back(run->part_of[i].empty() ? "auto:" + GroupKey(ds.samples[i].path)
                                              : "file:" + run->part_of[i]);
      if (ds.samples[i].defective) {
        ++r.defective;
        if (!ds.samples[i].mask_path.empty()) ++r.masks;
      } else {
        ++r.good;
      }
    }
    r.image_auroc = Auroc(s, l);
    r.recall_at_fa1 = RecallAtFalseAlarms(s, l, 0.01);
    r.recall_at_fa5 = RecallAtFalseAlarms(s, l, 0.05);
    r.image_auroc_ci = AurocBootstrap(s, l, parts);
    const F1Score f = F1AtThreshold(s, l, run->threshold);
    if (r.defective > 0) {
      r.f1 = f.f1;
      r.precision = f.tp + f.fp > 0 ? f.precision : kNaN;
      r.recall = f.recall;
      const F1Score best = BestF1(s, l);
      r.best_f1 = best.f1;
      r.best_f1_threshold = best.threshold;
    }
    if (r.good > 0) r.fpr = static_cast<double>(f.fp) / static_cast<double>(r.good);
    if (g == 0) run->image_roc = RocCurve(s, l);
  }
}

// Pixel metrics over images with masks + good images.
void PixelMetrics(EvalRun* run) {
  const Dataset& ds = run->ds;
  if (ds.num_masks() == 0) return;
  std::vector<int> pixel_set;
  std::vector<float> sample;
  for (int i = 0; i < run->n; ++i) {
    if (!run->scored[i].ok) continue;
    if (ds.samples[i].defective && ds.samples[i].mask_path.empty()) continue;
    pixel_set.push_back(i);
    sample.insert(sample.end(), run->scored[i].map.begin(), run->scored[i].map.end());
  }
  const std::vector<float> edges = PixelAccumulator::EdgesFromSample(std::move(sample));
  // Per worker: one accumulator per group, merged at the end.
  const size_t num_groups = run->groups.size();
  std::vector<std::vector<PixelAccumulator>> acc(
      run->workers, std::vector<PixelAccumulator>(num_groups, PixelAccumulator(edges)));
  std::mutex mu;
  int resized_masks = 0;
  ParallelFor(static_cast<int>(pixel_set.size()), run->workers, [&](int w, int k) {
    const int i = pixel_set[k];
    const Scored& s = run->scored[i];
    std::vector<float> up;
    UpsampleMap(s.map.data(), s.map_w, s.map_h, s.map_rect, s.width, s.height, &up);
    std::vector<uint8_t> mask;
    if (ds.samples[i].defective) {
      bool resized = false;
      auto m = LoadMask(ds.samples[i].mask_path, s.width, s.height, &resized);
      std::lock_guard<std::mutex> lock(mu);
      if (!m.ok()) {
        run->notes.push_back("mask skipped: " + m.status().ToString());
        return;
      }
      if (resized) ++resized_masks;
      mask = std::move(m).value();
    }
    for (size_t g = 0; g < num_groups; ++g) {
      if (run->InGroup(i, g)) {
        acc[w][g].Add(up.data(), mask.empty() ? nullptr : mask.data(), s.width, s.height);
      }
    }
  });
  for (size_t g = 0; g < num_groups; ++g) {
    for (int w = 1; w < run->workers; ++w) acc[0][g].Merge(acc[w][g]);
    const PixelAccumulator& a = acc[0][g];
    run->rows[g].pixel_auroc = a.Auroc();
    run->rows[g].pixel_auroc_tie_bound = a.AurocTieBound();
    run->rows[g].pro = a.Pro(0.3);
  }
  run->pixel_roc = acc[0][0].Roc();
  if (resized_masks > 0) {
    run->notes.push_back(std::to_string(resized_masks) +
                         " masks differ in size from their image and were resized (nearest)");
  }
}

void PrintTable(const EvalRun& run) {
  const Dataset& ds = run.ds;
  const std::vector<MetricRow>& rows = run.rows;
  std::printf("model %s (%s)", run.model.model->name.c_str(), run.opt.model.c_str());
  if (run.fused) {
    std::printf(", fused (%s of calibrated scores and maps) with %s (%s)",
                run.opt.fuse_rule.c_str(), run.fuse_name.c_str(), run.opt.fuse_model.c_str());
  }
  std::printf("\ndataset %s, split %s (%s): %d good, %d defective, %d masks\n", ds.root.c_str(),
              ds.split.c_str(), ds.split_dir.c_str(), ds.num_good(), ds.num_defective(),
              ds.num_masks());
  std::printf("threshold %.4f (score >= threshold = defective); %d workers\n\n", run.threshold,
              run.workers);
  std::printf("%-16s %6s %6s %11s %13s %11s %9s %8s %8s %8s %8s %8s\n", "type", "good", "defect",
              "image_AUROC", "(95% CI)", "pixel_AUROC", "PRO@0.3", "R@1%FA", "R@5%FA", "F1@thr",
              "recall", "FPR");
  for (const MetricRow& r : rows) {
    std::printf("%-16s %6d %6d %11s %13s %11s %9s %8s %8s %8s %8s %8s\n", r.name.c_str(), r.good,
                r.defective, Cell(r.image_auroc).c_str(), CiCell(r.image_auroc_ci).c_str(),
                Cell(r.pixel_auroc).c_str(), Cell(r.pro).c_str(), Cell(r.recall_at_fa1).c_str(),
                Cell(r.recall_at_fa5).c_str(), Cell(r.f1).c_str(), Cell(r.recall).c_str(),
                Cell(r.fpr).c_str());
  }
  // The threshold's promise beside what it does on these images.
  const Calibration& cal = run.model.model->calibration;
  if (!std::isnan(cal.false_alarm_rate) && rows[0].good > 0) {
    std::printf("\nat the threshold %.4f the model promises %s flagged (target %.3g, estimated from "
                "%d good images); here %.1f %% of the good and %.1f %% of the defective images "
                "are flagged (R@1%%FA %s, R@5%%FA %s)\n",
                run.threshold, fit::DescribeRate(double(cal.false_alarm_rate)).c_str(),
                double(cal.false_alarm_rate), cal.good_images, 100.0 * rows[0].fpr,
                100.0 * rows[0].recall, Cell(rows[0].recall_at_fa1).c_str(),
                Cell(rows[0].recall_at_fa5).c_str());
  }
  std::printf("\n%s\n", run.interval_note.c_str());
  std::printf("best F1 %s at threshold %s", Cell(rows[0].best_f1).c_str(),
              Cell(rows[0].best_f1_threshold).c_str());
  if (std::isfinite(rows[0].pixel_auroc_tie_bound)) {
    std::printf("; pixel AUROC binning error <= %.2g", rows[0].pixel_auroc_tie_bound);
  }
  std::printf("\n");
  for (const std::string& note : run.notes) {
    if (note.rfind("not scored", 0) != 0) std::fprintf(stderr, "note: %s\n", note.c_str());
  }
}

Status WriteJson(const EvalRun& run) {
  const Dataset& ds = run.ds;
  nlohmann::json j;
  j["model"] = {{"path", run.opt.model}, {"name", run.model.model->name}};
  if (run.fused) {
    j["fused_with"] = {{"path", run.opt.fuse_model},
                       {"name", run.fuse_name},
                       {"rule", run.opt.fuse_rule}};
  }
  j["dataset"] = {{"root", ds.root}, {"split", ds.split}, {"split_dir", ds.split_dir}};
  j["threshold"] = run.threshold;
  j["counts"] = {{"images", run.n},
                 {"good", ds.num_good()},
                 {"defective", ds.num_defective()},
                 {"masks", ds.num_masks()},
                 {"failed", run.failed}};
  j["metrics"] = RowJson(run.rows[0]);
  j["image_auroc_ci95_note"] = run.interval_note;
  nlohmann::json per_type = nlohmann::json::object();
  for (size_t g = 1; g < run.rows.size(); ++g) per_type[run.rows[g].name] = RowJson(run.rows[g]);
  j["per_type"] = per_type;
  nlohmann::json images = nlohmann::json::array();
  for (int i = 0; i < run.n; ++i) {
    nlohmann::json im = {{"path", ds.samples[i].path}, {"type", ds.samples[i].defect_type}};
    const Scored& s = run.scored[i];
    if (s.ok) {
      im["score"] = Metric(s.score);
      im["raw_score"] = Metric(s.raw_score);
      im["anomalous"] = s.anomalous;
    } else {
      im["error"] = s.error;
    }
    images.push_back(im);
  }
  j["images"] = images;
  j["notes"] = run.notes;
  const std::string text = j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  FLAWLENS_RETURN_IF_ERROR(
      WriteFileBytes(run.opt.json_path, std::vector<uint8_t>(text.begin(), text.end())));
  std::printf("wrote %s\n", run.opt.json_path.c_str());
  return Status::Ok();
}

// Report tiles for samples `idx`: the image with its heatmap, as a thumbnail.
std::vector<ReportTile> MakeTiles(const EvalRun& run, const std::vector<int>& idx) {
  std::vector<ReportTile> out(idx.size());
  ParallelFor(static_cast<int>(idx.size()), run.workers, [&](int, int k) {
    const int i = idx[k];
    const Sample& sample = run.ds.samples[i];
    const Scored& s = run.scored[i];
    ReportTile& t = out[k];
    t.title = std::filesystem::path(sample.path).filename().string();
    t.miss = s.anomalous != sample.defective;
    char buf[160];
    std::snprintf(buf, sizeof(buf), "%s, score %.3f, %s%s", sample.defect_type.c_str(), s.score,
                  s.anomalous ? "defective" : "ok",
                  t.miss ? (sample.defective ? " (missed)" : " (false alarm)") : "");
    t.subtitle = buf;
    auto bytes = ReadFileBytes(sample.path);
    if (!bytes.ok()) return;
    auto image = DecodeImage(bytes->data(), bytes->size());
    if (!image.ok()) return;
    const Image overlay =
        RenderOverlay(*image, s.map, s.map_w, s.map_h, s.map_rect, run.map_low, run.map_high);
    const Image thumb = ShrinkRgb(overlay, 320);
    t.png_base64 = Base64(EncodePng(thumb.pixels.data(), thumb.width, thumb.height, 3));
  });
  return out;
}

Status WriteReport(const EvalRun& run) {
  std::error_code ec;
  std::filesystem::create_directories(run.opt.report_dir, ec);
  ReportData rd;
  rd.model_name = run.model.model->name;
  rd.model_path = run.opt.model;
  rd.dataset = run.ds.root;
  rd.split = run.ds.split;
  rd.threshold = run.threshold;
  rd.rows = run.rows;
  rd.interval_note = run.interval_note;
  rd.image_roc = run.image_roc;
  rd.pixel_roc = run.pixel_roc;
  rd.notes = run.notes;
  // The worst-scored defective and the best-scored good images first.
  std::vector<int> bad, good;
  for (int i = 0; i < run.n; ++i) {
    if (!run.scored[i].ok) continue;
    const bool defective = run.ds.samples[i].defective;
    (defective ? rd.defective_scores : rd.good_scores).push_back(run.scored[i].score);
    (defective ? bad : good).push_back(i);
  }
  const auto& scored = run.scored;
  std::sort(bad.begin(), bad.end(), [&](int a, int b) { return scored[a].score < scored[b].score; });
  std::sort(good.begin(), good.end(), [&](int a, int b) { return scored[a].score > scored[b].score; });
  if (static_cast<int>(bad.size()) > run.opt.tiles) bad.resize(run.opt.tiles);
  if (static_cast<int>(good.size()) > run.opt.tiles) good.resize(run.opt.tiles);
  rd.defective_tiles = MakeTiles(run, bad);
  rd.good_tiles = MakeTiles(run, good);
  const std::string html = RenderReportHtml(rd);
  const std::string path = (std::filesystem::path(run.opt.report_dir) / "report.html").string();
  FLAWLENS_RETURN_IF_ERROR(WriteFileBytes(path, std::vector<uint8_t>(html.begin(), html.end())));
  std::printf("wrote %s\n", path.c_str());
  return Status::Ok();
}

// --fuse: scores every image with the second model and fuses the results
// into run->scored; the threshold becomes the fusion of the two thresholds
// (unless --threshold gave one).
Status ScoreSecondModel(EvalRun* run) {
  const EvalOptions& opt = run->opt;
  FLAWLENS_ASSIGN_OR_RETURN(LoadedModel second, LoadModelFile(opt.fuse_model));
  bool has_roi = false;
  RectF roi;
  if (!opt.no_roi) {
    FLAWLENS_ASSIGN_OR_RETURN(has_roi, CardRoi(*second.model, &roi));
  }
  FLAWLENS_ASSIGN_OR_RETURN(auto detectors, MakeDetectors(second, run->workers));
  const float second_threshold = detectors[0]->threshold();
  if (!std::isfinite(opt.threshold)) {
    run->threshold = Fuse(opt.fuse_rule, run->threshold, second_threshold);
  }
  const std::vector<Scored> other = ScoreImages(detectors, has_roi, roi, second_threshold, *run);
  FuseScored(other, opt.fuse_rule, run);
  run->fused = true;
  run->fuse_name = second.model->name;
  return Status::Ok();
}

int RunEval(const EvalOptions& opt) {
  auto model = LoadModelFile(opt.model);
  if (!model.ok()) {
    std::fprintf(stderr, "flawlens eval: %s\n", model.status().ToString().c_str());
    return 1;
  }
  auto dataset = LoadDataset(opt.data, opt.split);
  if (!dataset.ok()) {
    std::fprintf(stderr, "flawlens eval: %s\n", dataset.status().ToString().c_str());
    return 1;
  }
  const Dataset& ds = *dataset;
  for (const std::string& w : ds.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
  EvalRun run(opt, *model, ds);
  if (!opt.no_roi) {
    auto has_roi = CardRoi(*model->model, &run.roi);
    if (!has_roi.ok()) {
      std::fprintf(stderr, "flawlens eval: %s\n", has_roi.status().ToString().c_str());
      return 1;
    }
    run.has_roi = *has_roi;
  }
  if (run.has_roi) {
    std::fprintf(stderr,
                 "flawlens eval: scoring inside the model's region of interest (x %.4g, y %.4g, "
                 "w %.4g, h %.4g of each image; --no-roi: whole images)\n",
                 double(run.roi.x), double(run.roi.y), double(run.roi.w), double(run.roi.h));
  }
  run.n = static_cast<int>(ds.samples.size());
  // Bootstrap groups: --groups labels, else GroupKey (capture tags).
  run.part_of.assign(ds.samples.size(), std::string());
  if (!opt.groups_file.empty()) {
    auto labels = ReadGroupsFile(opt.groups_file, ds);
    if (!labels.ok()) {
      std::fprintf(stderr, "flawlens eval: %s\n", labels.status().ToString().c_str());
      return 1;
    }
    run.part_of = std::move(*labels);
  }
  run.interval_note = AurocIntervalNote(opt.groups_file);
  run.workers = std::min(ResolveThreads(opt.threads), run.n);
  auto detectors = MakeDetectors(*model, run.workers);
  if (!detectors.ok()) {
    std::fprintf(stderr, "flawlens eval: %s\n", detectors.status().ToString().c_str());
    return 1;
  }
  run.threshold = std::isfinite(opt.threshold) ? opt.threshold : (*detectors)[0]->threshold();
  MapDisplayRange(*model->model, &run.map_low, &run.map_high);

  run.scored = ScoreImages(*detectors, run.has_roi, run.roi, run.threshold, run);
  if (!opt.fuse_model.empty()) {
    Status st = ScoreSecondModel(&run);
    if (!st.ok()) {
      std::fprintf(stderr, "flawlens eval: --fuse %s: %s\n", opt.fuse_model.c_str(),
                   st.ToString().c_str());
      return 1;
    }
  }
  NoteFailures(&run);
  ImageMetrics(&run);
  PixelMetrics(&run);
  PrintTable(run);
  Status st = opt.json_path.empty() ? Status::Ok() : WriteJson(run);
  if (st.ok() && !opt.report_dir.empty()) st = WriteReport(run);
  if (!st.ok()) {
    std::fprintf(stderr, "flawlens eval: %s\n", st.ToString().c_str());
    return 1;
  }
  return run.failed > 0 ? 3 : 0;
}

}  // namespace

void AddEvalCommand(CLI::App& app) {
  auto opt = std::make_shared<EvalOptions>();
  CLI::App* cmd = app.add_subcommand(
      "eval", "Evaluate a model on a folder dataset (image/pixel AUROC, PRO, F1, HTML report)");
  cmd->add_option("model", opt->model, "model file (.flawlens / .safetensors)")->required();
  cmd->add_option("data", opt->data, "dataset folder (NAME/val/good, NAME/val/<defect>, ...)")
      ->required();
  cmd->add_option("--split", opt->split, "split folder to evaluate (default: val, else test)");
  cmd->add_option("--json", opt->json_path, "write all numbers as JSON to this file");
  cmd->add_option("--report", opt->report_dir, "write DIR/report.html (self-contained)");
  cmd->add_option("--threads", opt->threads, "worker threads, one Detector each (default: cores)");
  cmd->add_option("--threshold", opt->threshold, "override the model's threshold");
  cmd->add_flag("--no-roi", opt->no_roi,
                "score whole images, not the region of interest stored in the model card");
  cmd->add_option("--tiles", opt->tiles, "heatmaps per group in the report (default 12)");
  cmd->add_option("--groups", opt->groups_file,
                  "CSV of image,group: images of one group (e.g. one part under several lights) "
                  "are drawn together by the AUROC interval's bootstrap; unlisted images keep the "
                  "capture-tag rule");
  cmd->add_option("--fuse", opt->fuse_model,
                  "evaluate the fusion of MODEL with this second model: per image the mean (or "
                  "max, --fuse-rule) of the two calibrated scores, and of the two calibrated "
                  "maps upsampled onto the image; threshold likewise");
  cmd->add_option("--fuse-rule", opt->fuse_rule, "mean (default) or max")
      ->check(CLI::IsMember({"mean", "max"}));
  cmd->callback([opt] { ExitCode() = RunEval(*opt); });
}

}  // namespace flawlens::cli
