// ONNX model -> flawlens backbone. See onnx_import.h.
//
// Steps: parse the ModelProto (Debian's onnx_proto), index the tensors every
// node produces, walk back from the requested outputs (cycles and tensors
// nobody produces are errors), find SiLU / hard-swish written as x * gate(x),
// then map every node on the path onto engine ops in topological order.
// Tensors are NCHW in ONNX and NHWC in the engine: convolution weights are
// permuted OIHW -> OHWI, per-channel constants are checked against axis 1.
// Constant scales / shifts (BatchNormalization, Mul / Add / Sub / Div by a
// per-channel constant) and activations fold into the producing convolution
// when nothing else reads its output; otherwise they become their own nodes.
#include "onnx/onnx_import.h"

#include <onnx/onnx_pb.h>

#include <exception>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/limits.h"
#include "onnx/onnx_import_internal.h"

namespace flawlens::onnx_import {
namespace internal {

Result<ImportResult> Importer::Finish() {
  std::vector<int> outs;
  for (const std::string& o : options_.outputs) {
    const int v = graph_.ValueOf(Resolve(o));
    if (v < 0) return Error(ErrorCode::kInternal, "output '" + Printable(o) + "' was not computed");
    outs.push_back(v);
  }
  import::EngineGraph::Card card;
  card.name = options_.name.empty() ? model_.graph().name() : options_.name;
  card.description = "Frozen features imported from an ONNX model";
  card.origin["source"] = options_.origin;
  card.origin["producer"] =
      model_.producer_name() +
      (model_.producer_version().empty() ? "" : " " + model_.producer_version());
  card.origin["opset"] = opset_;
  ImportResult result;
  FLAWLENS_RETURN_IF_ERROR(graph_.Finish(options_, outs, card, &result));
  result.opset = opset_;
  result.onnx_nodes_used = 0;
  for (int id : order_) result.onnx_nodes_used += nodes_[id]->op_type() != "Constant";
  return result;
}

Result<ImportResult> Importer::Run(const uint8_t* data, size_t size) {
  FLAWLENS_RETURN_IF_ERROR(import::CheckOutputList(kCommand, options_.outputs, "tensor"));
  if ((options_.input_w == 0) != (options_.input_h == 0) || options_.input_w < 0 ||
      options_.input_h < 0 || options_.input_w > kMaxModelInputSide ||
      options_.input_h > kMaxModelInputSide) {
    return Error(ErrorCode::kInvalidArgument,
                 "input size must be in [1, " + std::to_string(kMaxModelInputSide) + "]");
  }
  if (size > kMaxOnnxBytes) {
    return Error(ErrorCode::kLimitExceeded,
                 "the model is larger than " + std::to_string(kMaxOnnxBytes) + " bytes");
  }
  if (size == 0) return Error(ErrorCode::kTruncated, "the model file is empty");
  if (!model_.ParseFromArray(data, static_cast<int>(size))) {
    return Error(ErrorCode::kBadHeader,
                 "not an ONNX model (the protobuf does not parse: truncated or corrupt)");
  }
  if (!model_.has_graph()) return Error(ErrorCode::kBadHeader, "the model has no graph");
  for (const onnx::OperatorSetIdProto& o : model_.opset_import()) {
    if (o.domain().empty() || o.domain() == "ai.onnx") opset_ = o.version();
  }
  if (opset_ < 1 || opset_ > kMaxOpset) {
    return Error(ErrorCode::kUnsupported,
                 "opset " + std::to_string(opset_) + " (import-onnx reads opsets 1 to " +
                     std::to_string(kMaxOpset) + "; re-export with opset_version=17)");
  }
  FLAWLENS_RETURN_IF_ERROR(Index());
  FLAWLENS_RETURN_IF_ERROR(Walk());
  for (const std::string& o : options_.outputs) graph_.outputs.insert(Resolve(o));
  for (const std::string& o : options_.outputs) {
    const std::string r = Resolve(o);
    if (IsConst(r))
      return Error(ErrorCode::kUnsupported,
                   "output '" + Printable(o) + "' is a constant, not a feature map");
    if (graph_inputs_.count(r))
      return Error(ErrorCode::kUnsupported,
                   "output '" + Printable(o) + "' is the network input itself");
  }
  FindPatterns();
  for (int id : order_) {
    FLAWLENS_RETURN_IF_ERROR(Emit(id));
    if (graph_.nodes.size() > static_cast<size_t>(kMaxNodes)) {
      return Error(ErrorCode::kLimitExceeded,
                   "the imported graph has more than " + std::to_string(kMaxNodes) + " nodes");
    }
  }
  if (input_name_.empty())
    return Error(ErrorCode::kBadGraph, "no graph input on the path to the outputs");
  for (const std::string& o : options_.outputs) {
    const int v = graph_.ValueOf(Resolve(o));
    if (v < 0) {
      return Error(ErrorCode::kUnsupported,
                   "output '" + Printable(o) + "' is a secondary output of " +
                       Label(producer_.at(Resolve(o))) +
                       ", which import-onnx does not compute (only a node's first output)");
    }
    if (v == 0) {
      return Error(ErrorCode::kUnsupported,
                   "output '" + Printable(o) + "' is the network input itself, not a feature map");
    }
  }
  return Finish();
}

}  // namespace internal

using internal::Error;
using internal::Importer;
using import::Printable;

Result<ImportResult> ImportOnnx(const uint8_t* data, size_t size, const ImportOptions& options) {
  Result<ImportResult> result = Status(ErrorCode::kInternal, "import-onnx: not run");
  {
    auto importer = std::make_unique<Importer>(options);
    try {
      result = importer->Run(data, size);
    } catch (const std::exception& e) {
      // Allocation failure or a protobuf check: a backstop, never expected.
      return Error(ErrorCode::kBadHeader, std::string("malformed model: ") + e.what());
    }
  }
  if (!result.ok()) return result;
  FLAWLENS_RETURN_IF_ERROR(import::WriteChecked(internal::kCommand, &*result));
  return result;
}

Result<ImportResult> ImportOnnxFile(const std::string& path, const ImportOptions& options) {
  Result<std::vector<uint8_t>> data =
      import::ReadFileBytes(internal::kCommand, path, kMaxOnnxBytes, "model");
  if (!data.ok()) return data.status();
  ImportOptions opts = options;
  if (opts.name.empty()) opts.name = import::FileStem(path);
  return ImportOnnx(data->data(), data->size(), opts);
}

Result<std::vector<TensorEntry>> ListOnnxTensors(const uint8_t* data, size_t size) {
  if (size > kMaxOnnxBytes)
    return Error(ErrorCode::kLimitExceeded,
                 "the model is larger than " + std::to_string(kMaxOnnxBytes) + " bytes");
  onnx::ModelProto model;
  if (size == 0 || !model.ParseFromArray(data, static_cast<int>(size)))
    return Error(ErrorCode::kBadHeader, "not an ONNX model (the protobuf does not parse)");
  std::vector<TensorEntry> out;
  for (const onnx::NodeProto& n : model.graph().node()) {
    if (n.op_type() == "Constant") continue;
    for (const std::string& t : n.output()) {
      if (!t.empty()) out.push_back({Printable(t), Printable(n.op_type()), Printable(n.name())});
    }
  }
  return out;
}

}  // namespace flawlens::onnx_import
