// engine_bench: the engine's benchmark without a browser (see engine_bench.h
// and tools/bench/README.md). A benchmark, not a test: it prints times and
// ratios; only a failed check or a failing step makes the exit status 1.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "bench_util.h"
#include "engine_bench.h"

namespace {

constexpr const char* kUsage =
    "usage: engine_bench nets  [--backend simd|ref|xnnpack] [--net A|B|M|ABM] [--runs N]\n"
    "                          [--warmup N] [--check] [--cpu] [--engine NAME]\n"
    "       engine_bench model FILE [--backend simd|ref|xnnpack] [--runs N] [--check] [--cpu]\n"
    "                          [--engine NAME]\n"
    "       engine_bench frame [--model FILE] [--backends auto,ref,simd,xnnpack] [--runs N]\n"
    "                          [--cases SUBSTRING] [--save DIR] [--compare DIR] [--cpu]\n"
    "       engine_bench teach --model BACKBONE [--frames N] [--width W] [--height H] [--runs N]\n"
    "                          [--dims D] [--cpu]\n";

int Usage() {
  std::fputs(kUsage, stderr);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace flawlens::bench;
  if (argc < 2) return Usage();
  const std::string cmd = argv[1];
  NetsOptions nets;
  ModelOptions model;
  FrameOptions frame;
  TeachOptions teach;
  int i = 2;
  if (cmd == "model") {
    if (argc < 3 || argv[2][0] == '-') return Usage();
    model.path = argv[i++];
  }
  for (; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    auto text = [&]() { return std::string(argv[++i]); };
    auto number = [&]() { return std::atoi(argv[++i]); };
    if (a == "--cpu") {
      UseCpuClock(true);
    } else if (a == "--check" && (cmd == "nets" || cmd == "model")) {
      nets.check = model.check = true;
    } else if (!has_value) {
      return Usage();
    } else if (a == "--runs") {
      nets.runs = number();
      model.runs = frame.runs = teach.runs = nets.runs;
    } else if (a == "--backend" && (cmd == "nets" || cmd == "model")) {
      nets.backend = model.backend = text();
    } else if (a == "--engine" && (cmd == "nets" || cmd == "model")) {
      nets.engine = model.engine = text();
    } else if (a == "--net" && cmd == "nets") {
      nets.nets = text();
    } else if (a == "--warmup" && cmd == "nets") {
      nets.warmup = number();
    } else if (a == "--model" && (cmd == "frame" || cmd == "teach")) {
      frame.model = teach.model = text();
    } else if (a == "--backends" && cmd == "frame") {
      frame.backends = text();
    } else if (a == "--cases" && cmd == "frame") {
      frame.cases = text();
    } else if (a == "--save" && cmd == "frame") {
      frame.save_dir = text();
    } else if (a == "--compare" && cmd == "frame") {
      frame.compare_dir = text();
    } else if (a == "--frames" && cmd == "teach") {
      teach.frames = number();
    } else if (a == "--width" && cmd == "teach") {
      teach.width = number();
    } else if (a == "--height" && cmd == "teach") {
      teach.height = number();
    } else if (a == "--dims" && cmd == "teach") {
      teach.dims = number();
    } else {
      return Usage();
    }
  }
  if (cmd == "nets") return RunNets(nets);
  if (cmd == "model") {
    if (model.runs < 1) model.runs = 30;
    return RunModel(model);
  }
  if (cmd == "frame") {
    if (frame.runs < 1) frame.runs = 30;
    return RunFrame(frame);
  }
  if (cmd == "teach") {
    if (teach.model.empty()) {
      std::fputs("engine_bench teach: --model BACKBONE is required (tools/backbones/convert.sh "
                 "OUT_DIR builds one)\n", stderr);
      return 2;
    }
    if (teach.runs < 1) teach.runs = 3;
    return RunTeach(teach);
  }
  return Usage();
}
