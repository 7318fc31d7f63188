// WriteModel: ModelSpec -> canonical safetensors bytes (see model/FORMAT.md).
//
// Canonical means: header = {"__metadata__": {...}, then the tensors sorted by
// name}, compact JSON, padded with spaces to a multiple of 8 bytes (as the
// safetensors library does); tensor data F32 little-endian, contiguous, in
// name order. The writer does not validate: a spec with inconsistent shapes or
// data produces a file that LoadModel rejects (tests use that on purpose).
#include <algorithm>
#include <cstring>

#include "model/json_value.h"
#include "model/model.h"

namespace flawlens {

std::vector<uint8_t> WriteModel(const ModelSpec& spec) {
  std::vector<size_t> order(spec.tensors.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return spec.tensors[a].name < spec.tensors[b].name;
  });

  JsonValue meta = JsonValue::Object();
  meta.Set("format", "flawlens");
  // Version 2 only where it is needed (model.h): every other file stays
  // readable by version-1 readers.
  JsonValue pre;
  const bool keep_aspect =
      ParseJson(spec.preprocess_json.data(), spec.preprocess_json.size(), "preprocess", &pre).ok() &&
      pre.is_object() && pre.Find("geometry") && pre.Find("geometry")->is_string() &&
      pre.Find("geometry")->str() == "keep_aspect";
  meta.Set("format_version", keep_aspect ? "2" : "1");
  meta.Set("graph", spec.graph_json);
  meta.Set("preprocess", spec.preprocess_json);
  meta.Set("postprocess", spec.postprocess_json);
  meta.Set("calibration", spec.calibration_json);
  meta.Set("card", spec.card_json);

  std::string header = "{\"__metadata__\":" + meta.Dump();
  uint64_t offset = 0;
  for (size_t i : order) {
    const ModelTensor& t = spec.tensors[i];
    const uint64_t bytes = static_cast<uint64_t>(t.data.size()) * sizeof(float);
    JsonValue shape = JsonValue::Array();
    for (int64_t d : t.shape) shape.Push(d);
    JsonValue entry = JsonValue::Object();
    entry.Set("dtype", "F32");
    entry.Set("shape", std::move(shape));
    entry.Set("data_offsets", JsonValue::Array().Push(offset).Push(offset + bytes));
    header += "," + JsonValue(t.name).Dump() + ":" + entry.Dump();
    offset += bytes;
  }
  header += "}";
  header.append((8 - header.size() % 8) % 8, ' ');

  std::vector<uint8_t> out(8 + header.size() + offset);
  WriteHeaderLength(header.size(), out.data());
  std::memcpy(out.data() + 8, header.data(), header.size());
  uint8_t* p = out.data() + 8 + header.size();
  for (size_t i : order) {
    const ModelTensor& t = spec.tensors[i];
    if (!t.data.empty()) std::memcpy(p, t.data.data(), t.data.size() * sizeof(float));
    p += t.data.size() * sizeof(float);
  }
  return out;
}

}  // namespace flawlens
