// Internals of the ONNX importer (onnx_import.h), shared by its parts:
//   onnx_import_proto.cc  the ModelProto: tensors decoded into constants, node
//                         attributes, the producer index, the path from the
//                         requested outputs back to the input, x * gate(x)
//   onnx_import_ops.cc    window, elementwise and clip operators -> engine nodes
//   onnx_import_emit.cc   the graph input and the other operators -> engine nodes
//   onnx_import.cc        the order of the steps and the public functions
// The engine graph, its writing and the card are the importers' shared layer
// (import/emit.h). Not a public interface: only tools/onnx and its fuzz
// target include it.
#pragma once

#include <onnx/onnx_pb.h>

#include <cstdint>
#include <initializer_list>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "import/emit.h"
#include "onnx/onnx_import.h"

namespace flawlens::onnx_import::internal {

using import::EngineNode;
using import::EngineOp;
using import::Printable;
using import::ValueInfo;

// Every importer error starts with "import-onnx: ".
inline constexpr const char* kCommand = "import-onnx";
Status Error(ErrorCode code, const std::string& message);

std::string DimsString(const std::vector<int64_t>& d);

// A decoded constant (initializer or Constant node), row-major in ONNX order.
struct Constant {
  std::vector<int64_t> dims;
  int64_t elements = 1;
  bool is_int = false;
  std::vector<float> f;    // FLOAT, FLOAT16, DOUBLE
  std::vector<int64_t> i;  // INT64, INT32
};

// Decodes `t` (`what` names it in messages), charging 8 bytes per element to
// `budget`.
Status DecodeTensor(const onnx::TensorProto& t, const std::string& what, uint64_t* budget,
                    Constant* c);

enum class PatternKind { kSilu, kHardSwish };
struct Pattern {
  PatternKind kind;
  std::string x;  // the pattern's input
  float alpha = 0;
};

// Operator versions up to this opset are read; older versions are read with
// their own attribute / input conventions (Clip < 11, Resize 10, Upsample).
constexpr int64_t kMaxOpset = 17;

constexpr char kSupportedOps[] =
    "Conv, BatchNormalization, Relu, LeakyRelu, Clip, Sigmoid, HardSigmoid, HardSwish, "
    "MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool, ReduceMean, Add, Sub, Mul, Div, "
    "Concat, Resize, Upsample, Flatten, Identity, Dropout, Constant";

// The engine node's name for an ONNX node: its name, else its first output.
std::string NodeName(const onnx::NodeProto& n);

// One import: the ONNX graph, the path to the outputs and the engine graph
// being built (values are ONNX tensor names).
class Importer {
 public:
  explicit Importer(const ImportOptions& options) : options_(options) {}
  Result<ImportResult> Run(const uint8_t* data, size_t size);

 private:
  // onnx_import_proto.cc
  std::string Label(int id) const;
  Status Fail(int id, ErrorCode code, const std::string& why) const;
  Status Unsupported(int id, const std::string& why = "") const;
  Status CheckAttributes(int id, std::initializer_list<const char*> allowed) const;
  const onnx::AttributeProto* Attr(int id, const char* name) const;
  Result<const onnx::AttributeProto*> TypedAttr(int id, const char* name,
                                                onnx::AttributeProto_AttributeType type,
                                                const char* what) const;
  Status AttrInt(int id, const char* name, int64_t fallback, int64_t* out) const;
  Status AttrFloat(int id, const char* name, float fallback, float* out) const;
  Status AttrInts(int id, const char* name, std::vector<int64_t>* out) const;
  Status AttrString(int id, const char* name, const std::string& fallback, std::string* out) const;
  Status Index();
  Status Walk();
  std::string Resolve(const std::string& name) const;
  Result<const Constant*> ConstOf(const std::string& resolved);
  bool IsConst(const std::string& resolved) const;
  void FindPatterns();

  // onnx_import_ops.cc
  Status TensorInput(int id, bool map, std::string* x, int* v) const;
  int ApplyActivation(int id, int v, const std::string& x, Activation act, float alpha);
  Status EmitAffine(int id, int v, const std::string& x, std::vector<float> scale,
                    std::vector<float> shift);
  Status PerChannel(int id, const Constant& c, const ValueInfo& info,
                    std::vector<float>* out) const;
  Status Window(int id, const ValueInfo& in, int kh, int kw, bool ceil_mode, EngineNode* e,
                ValueInfo* out);
  Status EmitConv(int id);
  Status EmitPool(int id, bool max);
  Status EmitResize(int id);
  Status EmitBinary(int id);
  Status EmitClip(int id);

  // onnx_import_emit.cc
  Status SetInput(const std::string& name);
  Status Emit(int id);

  // onnx_import.cc
  Result<ImportResult> Finish();

  const ImportOptions& options_;
  onnx::ModelProto model_;
  int64_t opset_ = 0;
  std::vector<const onnx::NodeProto*> nodes_;
  std::map<std::string, int> producer_;  // tensor -> node
  std::map<std::string, const onnx::TensorProto*> initializers_;
  std::map<std::string, const onnx::ValueInfoProto*> graph_inputs_;
  std::map<std::string, Constant> consts_;  // decoded, by tensor name
  uint64_t budget_ = kMaxWeightBytes * 2;   // 8 bytes per element budgeted
  std::vector<int> order_;                  // path nodes, topological
  std::map<int, std::string> reached_;      // node -> output it leads to
  std::map<int, Pattern> patterns_;         // Mul node -> pattern
  std::set<int> absorbed_;                  // nodes folded into a pattern
  import::EngineGraph graph_{kCommand};
  std::string input_name_;
};

}  // namespace flawlens::onnx_import::internal
