// flawlens score MODEL FILE|DIR... [--heatmaps DIR] [--format csv|jsonl] [--threads N] [--no-roi]
//
// One row per image on stdout, in input order (folders: images found
// recursively, sorted). CSV columns: path,score,verdict,error with verdict
// "ok" | "anomaly" | "error"; JSON lines: {"path","score","raw_score",
// "threshold","anomalous","verdict"} or {"path","verdict":"error","error"}.
// N worker threads, each with its own Detector (single-threaded), share the
// files; rows are printed as soon as they are next in order. A model card's
// region of interest ("roi", fractions of the image: a model taught in the
// page keeps its camera region) is applied to every image, as the page does;
// --no-roi scores whole images.
//
// Exit codes: 0 every image scored; 1 bad arguments / model; 3 at least one
// file could not be read or decoded (it still gets an error row, the others
// are scored normally), so scripts notice.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>

#include "cli/cli_util.h"
#include "cli/dataset.h"
#include "commands.h"

namespace flawlens::cli {
namespace {
namespace fs = std::filesystem;

struct ScoreOptions {
  std::string model;
  std::vector<std::string> inputs;
  std::string heatmaps, format = "csv";
  int threads = 0;
  float threshold = std::nanf("");
  bool no_roi = false;
};

struct Row {
  bool done = false, ok = false;
  float score = 0, raw_score = 0;
  bool anomalous = false;
  std::string error;
};

int RunScore(const ScoreOptions& opt) {
  if (opt.format != "csv" && opt.format != "jsonl") {
    std::fprintf(stderr, "flawlens score: --format must be csv or jsonl, not '%s'\n",
                 opt.format.c_str());
    return 1;
  }
  auto model = LoadModelFile(opt.model);
  if (!model.ok()) {
    std::fprintf(stderr, "flawlens score: %s\n", model.status().ToString().c_str());
    return 1;
  }
  RectF roi;  // fractions of each image (the model card's region)
  auto has_roi = opt.no_roi ? Result<bool>(false) : CardRoi(*model->model, &roi);
  if (!has_roi.ok()) {
    std::fprintf(stderr, "flawlens score: %s\n", has_roi.status().ToString().c_str());
    return 1;
  }
  if (*has_roi) {
    std::fprintf(stderr,
                 "flawlens score: scoring inside the model's region of interest (x %.4g, y %.4g, "
                 "w %.4g, h %.4g of each image; --no-roi: whole images)\n",
                 double(roi.x), double(roi.y), double(roi.w), double(roi.h));
  }
  std::vector<std::string> files, rel;
  const Status cs = CollectImageInputs(opt.inputs, &files, &rel);
  if (!cs.ok()) {
    std::fprintf(stderr, "flawlens score: %s\n", cs.ToString().c_str());
    return 1;
  }
  // Unique heatmap names.
  std::set<std::string> used;
  for (size_t i = 0; i < rel.size(); ++i) {
    std::string name = rel[i];
    for (int k = 2; used.count(name); ++k) name = rel[i] + "_" + std::to_string(k);
    used.insert(name);
    rel[i] = name;
  }
  if (!opt.heatmaps.empty()) {
    std::error_code ec;
    fs::create_directories(opt.heatmaps, ec);
    if (ec) {
      std::fprintf(stderr, "flawlens score: cannot create '%s': %s\n", opt.heatmaps.c_str(),
                   ec.message().c_str());
      return 1;
    }
  }
  const int n = static_cast<int>(files.size());
  const int workers = std::min(ResolveThreads(opt.threads), n);
  auto detectors = MakeDetectors(*model, workers);
  if (!detectors.ok()) {
    std::fprintf(stderr, "flawlens score: %s\n", detectors.status().ToString().c_str());
    return 1;
  }
  for (auto& d : *detectors) {
    if (std::isfinite(opt.threshold)) d->set_threshold(opt.threshold);
  }
  const float threshold = (*detectors)[0]->threshold();
  float map_low = 0, map_high = 1;
  MapDisplayRange(*model->model, &map_low, &map_high);

  std::vector<Row> rows(n);
  std::mutex mu;
  int printed = 0, failed = 0;
  const bool csv = opt.format == "csv";
  if (csv) std::printf("path,score,verdict,error\n");
  auto print_ready = [&] {  // with mu held
    while (printed < n && rows[printed].done) {
      const Row& r = rows[printed];
      const std::string& path = files[printed];
      if (csv) {
        if (r.ok) {
          std::printf("%s,%.6g,%s,\n", CsvField(path).c_str(), r.score,
                      r.anomalous ? "anomaly" : "ok");
        } else {
          std::printf("%s,,error,%s\n", CsvField(path).c_str(), CsvField(r.error).c_str());
        }
      } else {
        nlohmann::json j = {{"path", path}};
        if (r.ok) {
          j["score"] = std::isfinite(r.score) ? nlohmann::json(r.score) : nlohmann::json(nullptr);
          j["raw_score"] =
              std::isfinite(r.raw_score) ? nlohmann::json(r.raw_score) : nlohmann::json(nullptr);
          j["threshold"] = threshold;
          j["anomalous"] = r.anomalous;
          j["verdict"] = r.anomalous ? "anomaly" : "ok";
        } else {
          j["verdict"] = "error";
          j["error"] = r.error;
        }
        std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
      }
      ++printed;
    }
    std::fflush(stdout);
  };

  ParallelFor(n, workers, [&](int w, int i) {
    Row r;
    auto finish = [&] {
      std::lock_guard<std::mutex> lock(mu);
      r.done = true;
      if (!r.ok) ++failed;
      rows[i] = std::move(r);
      print_ready();
    };
    auto bytes = ReadFileBytes(files[i]);
    if (!bytes.ok()) {
      r.error = bytes.status().ToString();
      return finish();
    }
    auto image = DecodeImage(bytes->data(), bytes->size());
    if (!image.ok()) {
      r.error = image.status().ToString();
      return finish();
    }
    const RectF region = *has_roi ? RoiPixels(roi, image->width, image->height) : RectF{};
    auto det = (*detectors)[w]->Detect(image->view(), region);
    if (!det.ok()) {
      r.error = det.status().ToString();
      return finish();
    }
    const Detection& d = **det;
    r.ok = true;
    r.score = d.score;
    r.raw_score = d.raw_score;
    r.anomalous = d.anomalous;
    if (!opt.heatmaps.empty()) {
      const Image overlay =
          RenderOverlay(*image, d.map, d.map_width, d.map_height, d.map_rect, map_low, map_high);
      const std::string out = (fs::path(opt.heatmaps) / (rel[i] + ".png")).string();
      const Status st =
          WriteFileBytes(out, EncodePng(overlay.pixels.data(), overlay.width, overlay.height, 3));
      if (!st.ok()) {
        r.ok = false;
        r.error = "heatmap: " + st.ToString();
      }
    }
    finish();
  });
  {
    std::lock_guard<std::mutex> lock(mu);
    print_ready();
  }
  if (failed > 0) {
    std::fprintf(stderr, "flawlens score: %d of %d files could not be scored\n", failed, n);
    return 3;
  }
  return 0;
}

}  // namespace

void AddScoreCommand(CLI::App& app) {
  auto opt = std::make_shared<ScoreOptions>();
  CLI::App* cmd = app.add_subcommand("score", "Score images or folders (CSV or JSON lines)");
  cmd->add_option("model", opt->model, "model file")->required();
  cmd->add_option("inputs", opt->inputs, "image files and/or folders (recursive)")->required();
  cmd->add_option("--heatmaps", opt->heatmaps, "write heatmap overlays (PNG) into this folder");
  cmd->add_option("--format", opt->format, "csv (default) or jsonl");
  cmd->add_option("--threads", opt->threads, "worker threads, one Detector each (default: cores)");
  cmd->add_option("--threshold", opt->threshold, "override the model's threshold");
  cmd->add_flag("--no-roi", opt->no_roi,
                "score whole images, not the region of interest stored in the model card");
  cmd->callback([opt] { ExitCode() = RunScore(*opt); });
}

}  // namespace flawlens::cli
