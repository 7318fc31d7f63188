// flawlens bench MODEL [--runs N] [--width W --height H]: times
// Detector::Detect (preprocess + network + postprocess) per backend on a
// synthetic frame, single thread. Prints median / p10 / p90 and the ratio of
// each median to the fastest. A benchmark, not a test: numbers depend on the
// machine and its load.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>

#include "cli/cli_util.h"
#include "commands.h"

namespace flawlens::cli {
namespace {

struct BenchOptions {
  std::string model;
  int runs = 30, warmup = 3, width = 640, height = 480;
  std::vector<std::string> backends = {"ref", "simd", "xnnpack"};
};

struct Stats {
  std::string backend, kernel_backend, error;
  double median = 0, p10 = 0, p90 = 0, network_median = 0;
};

double Percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  const double pos = q * (v.size() - 1);
  const size_t i = static_cast<size_t>(pos);
  const double f = pos - i;
  return i + 1 < v.size() ? v[i] * (1 - f) + v[i + 1] * f : v[i];
}

int RunBench(const BenchOptions& opt) {
  auto model = LoadModelFile(opt.model);
  if (!model.ok()) {
    std::fprintf(stderr, "flawlens bench: %s\n", model.status().ToString().c_str());
    return 1;
  }
  if (opt.runs < 1 || opt.width < 1 || opt.height < 1) {
    std::fprintf(stderr, "flawlens bench: --runs, --width and --height must be >= 1\n");
    return 1;
  }
  // Synthetic RGB frame: smooth gradient plus noise (fixed seed).
  Image frame;
  frame.width = opt.width;
  frame.height = opt.height;
  frame.format = PixelFormat::kRGB8;
  frame.pixels.resize(static_cast<size_t>(opt.width) * opt.height * 3);
  std::mt19937 rng(42);
  for (int y = 0; y < opt.height; ++y) {
    for (int x = 0; x < opt.width; ++x) {
      for (int c = 0; c < 3; ++c) {
        const int v = (x * 255 / opt.width + y * 128 / opt.height + c * 40) % 256 +
                      static_cast<int>(rng() % 21) - 10;
        frame.pixels[(static_cast<size_t>(y) * opt.width + x) * 3 + c] =
            static_cast<uint8_t>(std::min(255, std::max(0, v)));
      }
    }
  }
  std::printf("model %s: input %dx%d, frame %dx%d RGB, %d runs after %d warm-up, 1 thread\n",
              model->model->name.c_str(), model->model->graph.input.w, model->model->graph.input.h,
              opt.width, opt.height, opt.runs, opt.warmup);
  std::vector<Stats> results;
  for (const std::string& backend : opt.backends) {
    Stats s;
    s.backend = backend;
    DetectorOptions dopt;
    dopt.backend = backend;
    dopt.threads = 1;
    auto dets = MakeDetectors(*model, 1, dopt);
    if (!dets.ok()) {
      s.error = dets.status().ToString();
      results.push_back(s);
      continue;
    }
    Detector& det = *(*dets)[0];
    s.kernel_backend = det.info().backend;
    std::vector<double> total, network;
    for (int r = 0; r < opt.warmup + opt.runs && s.error.empty(); ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      auto out = det.Detect(frame.view());
      const auto t1 = std::chrono::steady_clock::now();
      if (!out.ok()) {
        s.error = out.status().ToString();
        break;
      }
      if (r < opt.warmup) continue;
      total.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
      network.push_back((*out)->timings.network_ms);
    }
    if (s.error.empty()) {
      s.median = Percentile(total, 0.5);
      s.p10 = Percentile(total, 0.1);
      s.p90 = Percentile(total, 0.9);
      s.network_median = Percentile(network, 0.5);
    }
    results.push_back(s);
  }
  double fastest = 0;
  for (const Stats& s : results) {
    if (s.error.empty() && (fastest == 0 || s.median < fastest)) fastest = s.median;
  }
  std::printf("%-9s %-10s %10s %10s %10s %12s %8s\n", "backend", "used", "median_ms", "p10_ms",
              "p90_ms", "network_ms", "ratio");
  for (const Stats& s : results) {
    if (!s.error.empty()) {
      std::printf("%-9s unavailable: %s\n", s.backend.c_str(), s.error.c_str());
      continue;
    }
    std::printf("%-9s %-10s %10.3f %10.3f %10.3f %12.3f %7.2fx\n", s.backend.c_str(),
                s.kernel_backend.c_str(), s.median, s.p10, s.p90, s.network_median,
                fastest > 0 ? s.median / fastest : 0.0);
  }
  return 0;
}

}  // namespace

void AddBenchCommand(CLI::App& app) {
  auto opt = std::make_shared<BenchOptions>();
  CLI::App* cmd =
      app.add_subcommand("bench", "Time Detector::Detect per backend (ref, simd, xnnpack)");
  cmd->add_option("model", opt->model, "model file")->required();
  cmd->add_option("--runs", opt->runs, "timed runs per backend (default 30)");
  cmd->add_option("--warmup", opt->warmup, "untimed runs first (default 3)");
  cmd->add_option("--width", opt->width, "synthetic frame width (default 640)");
  cmd->add_option("--height", opt->height, "synthetic frame height (default 480)");
  cmd->add_option("--backends", opt->backends, "backends to time (default ref simd xnnpack)");
  cmd->callback([opt] { ExitCode() = RunBench(*opt); });
}

}  // namespace flawlens::cli
