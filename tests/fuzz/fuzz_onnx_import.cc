// The ONNX importer (tools/onnx/onnx_import.cc, compiled into this target) on
// hostile .onnx bytes. Input layout:
//
//   u8 W, u8 H    network input size W % 65 x H % 65; either 0: the model's own
//   u8 sel0       the output: tensor sel0 % n of the n tensors nodes compute
//   u8 sel1       bit 7 set: a second output, tensor (sel1 & 127) % n
//   rest          the .onnx protobuf
//
// Every outcome must be a Status: no crash, leak, hang or sanitizer report.
// A model that imports has been written and re-loaded by LoadModel; its graph
// is then planned by the executor (when its values fit in 64 MiB) and, when
// small, run on a zero input.
#include <cstdint>
#include <string>
#include <vector>

#include "model/model.h"
#include "nn/executor.h"
#include "kernels/backends.h"
#include "onnx/onnx_import.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  const uint8_t* model = data + 4;
  const size_t model_size = size - 4;
  flawlens::onnx_import::ImportOptions options;
  options.input_w = data[0] % 65;
  options.input_h = data[1] % 65;
  if (options.input_w == 0 || options.input_h == 0) options.input_w = options.input_h = 0;
  auto tensors = flawlens::onnx_import::ListOnnxTensors(model, model_size);
  if (tensors.ok() && !tensors->empty()) {
    const size_t n = tensors->size();
    options.outputs.push_back((*tensors)[data[2] % n].tensor);
    if (data[3] & 0x80) options.outputs.push_back((*tensors)[(data[3] & 127) % n].tensor);
  } else {
    options.outputs.push_back("y");
  }
  auto result = flawlens::onnx_import::ImportOnnx(model, model_size, options);
  if (!result.ok()) return 0;
  if (result->bytes.empty()) __builtin_trap();  // success means a written model
  auto loaded = flawlens::LoadModel(result->bytes.data(), result->bytes.size());
  if (!loaded.ok()) __builtin_trap();  // ImportOnnx checked that it loads
  const flawlens::Graph& graph = (*loaded)->graph;
  // Planning allocates the activations (up to the format's 1 GiB arena): only
  // for graphs whose values fit in 64 MiB, so that the fuzzer's RSS stays
  // bounded; the executor's limits have their own targets.
  int64_t floats = 0;
  for (const flawlens::Shape& s : graph.shapes) floats += s.elements();
  if (floats > (int64_t{16} << 20)) return 0;
  auto executor = flawlens::CreateExecutor(graph);
  if (!executor.ok()) return 0;
  if (graph.Macs() < (int64_t{1} << 22) && graph.input.elements() <= 64 * 64 * 3) {
    std::fill((*executor)->input(), (*executor)->input() + graph.input.elements(), 0.0f);
    (*executor)->Run();
  }
  return 0;
}
