// Structure-aware model fuzzing: the input is the model's JSON sections as
// text, separated by NUL bytes,
//
//   graph \0 preprocess \0 postprocess \0 calibration \0 tensors \0 flags...
//
// where `tensors` is {"name": [dims...], ...}. The harness writes a correctly
// framed safetensors file (valid length prefix, offsets and finite weights,
// He-uniform so activations stay O(1)), so mutations land in graph
// validation, the config parsers, buffer planning and the kernels instead of
// the container checks (fuzz_model_loader covers those).
//
// Every model that loads runs on the reference backend and on the SIMD
// backend (and on XNNPACK when flags bit 0 is set and the build has it) with
// the same bounded input; outputs must agree (a differential check for silent
// wrong answers, not just crashes).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "flawlens/detector.h"
#include "fuzz_common.h"
#include "model/model.h"
#include "nn/backend.h"
#include "kernels/backends.h"
#include "test_models.h"

namespace {

using Json = nlohmann::json;

// Per-iteration cost guards (the loader accepts far larger models).
constexpr int64_t kMaxDiffMacs = 4'000'000;
constexpr int64_t kMaxDiffActivations = 2'000'000;  // summed over all values
constexpr int64_t kMaxTensorFloats = 1 << 20;       // summed over all tensors

std::vector<std::string> SplitNul(const uint8_t* data, size_t size, size_t max_parts) {
  std::vector<std::string> parts(1);
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == 0 && parts.size() < max_parts) {
      parts.emplace_back();
    } else {
      parts.back().push_back(static_cast<char>(data[i]));
    }
  }
  return parts;
}

bool Close(float a, float b, float scale) {
  return std::fabs(a - b) <= 1e-3f + 1e-2f * scale;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<std::string> parts = SplitNul(data, size, 6);
  if (parts.size() < 5) return 0;
  flawlens::ModelSpec spec;
  spec.graph_json = parts[0];
  spec.preprocess_json = parts[1];
  spec.postprocess_json = parts[2];
  spec.calibration_json = parts[3];
  spec.card_json = R"({"name":"fuzz"})";
  const std::string flags = parts.size() > 5 ? parts[5] : std::string();
  const uint8_t f0 = flags.empty() ? 0 : static_cast<uint8_t>(flags[0]);

  // Tensors: declared shapes, deterministic He-uniform data.
  Json tensors = Json::parse(parts[4], nullptr, /*allow_exceptions=*/false);
  if (!tensors.is_object()) return 0;
  int64_t total = 0;
  flawlens::testing::Rng rng(0x5eed ^ f0);
  for (auto it = tensors.begin(); it != tensors.end(); ++it) {
    const Json& shape = it.value();
    if (!shape.is_array() || shape.size() > 4) return 0;
    flawlens::ModelTensor t;
    t.name = it.key();
    int64_t n = 1;
    for (const Json& d : shape) {
      if (!d.is_number_integer()) return 0;
      const int64_t v = d.get<int64_t>();
      if (v < 1 || v > kMaxTensorFloats) return 0;
      n *= v;
      if (n > kMaxTensorFloats) return 0;
      t.shape.push_back(v);
    }
    total += n;
    if (total > kMaxTensorFloats) return 0;
    const int64_t fan_in = t.shape.empty() ? 1 : std::max<int64_t>(1, n / t.shape[0]);
    const float bound = std::sqrt(3.0f / static_cast<float>(fan_in));
    t.data.resize(static_cast<size_t>(n));
    for (float& v : t.data) v = bound * rng.Uniform();
    // Positive data for names that must be > 0 (postprocess cell_std).
    if (t.name.find("std") != std::string::npos) {
      for (float& v : t.data) v = 0.5f + std::fabs(v);
    }
    spec.tensors.push_back(std::move(t));
  }
  const std::vector<uint8_t> bytes = flawlens::WriteModel(spec);

  auto model = flawlens::LoadModel(bytes.data(), bytes.size());
  if (!model.ok()) return 0;
  const flawlens::Graph& g = (*model)->graph;
  if (g.Macs() > kMaxDiffMacs) return 0;
  int64_t act = 0;
  for (const flawlens::Shape& s : g.shapes) act += s.elements();
  if (act > kMaxDiffActivations) return 0;

  const char* backends[] = {"ref", "simd", "xnnpack"};
  const int n_backends = ((f0 & 1) && flawlens::HaveXnnpack()) ? 3 : 2;
  std::unique_ptr<flawlens::Detector> dets[3];
  for (int b = 0; b < n_backends; ++b) {
    auto d = flawlens::Detector::Create(bytes.data(), bytes.size(), {backends[b], 1});
    if (!d.ok()) {
      // Loading must not depend on the backend (kUnsupported falls back).
      if (b > 0) {
        std::fprintf(stderr, "backend %s failed where ref loaded: %s\n", backends[b],
                     d.status().ToString().c_str());
        __builtin_trap();
      }
      return 0;
    }
    dets[b] = std::move(d).value();
  }

  // Raw network, bounded input.
  const flawlens::Shape& in = g.input;
  std::vector<float> input(static_cast<size_t>(in.elements()));
  for (float& v : input) v = rng.Uniform();
  std::vector<float> out[3];
  for (int b = 0; b < n_backends; ++b) {
    out[b].resize(dets[b]->network_output_count());
    flawlens::Status st =
        dets[b]->RunNetwork(input.data(), input.size(), out[b].data(), out[b].size());
    if (!st.ok()) __builtin_trap();
  }
  float scale = 0;
  bool finite = true;
  for (float v : out[0]) {
    if (!std::isfinite(v)) finite = false;
    scale = std::max(scale, std::fabs(v));
  }
  if (finite && scale < 1e6f) {
    for (int b = 1; b < n_backends; ++b) {
      for (size_t i = 0; i < out[0].size(); ++i) {
        if (!Close(out[0][i], out[b][i], scale)) {
          std::fprintf(stderr, "backend %s disagrees with ref at output %zu: %.9g vs %.9g "
                       "(max |ref| %g)\n", backends[b], i, out[b][i], out[0][i], scale);
          __builtin_trap();
        }
      }
    }
  }

  // Full detection on a small image (preprocess + postprocess).
  std::vector<uint8_t> px(17 * 11 * 4);
  for (size_t i = 0; i < px.size(); ++i) {
    px[i] = i + 1 < flags.size() ? static_cast<uint8_t>(flags[i + 1]) : static_cast<uint8_t>(i * 29);
  }
  const auto fmt = (f0 & 2) ? flawlens::PixelFormat::kRGBA8 : flawlens::PixelFormat::kGray8;
  for (int b = 0; b < n_backends; ++b) {
    auto r = dets[b]->Detect({px.data(), 17, 11, fmt, 0});
    if (r.ok()) {
      if (!std::isfinite((*r)->score)) __builtin_trap();  // must be kNonFinite instead
      for (float v : (*r)->map) {
        if (!std::isfinite(v)) __builtin_trap();
      }
    }
  }
  return 0;
}
