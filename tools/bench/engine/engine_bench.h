// engine_bench: the engine without a browser, natively and in wasm under node
// (the same source; see tools/bench/README.md). One command per case:
//   nets    the anchor nets built from one backend's kernels (nets.cc)
//   model   a model file's graph node by node, then through the Executor (model.cc)
//   frame   preprocessing of webcam / photo frames, and Detect() per backend (frame.cc)
//   teach   teaching from frames as the page does, through WebTeacher (teach.cc)
#pragma once

#include <string>

namespace flawlens::bench {

struct NetsOptions {
  std::string backend = "simd";  // simd | ref | xnnpack
  std::string nets = "AB";       // any of A, B, M
  int runs = 0;                  // 0: 200 for A, 50 for B, 30 for M
  int warmup = -1;               // -1: 20 for A, 5 otherwise (plus >= 1 s)
  bool check = false;            // max abs diff against the reference kernels
  std::string engine = "flawlens-kernels";  // the RESULT line's engine name
};
int RunNets(const NetsOptions& options);

struct ModelOptions {
  std::string path;
  std::string backend = "simd";
  int runs = 30;
  bool check = false;
  std::string engine = "flawlens-kernels";
};
int RunModel(const ModelOptions& options);

struct FrameOptions {
  std::string model;             // optional: Detect() on a 640x480 RGBA frame
  std::string backends = "auto"; // Detect() with each of these (comma-separated)
  std::string cases;             // substring filter on the preprocessing cases
  std::string save_dir, compare_dir;
  int runs = 30;
};
int RunFrame(const FrameOptions& options);

struct TeachOptions {
  std::string model;             // a backbone file or a model taught on one
  int frames = 100, width = 640, height = 480, runs = 3, dims = 0;
};
int RunTeach(const TeachOptions& options);

}  // namespace flawlens::bench
