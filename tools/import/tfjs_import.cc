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
  if (options_.outputs.empty())
    return Error(ErrorCode::kInvalidArgument, "no output node given (--outputs)");
  for (size_t i = 0; i < options_.outputs.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (options_.outputs[i] == options_.outputs[j]) {
        return Error(ErrorCode::kInvalidArgument,
                     "output '" + options_.outputs[i] + "' is listed twice");
      }
    }
  }
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
  for (const std::string& o : options_.outputs) outputs_.insert(Resolve(o));
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
  infos_.assign(1, ValueInfo{});
  for (int id : order_) {
    st = Emit(nodes_[id]);
    if (!st.ok()) return st;
    if (engine_.size() > static_cast<size_t>(kMaxNodes)) {
      return Error(ErrorCode::kLimitExceeded,
                   "the imported graph has more than " + std::to_string(kMaxNodes) + " nodes");
    }
  }
  if (!have_input_)
    return Error(ErrorCode::kBadGraph, "no input placeholder on the path to the outputs");
  for (const std::string& o : options_.outputs) {
    const std::string r = Resolve(o);
    if (ValueOf(r) <= 0) {
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
  // The written model must load: LoadModel runs every format check and
  // Graph::Finalize (shapes, limits).
  result->bytes = WriteModel(result->spec);
  Result<std::unique_ptr<Model>> loaded = LoadModel(result->bytes.data(), result->bytes.size());
  if (!loaded.ok()) {
    return Error(loaded.status().code(),
                 "the imported graph does not load: " + loaded.status().message());
  }
  const Shape& out = (*loaded)->graph.output_shape();
  if (out.h != result->out_h || out.w != result->out_w || out.c != result->out_c) {
    return Error(ErrorCode::kInternal,
                 "the engine computes a different output shape than the importer");
  }
  return result;
}

Result<ImportResult> ImportTfjsFile(const std::string& model_json_path,
                                    const ImportOptions& options) {
  auto read_file = [](const std::string& path, uint64_t limit,
                      const std::string& what) -> Result<std::vector<uint8_t>> {
    std::ifstream f(path, std::ios::binary | std::ios::ate);
    if (!f) return Error(ErrorCode::kInvalidArgument, what + " '" + path + "' cannot be opened");
    const std::streamoff size = f.tellg();
    if (size < 0)
      return Error(ErrorCode::kInvalidArgument, what + " '" + path + "' cannot be read");
    if (static_cast<uint64_t>(size) > limit) {
      return Error(ErrorCode::kLimitExceeded,
                   what + " '" + path + "' is larger than " + std::to_string(limit) + " bytes");
    }
    std::vector<uint8_t> data(static_cast<size_t>(size));
    f.seekg(0);
    if (size > 0 && !f.read(reinterpret_cast<char*>(data.data()), size)) {
      return Error(ErrorCode::kInvalidArgument, what + " '" + path + "' cannot be read");
    }
    return data;
  };
  Result<std::vector<uint8_t>> text = read_file(model_json_path, kMaxModelJsonBytes, "model.json");
  if (!text.ok()) return text.status();
  const size_t slash = model_json_path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "" : model_json_path.substr(0, slash + 1);
  ImportOptions opts = options;
  if (opts.name.empty()) {
    std::string stem = model_json_path.substr(slash == std::string::npos ? 0 : slash + 1);
    const size_t dot = stem.rfind('.');
    if (dot != std::string::npos && dot > 0) stem.resize(dot);
    opts.name = stem;
  }
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
                       data.status().message().substr(std::string("import-tfjs: ").size()));
    }
    return data;
  };
  return ImportTfjs(std::string(text->begin(), text->end()), reader, opts);
}

Status ParseInputSize(const std::string& text, int* w, int* h) {
  int a = 0, b = 0;
  char x = 0, extra = 0;
  if (std::sscanf(text.c_str(), "%d%c%d%c", &a, &x, &b, &extra) != 3 || (x != 'x' && x != 'X') ||
      a < 1 || b < 1 || a > kMaxModelInputSide || b > kMaxModelInputSide) {
    return Error(ErrorCode::kInvalidArgument,
                 "--input '" + text + "' must be WxH with sides in [1, " +
                     std::to_string(kMaxModelInputSide) + "], e.g. 256x256");
  }
  *w = a;
  *h = b;
  return Status::Ok();
}

}  // namespace flawlens::tfjs
