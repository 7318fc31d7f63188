// Internals of the TF.js importer (tfjs_import.h), shared by its parts:
//   tfjs_parse.cc    model.json: the GraphDef's nodes and attributes, the path
//                    from the requested outputs back to the input, the TF
//                    activation patterns to collapse
//   tfjs_weights.cc  the weights manifest and its shards -> decoded constants
//   tfjs_emit.cc     TF nodes -> engine nodes (the shared engine graph, emit.h)
//   tfjs_import.cc   the order of the steps and the public functions
// Not a public interface: only tools/import and its fuzz target include it.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "import/emit.h"
#include "import/tfjs_import.h"

namespace flawlens::tfjs::internal {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;
using import::EngineNode;
using import::EngineOp;
using import::ValueInfo;

// Every importer error starts with "import-tfjs: ".
inline constexpr const char* kCommand = "import-tfjs";
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
enum class PatternKind { kHardSwish, kHardSigmoid };
struct Pattern {
  PatternKind kind;
  std::string x;  // the pattern's input
  float alpha = 0;
};

// One import: the TF graph, the path to the outputs and the engine graph being
// built. Run() is in tfjs_import.cc; the path and pattern analysis (Walk,
// FindPatterns, Resolve, ...) in tfjs_parse.cc; the engine nodes and Finish()
// in tfjs_emit.cc, on the importers' shared engine graph (emit.h).
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
  Status EmitConv(const TfNode& n, bool depthwise, bool fused);
  Status EmitAffine(const TfNode& n, int v, const std::string& x, const Constant& c, bool multiply,
                    bool negate);
  int ApplyActivation(const TfNode& n, int v, const std::string& x, Activation act, float alpha);
  Result<ImportResult> Finish();

  const ImportOptions& options_;
  json doc_;
  std::vector<TfNode> nodes_;
  std::map<std::string, int> index_;
  std::map<std::string, Constant> consts_;
  std::vector<int> order_;                      // path nodes, topological
  std::map<std::string, std::string> reached_;  // node -> output it leads to
  std::map<std::string, Pattern> patterns_;     // pattern root -> pattern
  std::set<std::string> absorbed_;
  // The engine graph: values are TF node names.
  import::EngineGraph graph_{kCommand};
  bool have_input_ = false;
};


}  // namespace flawlens::tfjs::internal
