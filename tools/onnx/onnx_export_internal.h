// Internals of the ONNX exporter (onnx_export.h), shared by its parts:
//   onnx_export.cc           the engine graph, preprocessing and scoring -> ONNX
//   onnx_export_metadata.cc  anomalib's metadata (metadata.json / rt_info), the
//                            input modes
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "onnx/onnx_export.h"

namespace flawlens::onnx_export::internal {

using Json = nlohmann::json;

// The shortest decimal that reads back as the same float.
std::string ShortFloat(float v);
// ShortFloat's value as a JSON number.
Json FloatJson(float v);

// anomalib's metadata for the exported model: `in` the network input, `map`
// the anomaly map.
Json BuildMetadata(const Model& m, InputMode mode, const Shape& in, const Shape& map);

}  // namespace flawlens::onnx_export::internal
