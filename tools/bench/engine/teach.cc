// engine_bench teach --model BACKBONE: teaching as the page's worker does it,
// through the same C++ facade the wasm module binds (src/api/web_teacher.h):
// begin (load the backbone), add (every frame: frame checks + preprocessing +
// backbone + projection), fit (density, calibration, model file), load (the
// taught bytes as a detector, as the page does next); teach = add + fit + load.
// One thread (the page's worker). Frames: a generated machined part (brushed
// texture, a bore, light drift, sensor noise) moving a little, different
// every frame.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "api/web_teacher.h"
#include "bench_util.h"
#include "engine_bench.h"
#include "flawlens/detector.h"

namespace flawlens::bench {
namespace {

// mulberry32: deterministic numbers in [0, 1).
struct Mulberry {
  uint32_t a;
  double operator()() {
    a += 0x6d2b79f5u;
    uint32_t t = (a ^ (a >> 15)) * (1u | a);
    t = (t + ((t ^ (t >> 7)) * (61u | t))) ^ t;
    return ((t ^ (t >> 14))) / 4294967296.0;
  }
};

std::vector<uint8_t> PartFrame(int i, int w, int h) {
  Mulberry r{static_cast<uint32_t>(1000 + i)};
  const double dx = 6 * (r() - 0.5), dy = 6 * (r() - 0.5), light = 0.9 + 0.2 * r();
  const double cx = w / 2.0 + dx, cy = h / 2.0 + dy, rad = std::min(w, h) * 0.12;
  std::vector<uint8_t> px(static_cast<size_t>(w) * h * 4);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      const double u = x - dx, v = y - dy;
      double g = 120 + 18 * std::sin(0.9 * u + 0.05 * v) + 10 * std::sin(0.031 * u * 7.3);
      const double d = std::hypot(x - cx, y - cy);
      if (d < rad) g = 45 + 20 * (d / rad);
      else if (d < rad + 4) g = 200;
      g = g * light * (0.85 + 0.15 * (double(x) / w)) + 12 * (r() - 0.5);
      uint8_t* p = &px[(static_cast<size_t>(y) * w + x) * 4];
      p[0] = static_cast<uint8_t>(std::clamp(g + 6, 0.0, 255.0));
      p[1] = static_cast<uint8_t>(std::clamp(g, 0.0, 255.0));
      p[2] = static_cast<uint8_t>(std::clamp(g - 6, 0.0, 255.0));
      p[3] = 255;
    }
  }
  return px;
}

bool Fail(const char* what, const std::string& err) {
  if (err.empty()) return false;
  std::fprintf(stderr, "engine_bench teach: %s: %s\n", what, err.c_str());
  return true;
}

}  // namespace

int RunTeach(const TeachOptions& opt) {
  std::vector<uint8_t> model;
  if (!ReadFile(opt.model, &model)) {
    std::fprintf(stderr, "engine_bench teach: cannot read %s\n", opt.model.c_str());
    return 1;
  }
  const int w = opt.width, h = opt.height;
  if (w < 16 || h < 16 || opt.frames < 1 || opt.runs < 1) {
    std::fprintf(stderr, "engine_bench teach: --width/--height >= 16, --frames/--runs >= 1\n");
    return 2;
  }
  const double g0 = NowMs();
  std::vector<std::vector<uint8_t>> frames;
  for (int i = 0; i < opt.frames; ++i) frames.push_back(PartFrame(i, w, h));
  std::printf("teach: %d frames of %dx%d RGBA (generated in %.0f ms), model %s (%zu bytes), %s clock\n",
              opt.frames, w, h, NowMs() - g0, opt.model.c_str(), model.size(),
              CpuClock() ? "CPU" : "wall");
  const std::string begin_options =
      opt.dims > 0 ? "{\"dims\":" + std::to_string(opt.dims) + "}" : "{}";
  std::vector<double> adds, fits, loads, teaches;
  for (int run = 0; run < opt.runs; ++run) {
    WebTeacher t;
    const double a = NowMs();
    std::memcpy(t.buffer(static_cast<double>(model.size())), model.data(), model.size());
    if (Fail("begin", t.begin(begin_options))) return 1;
    const double b = NowMs();
    for (const auto& px : frames) {
      std::memcpy(t.buffer(static_cast<double>(px.size())), px.data(), px.size());
      if (Fail("addFrame", t.addFrame(w, h, "rgba", 0, 0, 0, 0, ""))) return 1;
    }
    const double c = NowMs();
    if (Fail("fit", t.fit("{\"name\":\"bench\"}", [](float) {}))) return 1;
    const double d = NowMs();
    auto det = Detector::Create(t.model(), t.modelSize(), {});
    const double e = NowMs();
    if (!det.ok()) {
      Fail("load", det.status().ToString());
      return 1;
    }
    const ImageView view{frames[0].data(), w, h, PixelFormat::kRGBA8, 0};
    auto probe = (*det)->Detect(view, {});
    if (!probe.ok()) {
      Fail("detect", probe.status().ToString());
      return 1;
    }
    adds.push_back(c - b);
    fits.push_back(d - c);
    loads.push_back(e - d);
    teaches.push_back(e - b);
    std::printf("run %d: begin %.0f ms, add %.0f ms (%.1f ms/frame), fit %.0f ms, load %.0f ms, "
                "teach %.0f ms; %d frames, model %zu bytes, detect %.1f ms (score %.2f)\n"
                "  info %s\n  result %s\n",
                run + 1, b - a, c - b, (c - b) / opt.frames, d - c, e - d, e - b, t.images(),
                t.modelSize(), (*probe)->timings.total_ms, (*probe)->score, t.info().c_str(),
                t.result().c_str());
  }
  {
    // The frame checks alone: a black frame is refused after them, before any
    // preprocessing.
    WebTeacher t;
    std::memcpy(t.buffer(static_cast<double>(model.size())), model.data(), model.size());
    if (Fail("begin", t.begin(begin_options))) return 1;
    const std::vector<uint8_t> black(static_cast<size_t>(w) * h * 4, 0);
    const double a = NowMs();
    for (int i = 0; i < opt.frames; ++i) {
      std::memcpy(t.buffer(static_cast<double>(black.size())), black.data(), black.size());
      const std::string err = t.addFrame(w, h, "rgba", 0, 0, 0, 0, "");
      if (err.rfind("black_frame", 0) != 0) {
        Fail("black frame", err.empty() ? "accepted" : err);
        return 1;
      }
    }
    std::printf("frame checks + copy into the buffer: %.2f ms per %dx%d frame (a refused black "
                "frame)\n", (NowMs() - a) / opt.frames, w, h);
  }
  std::printf("median of %d: add %.0f ms, fit %.0f ms, load %.0f ms, teach (add + fit + load) "
              "%.0f ms for %d frames\n",
              opt.runs, Median(adds), Median(fits), Median(loads), Median(teaches), opt.frames);
  return 0;
}

}  // namespace flawlens::bench
