// Internals of the TF.js importer (tfjs_import.h), shared by its parts:
//   tfjs_parse.cc    model.json: the GraphDef's nodes and attributes, the path
//                    from the requested outputs back to the input, the TF
//                    activation patterns to collapse
//   tfjs_weights.cc  the weights manifest and its shards -> decoded constants
//   tfjs_emit.cc     TF nodes -> engine nodes, the model file's graph and card
//   tfjs_import.cc   the order of the steps and the public functions
// Not a public interface: only tools/import and its fuzz target include it.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "import/tfjs_import.h"

namespace flawlens::tfjs::internal {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

// Every importer error starts with "import-tfjs: ".
Status Error(ErrorCode code, const std::string& message);

// ---- tfjs_parse.cc -------------------------------------------------------------
// False when `text` nests arrays / objects deeper than max_depth.
bool JsonDepthAtMost(const std::string& text, int max_depth);
std::string Base64Decode(const std::string& in);

// A decoded weight (TF layout, row-major).
struct Constant {
  std::vector<int64_t> shape;
  int64_t elements = 1;
  bool is_int = false;
  std::vector<float> f;    // float weights
  std::vector<int32_t> i;  // int32 weights
};

struct TfInput {
  std::string node;
  int index = 0;  // output index ("node:1")
};

struct TfNode {
  std::string name, op;
  std::vector<TfInput> inputs;  // control inputs ("^x") dropped
  const json* attr = nullptr;   // object or nullptr
};

// Attributes of a node: attr.<key>.{s, list.i, list.s, b, f}; false, empty or
// `fallback` when absent or malformed.
const json* Attr(const TfNode& n, const char* key);
bool AttrString(const TfNode& n, const char* key, std::string* out);
bool AttrInts(const TfNode& n, const char* key, std::vector<int64_t>* out);
std::vector<std::string> AttrStrings(const TfNode& n, const char* key);
bool AttrBool(const TfNode& n, const char* key, bool fallback);
float AttrFloat(const TfNode& n, const char* key, float fallback);

// The GraphDef's nodes, in file order, and name -> index.
Status ParseNodes(const json& topology, std::vector<TfNode>* nodes,
                  std::map<std::string, int>* index);

// ---- tfjs_weights.cc -------------------------------------------------------------
// Decodes every weight of the manifest (float32, int32; float16 / uint8 /
// uint16 quantized) from the shards `read_shard` returns.
Status LoadWeights(const json& manifest, const ShardReader& read_shard,
                   std::map<std::string, Constant>* consts);

// Every Const node's declared shape must match its weight.
Status CheckConstShapes(const std::vector<TfNode>& nodes,
                        const std::map<std::string, Constant>& consts);

// ---- tfjs_emit.cc ---------------------------------------------------------------
// ---- the engine graph being built --------------------------------------------
struct ValueInfo {
  int h = 0, w = 0, c = 0;
  int stride_h = 1, stride_w = 1;
};

struct EngineNode {
  std::string name, op;
  std::vector<int> inputs;  // value ids: 0 = input, i + 1 = node i
  // conv2d
  int kh = 1, kw = 1, sh = 1, sw = 1, dh = 1, dw = 1;
  int pt = 0, pl = 0, pb = 0, pr = 0, groups = 1, out_c = 0;
  std::vector<float> weight;  // OHWI
  std::vector<float> bias;    // out_c (empty: none)
  std::string activation = "none";
  float alpha = 0.0f;
  int scale_h = 1, scale_w = 1;  // upsample
  std::string owner;             // TF node whose value this node currently produces
};

enum class PatternKind { kHardSwish, kHardSigmoid };
struct Pattern {
  PatternKind kind;
  std::string x;  // the pattern's input
  float alpha = 0;
};

// One import: the TF graph, the path to the outputs and the engine graph being
// built. Run() is in tfjs_import.cc; the path and pattern analysis (Walk,
// FindPatterns, Resolve, ...) in tfjs_parse.cc; the engine nodes, graph JSON,
// card and Finish() in tfjs_emit.cc.
class Importer {
 public:
  Importer(const ImportOptions& options) : options_(options) {}

  Result<ImportResult> Run(const std::string& text, const ShardReader& read_shard);

 private:
  Status Walk();
  void FindPatterns();
  Status Emit(const TfNode& n);
  Status Unsupported(const TfNode& n, const std::string& why = "") const;
  Status Fail(const TfNode& n, ErrorCode code, const std::string& why) const;
  std::string Resolve(const std::string& name) const;
  const Constant* ConstOf(const std::string& resolved) const;
  int ValueOf(const std::string& resolved) const;
  bool Foldable(int value, const std::string& x) const;
  int AddNode(EngineNode node, const ValueInfo& info);
  Status EmitConv(const TfNode& n, bool depthwise, bool fused);
  Status EmitAffine(const TfNode& n, int v, const std::string& x, const Constant& c, bool multiply,
                    bool negate);
  int ApplyActivation(const TfNode& n, int v, const std::string& x, const std::string& act,
                      float alpha);
  Result<ImportResult> Finish();
  std::string GraphJson(int output, std::vector<ModelTensor>* tensors) const;
  std::string CardJson(const ImportResult& result) const;

  const ImportOptions& options_;
  json doc_;
  std::vector<TfNode> nodes_;
  std::map<std::string, int> index_;
  std::map<std::string, Constant> consts_;
  std::vector<int> order_;                      // path nodes, topological
  std::map<std::string, std::string> reached_;  // node -> output it leads to
  std::map<std::string, Pattern> patterns_;     // pattern root -> pattern
  std::set<std::string> absorbed_;
  std::map<std::string, int> consumers_;  // effective consumers
  std::set<std::string> outputs_;         // resolved outputs
  std::map<std::string, int> values_;     // TF node -> engine value id
  std::vector<EngineNode> engine_;
  std::vector<ValueInfo> infos_;  // per value id
  std::set<std::string> used_names_;
  bool have_input_ = false;
};


}  // namespace flawlens::tfjs::internal
