// engine_bench frame: per-frame cost of everything outside the network —
// Preprocess() on webcam-sized and photo-sized frames — and, with --model,
// Detector::Detect() on a 640x480 RGBA frame split into preprocess / network /
// postprocess, once per backend (--backends auto,ref,simd,xnnpack: the ratio
// of each median to the fastest, as `flawlens bench` prints it).
// --save DIR / --compare DIR write / compare every preprocessing case's output
// floats: the check that an optimisation keeps results within float tolerance.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "bench_util.h"
#include "engine_bench.h"
#include "flawlens/detector.h"
#include "image/preprocess.h"

namespace flawlens::bench {
namespace {

struct Case {
  const char* name;
  int w, h;
  PixelFormat format;
  int size, channels;
  NormMode norm;
};

bool ReadFloats(const std::string& path, std::vector<float>* v) {
  std::vector<uint8_t> bytes;
  if (!ReadFile(path, &bytes) || bytes.size() % sizeof(float) != 0) return false;
  v->resize(bytes.size() / sizeof(float));
  std::copy(bytes.begin(), bytes.end(), reinterpret_cast<uint8_t*>(v->data()));
  return true;
}

// Returns the number of cases without a reference (--compare), or -1 on error.
int PreprocessCases(const FrameOptions& opt) {
  const Case cases[] = {
      {"rgba640x480_to_256x3_lcn8", 640, 480, PixelFormat::kRGBA8, 256, 3, NormMode::kLocalContrast},
      {"rgba640x480_to_256x1_lcn8", 640, 480, PixelFormat::kRGBA8, 256, 1, NormMode::kLocalContrast},
      {"gray640x480_to_256x1_lcn8", 640, 480, PixelFormat::kGray8, 256, 1, NormMode::kLocalContrast},
      {"rgba640x480_to_256x3_meanstd", 640, 480, PixelFormat::kRGBA8, 256, 3, NormMode::kMeanStd},
      {"rgba1280x720_to_256x3_lcn8", 1280, 720, PixelFormat::kRGBA8, 256, 3, NormMode::kLocalContrast},
      {"rgb4000x3000_to_224x3_meanstd", 4000, 3000, PixelFormat::kRGB8, 224, 3, NormMode::kMeanStd},
  };
  std::printf("preprocess (%s clock, median of %d runs)\n", CpuClock() ? "CPU" : "wall", opt.runs);
  int missing = 0;
  for (const Case& c : cases) {
    if (!opt.cases.empty() && std::string(c.name).find(opt.cases) == std::string::npos) continue;
    const std::vector<uint8_t> px = MakeFrame(c.w, c.h, BytesPerPixel(c.format));
    const ImageView view{px.data(), c.w, c.h, c.format, 0};
    PreprocessConfig cfg;
    cfg.resize_w = cfg.resize_h = c.size;
    cfg.channels = c.channels;
    cfg.norm = c.norm;
    cfg.lcn_sigma = 8.0f;
    cfg.lcn_eps = 1e-3f;
    for (int k = 0; k < 3; ++k) cfg.mean[k] = 0.01f * k, cfg.std[k] = 0.7f + 0.01f * k;
    std::vector<float> out(static_cast<size_t>(c.size) * c.size * c.channels);
    PreprocessScratch scratch;
    const int n = c.w * c.h > 4000000 ? std::max(3, opt.runs / 5) : opt.runs;
    std::vector<double> t;
    for (int r = 0; r < n + 2; ++r) {
      const double t0 = NowMs();
      Status st = Preprocess(view, cfg, {}, out.data(), &scratch, nullptr);
      const double t1 = NowMs();
      if (!st.ok()) {
        std::printf("%s: %s\n", c.name, st.ToString().c_str());
        return -1;
      }
      if (r >= 2) t.push_back(t1 - t0);
    }
    std::printf("  %-32s median %8.2f ms  min %8.2f ms\n", c.name, Median(t), Min(t));
    if (!opt.save_dir.empty()) {
      const std::string path = opt.save_dir + "/" + c.name + ".f32";
      FILE* f = std::fopen(path.c_str(), "wb");
      const bool ok = f != nullptr && std::fwrite(out.data(), sizeof(float), out.size(), f) == out.size();
      if (f != nullptr) std::fclose(f);
      if (!ok) {
        std::printf("cannot write %s\n", path.c_str());
        return -1;
      }
    }
    if (!opt.compare_dir.empty()) {
      std::vector<float> ref;
      if (!ReadFloats(opt.compare_dir + "/" + c.name + ".f32", &ref) || ref.size() != out.size()) {
        std::printf("    compare: no reference for %s\n", c.name);
        ++missing;
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
  return missing;
}

struct DetectStats {
  std::string backend, used, error;
  double pre = 0, net = 0, post = 0, total = 0, around = 0;
  float score = 0;
};

DetectStats DetectCase(const std::vector<uint8_t>& bytes, const std::string& backend, int runs) {
  DetectStats s;
  s.backend = backend;
  DetectorOptions dopt;
  dopt.backend = backend;
  dopt.threads = 1;
  auto det = Detector::Create(bytes.data(), bytes.size(), dopt);
  if (!det.ok()) {
    s.error = det.status().ToString();
    return s;
  }
  s.used = (*det)->info().backend;
  const std::vector<uint8_t> px = MakeFrame(640, 480, 4);
  const ImageView view{px.data(), 640, 480, PixelFormat::kRGBA8, 0};
  std::vector<double> pre, net, post, total, around;
  for (int r = 0; r < runs + 2; ++r) {
    const double t0 = NowMs();
    auto d = (*det)->Detect(view, {});
    const double t1 = NowMs();
    if (!d.ok()) {
      s.error = d.status().ToString();
      return s;
    }
    if (r < 2) continue;
    const Timings& tm = (*d)->timings;
    pre.push_back(tm.preprocess_ms);
    net.push_back(tm.network_ms);
    post.push_back(tm.postprocess_ms);
    total.push_back(tm.total_ms);
    around.push_back(t1 - t0);
    s.score = (*d)->score;
  }
  s.pre = Median(pre);
  s.net = Median(net);
  s.post = Median(post);
  s.total = Median(total);
  s.around = Median(around);
  return s;
}

}  // namespace

int RunFrame(const FrameOptions& opt) {
  const int missing = PreprocessCases(opt);
  if (missing < 0) return 1;
  if (!opt.model.empty()) {
    std::vector<uint8_t> bytes;
    if (!ReadFile(opt.model, &bytes)) {
      std::printf("cannot read %s\n", opt.model.c_str());
      return 1;
    }
    std::printf("Detect 640x480 RGBA, %s, 1 thread, median of %d runs (stage times: wall clock "
                "from the core; 'around': %s clock around Detect)\n",
                opt.model.c_str(), opt.runs, CpuClock() ? "CPU" : "wall");
    std::printf("  %-9s %-9s %10s %10s %10s %10s %10s %7s %10s\n", "backend", "used", "prep_ms",
                "net_ms", "post_ms", "total_ms", "around_ms", "ratio", "score");
    std::vector<DetectStats> rows;
    double fastest = 0;
    for (const std::string& b : SplitList(opt.backends)) {
      rows.push_back(DetectCase(bytes, b, opt.runs));
      const DetectStats& s = rows.back();
      if (s.error.empty() && (fastest == 0 || s.around < fastest)) fastest = s.around;
    }
    bool failed = false;
    for (const DetectStats& s : rows) {
      if (!s.error.empty()) {
        std::printf("  %-9s unavailable: %s\n", s.backend.c_str(), s.error.c_str());
        failed = true;
        continue;
      }
      std::printf("  %-9s %-9s %10.3f %10.3f %10.3f %10.3f %10.3f %6.2fx %10.6f\n",
                  s.backend.c_str(), s.used.c_str(), s.pre, s.net, s.post, s.total, s.around,
                  s.around / fastest, s.score);
    }
    if (failed && rows.size() == 1) return 1;
  }
  return missing > 0 ? 1 : 0;
}

}  // namespace flawlens::bench
