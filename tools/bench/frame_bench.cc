// frame_bench: per-frame cost of everything outside the network — Preprocess()
// on webcam-sized and photo-sized frames, and (with a model file) the
// preprocess / network / postprocess split of Detector::Detect() on a 640x480
// RGBA frame. Prints medians and minima (the minimum is the
// steadiest figure on a loaded machine). Builds natively and with em++ (README.md).
//
//   frame_bench [--model FILE] [--runs N] [--cpu] [--cases SUBSTRING] [--save DIR]
//               [--compare DIR]
// --cpu     time with the thread CPU clock (native) or node's process.cpuUsage()
//           (wasm): steadier than wall clock on a loaded machine
// --save    write each case's output floats to DIR/<case>.f32
// --compare read DIR/<case>.f32 and print the max abs / rel difference (checks
//           that an optimisation keeps results identical within float tolerance)
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#if defined(__EMSCRIPTEN__)
#include <emscripten.h>
#endif

#include "flawlens/detector.h"
#include "image/preprocess.h"

namespace {

using flawlens::ImageView;
using flawlens::NormMode;
using flawlens::PixelFormat;
using flawlens::PreprocessConfig;

bool g_cpu = false;

double NowMs() {
  if (g_cpu) {
#if defined(__EMSCRIPTEN__)
    // node: process CPU time (user + system), microsecond resolution.
    return EM_ASM_DOUBLE({
      const u = process.cpuUsage();
      return (u.user + u.system) / 1000;
    });
#elif defined(CLOCK_THREAD_CPUTIME_ID)
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
#endif
  }
  using Clock = std::chrono::steady_clock;
  return std::chrono::duration<double, std::milli>(Clock::now().time_since_epoch()).count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// A deterministic "natural-looking" frame: smooth shading, edges, noise.
std::vector<uint8_t> MakeFrame(int w, int h, int bpp) {
  std::vector<uint8_t> px(static_cast<size_t>(w) * h * bpp);
  uint32_t seed = 777;
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      seed = seed * 1664525u + 1013904223u;
      const int noise = static_cast<int>(seed >> 28) - 8;
      const double fx = double(x) / w, fy = double(y) / h;
      const double base = 90 + 60 * fx + 40 * std::sin(fy * 9) + ((x / 37 + y / 29) % 2 ? 30 : 0);
      for (int c = 0; c < bpp; ++c) {
        const int v = c == 3 ? 255 : static_cast<int>(base + 15 * c * fy) + noise;
        px[(static_cast<size_t>(y) * w + x) * bpp + c] = static_cast<uint8_t>(std::clamp(v, 0, 255));
      }
    }
  }
  return px;
}

struct Case {
  const char* name;
  int w, h;
  PixelFormat format;
  int size, channels;
  NormMode norm;
};

bool ReadFloats(const std::string& path, std::vector<float>* v) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  std::fseek(f, 0, SEEK_END);
  const long n = std::ftell(f);
  std::fseek(f, 0, SEEK_SET);
  v->resize(static_cast<size_t>(n) / sizeof(float));
  const bool ok = std::fread(v->data(), sizeof(float), v->size(), f) == v->size();
  std::fclose(f);
  return ok;
}

bool ReadFile(const std::string& path, std::vector<uint8_t>* v) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  std::fseek(f, 0, SEEK_END);
  const long n = std::ftell(f);
  std::fseek(f, 0, SEEK_SET);
  v->resize(static_cast<size_t>(n));
  const bool ok = std::fread(v->data(), 1, v->size(), f) == v->size();
  std::fclose(f);
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_path, save_dir, compare_dir, only;
  int runs = 30;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--model" && i + 1 < argc) model_path = argv[++i];
    else if (a == "--runs" && i + 1 < argc) runs = std::max(1, std::atoi(argv[++i]));
    else if (a == "--cpu") g_cpu = true;
    else if (a == "--cases" && i + 1 < argc) only = argv[++i];
    else if (a == "--save" && i + 1 < argc) save_dir = argv[++i];
    else if (a == "--compare" && i + 1 < argc) compare_dir = argv[++i];
    else {
      std::fprintf(stderr,
                   "usage: frame_bench [--model FILE] [--runs N] [--cpu] [--cases SUBSTRING] "
                   "[--save DIR] [--compare DIR]\n");
      return 2;
    }
  }

  const Case cases[] = {
      {"rgba640x480_to_256x3_lcn8", 640, 480, PixelFormat::kRGBA8, 256, 3, NormMode::kLocalContrast},
      {"rgba640x480_to_256x1_lcn8", 640, 480, PixelFormat::kRGBA8, 256, 1, NormMode::kLocalContrast},
      {"gray640x480_to_256x1_lcn8", 640, 480, PixelFormat::kGray8, 256, 1, NormMode::kLocalContrast},
      {"rgba640x480_to_256x3_meanstd", 640, 480, PixelFormat::kRGBA8, 256, 3, NormMode::kMeanStd},
      {"rgba1280x720_to_256x3_lcn8", 1280, 720, PixelFormat::kRGBA8, 256, 3, NormMode::kLocalContrast},
      {"rgb4000x3000_to_224x3_meanstd", 4000, 3000, PixelFormat::kRGB8, 224, 3, NormMode::kMeanStd},
  };
  std::printf("frame_bench (%s clock, median of %d runs)\n", g_cpu ? "CPU" : "wall", runs);
  int bad = 0;
  for (const Case& c : cases) {
    if (!only.empty() && std::string(c.name).find(only) == std::string::npos) continue;
    const int bpp = flawlens::BytesPerPixel(c.format);
    const std::vector<uint8_t> px = MakeFrame(c.w, c.h, bpp);
    const ImageView view{px.data(), c.w, c.h, c.format, 0};
    PreprocessConfig cfg;
    cfg.resize_w = cfg.resize_h = c.size;
    cfg.channels = c.channels;
    cfg.norm = c.norm;
    cfg.lcn_sigma = 8.0f;
    cfg.lcn_eps = 1e-3f;
    for (int k = 0; k < 3; ++k) cfg.mean[k] = 0.01f * k, cfg.std[k] = 0.7f + 0.01f * k;
    std::vector<float> out(static_cast<size_t>(c.size) * c.size * c.channels);
    flawlens::PreprocessScratch scratch;
    const int n = c.w * c.h > 4000000 ? std::max(3, runs / 5) : runs;
    std::vector<double> t;
    for (int r = 0; r < n + 2; ++r) {
      const double t0 = NowMs();
      flawlens::Status st = flawlens::Preprocess(view, cfg, {}, out.data(), &scratch, nullptr);
      const double t1 = NowMs();
      if (!st.ok()) {
        std::printf("%s: %s\n", c.name, st.ToString().c_str());
        return 1;
      }
      if (r >= 2) t.push_back(t1 - t0);
    }
    std::printf("  preprocess %-32s median %8.2f ms  min %8.2f ms\n", c.name, Median(t),
                *std::min_element(t.begin(), t.end()));
    if (!save_dir.empty()) {
      const std::string path = save_dir + "/" + c.name + ".f32";
      FILE* f = std::fopen(path.c_str(), "wb");
      if (!f || std::fwrite(out.data(), sizeof(float), out.size(), f) != out.size()) {
        std::printf("cannot write %s\n", path.c_str());
        return 1;
      }
      std::fclose(f);
    }
    if (!compare_dir.empty()) {
      std::vector<float> ref;
      if (!ReadFloats(compare_dir + "/" + c.name + ".f32", &ref) || ref.size() != out.size()) {
        std::printf("    compare: no reference for %s\n", c.name);
        ++bad;
        continue;
      }
      double max_abs = 0, max_ref = 0;
      for (size_t i = 0; i < out.size(); ++i) {
        max_abs = std::max(max_abs, std::fabs(double(out[i]) - ref[i]));
        max_ref = std::max(max_ref, std::fabs(double(ref[i])));
      }
      std::printf("    vs reference: max |diff| %.3g (max |ref| %.3g)\n", max_abs, max_ref);
    }
  }

  if (!model_path.empty()) {
    std::vector<uint8_t> bytes;
    if (!ReadFile(model_path, &bytes)) {
      std::printf("cannot read %s\n", model_path.c_str());
      return 1;
    }
    auto det = flawlens::Detector::Create(bytes.data(), bytes.size(), {});
    if (!det.ok()) {
      std::printf("model: %s\n", det.status().ToString().c_str());
      return 1;
    }
    const std::vector<uint8_t> px = MakeFrame(640, 480, 4);
    const ImageView view{px.data(), 640, 480, PixelFormat::kRGBA8, 0};
    std::vector<double> pre, net, post, total, cpu;
    float score = 0;
    for (int r = 0; r < runs + 2; ++r) {
      const double t0 = NowMs();
      auto d = (*det)->Detect(view, {});
      const double t1 = NowMs();
      if (!d.ok()) {
        std::printf("detect: %s\n", d.status().ToString().c_str());
        return 1;
      }
      if (r < 2) continue;
      const flawlens::Timings& tm = (*d)->timings;
      pre.push_back(tm.preprocess_ms);
      net.push_back(tm.network_ms);
      post.push_back(tm.postprocess_ms);
      total.push_back(tm.total_ms);
      cpu.push_back(t1 - t0);
      score = (*d)->score;
    }
    std::printf("Detect 640x480 rgba, %s (backend %s, score %.6f)\n", model_path.c_str(),
                (*det)->info().backend.c_str(), score);
    std::printf("  preprocess %8.2f ms  network %8.2f ms  postprocess %8.3f ms  total %8.2f ms"
                "  (%s clock around Detect: %.2f ms)\n",
                Median(pre), Median(net), Median(post), Median(total),
                g_cpu ? "CPU" : "wall", Median(cpu));
  }
  return bad ? 1 : 0;
}
