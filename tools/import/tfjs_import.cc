// TF.js graph model -> flawlens backbone. See tfjs_import.h.
//
// Steps: parse model.json (GraphDef nodes + weights manifest; tfjs_parse.cc),
// decode the weight shards into constants (tfjs_weights.cc), walk back from
// the requested outputs, find the hard-swish / hard-sigmoid patterns TF leaves
// unfused, then map every node on the path onto engine ops in topological
// order (tfjs_emit.cc), folding constant scales / shifts and activations into
// the producing convolution when that convolution feeds nothing else.
#include "import/tfjs_import.h"

#include <cstdio>
#include <exception>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "core/limits.h"
#include "import/tfjs_internal.h"

namespace flawlens::tfjs {
namespace internal {

Result<ImportResult> Importer::Run(const std::string& text, const ShardReader& read_shard) {
  FLAWLENS_RETURN_IF_ERROR(import::CheckOutputList(kCommand, options_.outputs, "node"));
  if (options_.input_w < 1 || options_.input_h < 1 || options_.input_w > kMaxModelInputSide ||
      options_.input_h > kMaxModelInputSide) {
    return Error(ErrorCode::kInvalidArgument,
                 "input size must be in [1, " + std::to_string(kMaxModelInputSide) + "]");
  }
  if (text.size() > kMaxModelJsonBytes) {
    return Error(ErrorCode::kLimitExceeded,
                 "model.json is larger than " + std::to_string(kMaxModelJsonBytes) + " bytes");
  }
  if (!JsonDepthAtMost(text, 64))
    return Error(ErrorCode::kBadHeader, "model.json nests deeper than 64 levels");
  doc_ = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc_.is_discarded()) return Error(ErrorCode::kBadHeader, "model.json is not valid JSON");
  if (!doc_.is_object()) return Error(ErrorCode::kBadHeader, "model.json is not a JSON object");
  auto format = doc_.find("format");
  if (format != doc_.end() && format->is_string() && format->get<std::string>() != "graph-model") {
    return Error(ErrorCode::kUnsupported, "format '" + format->get<std::string>() +
                                              "' is not supported (only TF.js graph models)");
  }
  auto topology = doc_.find("modelTopology");
  auto manifest = doc_.find("weightsManifest");
  if (topology == doc_.end() || manifest == doc_.end()) {
    return Error(ErrorCode::kBadHeader, "model.json needs 'modelTopology' and 'weightsManifest'");
  }
  Status st = ParseNodes(*topology, &nodes_, &index_);
  if (!st.ok()) return st;
  st = LoadWeights(*manifest, read_shard, &consts_);
  if (!st.ok()) return st;
  st = CheckConstShapes(nodes_, consts_);
  if (!st.ok()) return st;
  st = Walk();
  if (!st.ok()) return st;
  for (const std::string& o : options_.outputs) graph_.outputs.insert(Resolve(o));
  for (int id : order_) {
    const TfNode& n = nodes_[id];
    if (n.op == "Const" && !consts_.count(n.name)) {
      return Error(ErrorCode::kBadHeader, "const '" + n.name + "' has no weights in the manifest");
    }
  }
  for (const std::string& o : options_.outputs) {
    const std::string r = Resolve(o);
    auto it = index_.find(r);
    if (it != index_.end() && (nodes_[it->second].op == "Const")) {
      return Error(ErrorCode::kUnsupported, "output '" + o + "' is a constant, not a feature map");
    }
  }
  FindPatterns();
  for (int id : order_) {
    st = Emit(nodes_[id]);
    if (!st.ok()) return st;
    if (graph_.nodes.size() > static_cast<size_t>(kMaxNodes)) {
      return Error(ErrorCode::kLimitExceeded,
                   "the imported graph has more than " + std::to_string(kMaxNodes) + " nodes");
    }
  }
  if (!have_input_)
    return Error(ErrorCode::kBadGraph, "no input placeholder on the path to the outputs");
  for (const std::string& o : options_.outputs) {
    const std::string r = Resolve(o);
    if (graph_.ValueOf(r) <= 0) {
      return Error(ErrorCode::kUnsupported,
                   "output '" + o + "' is the network input itself, not a feature map");
    }
  }
  return Finish();
}


}  // namespace internal

using internal::Error;
using internal::Importer;


Result<ImportResult> ImportTfjs(const std::string& model_json, const ShardReader& read_shard,
                                const ImportOptions& options) {
  Importer importer(options);
  Result<ImportResult> result = Status(ErrorCode::kInternal, "import-tfjs: not run");
  try {
    result = importer.Run(model_json, read_shard);
  } catch (const std::exception& e) {
    // The code above checks types before every access; this is a backstop.
    return Error(ErrorCode::kBadHeader, std::string("malformed model.json: ") + e.what());
  }
  if (!result.ok()) return result;
  FLAWLENS_RETURN_IF_ERROR(import::WriteChecked(internal::kCommand, &*result));
  return result;
}

Result<ImportResult> ImportTfjsFile(const std::string& model_json_path,
                                    const ImportOptions& options) {
  auto read_file = [](const std::string& path, uint64_t limit, const std::string& what) {
    return import::ReadFileBytes(internal::kCommand, path, limit, what);
  };
  Result<std::vector<uint8_t>> text = read_file(model_json_path, kMaxModelJsonBytes, "model.json");
  if (!text.ok()) return text.status();
  const size_t slash = model_json_path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "" : model_json_path.substr(0, slash + 1);
  ImportOptions opts = options;
  if (opts.name.empty()) opts.name = import::FileStem(model_json_path);
  ShardReader reader = [&](const std::string& path) -> Result<std::vector<uint8_t>> {
    if (path.empty() || path[0] == '/' || path.find('\0') != std::string::npos || path == ".." ||
        path.rfind("../", 0) == 0 || path.find("/../") != std::string::npos) {
      return Error(
          ErrorCode::kInvalidArgument,
          "weight shard path '" + path + "' must be relative to model.json and stay in its folder");
    }
    Result<std::vector<uint8_t>> data = read_file(dir + path, kMaxWeightBytes, "weight shard");
    if (!data.ok()) {
      return Error(data.status().code(),
                   "weight shard '" + path + "' (next to model.json): " +
                       data.status().message().substr(std::string(internal::kCommand).size() + 2));
    }
    return data;
  };
  return ImportTfjs(std::string(text->begin(), text->end()), reader, opts);
}

}  // namespace flawlens::tfjs
