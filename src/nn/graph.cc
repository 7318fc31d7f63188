// Graph validation and shape inference (see nn/graph.h).
//
// Error classes: wiring, op arity and out-of-range attributes -> kBadGraph;
// tensor/activation shapes that do not fit -> kBadShape; documented limits of
// core/limits.h exceeded -> kLimitExceeded. Every message names the node.
#include "nn/graph.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/limits.h"

namespace flawlens {

const char* OpTypeName(OpType op) { return ValidOpType(op) ? InfoOf(op).name : "unknown"; }

bool ParseOpType(const std::string& name, OpType* out) {
  for (int i = 0; i < kOpCount; ++i) {
    if (name == kOpInfo[i].name) {
      *out = static_cast<OpType>(i);
      return true;
    }
  }
  return false;
}

const char* ActivationName(Activation act) {
  switch (act) {
    case Activation::kNone: return "none";
    case Activation::kRelu: return "relu";
    case Activation::kLeakyRelu: return "leaky_relu";
    case Activation::kSilu: return "silu";
    case Activation::kSigmoid: return "sigmoid";
    case Activation::kRelu6: return "relu6";
    case Activation::kHardSwish: return "hard_swish";
    case Activation::kHardSigmoid: return "hard_sigmoid";
  }
  return "unknown";
}

bool ParseActivation(const std::string& name, Activation* out) {
  for (int a = static_cast<int>(Activation::kNone); a <= static_cast<int>(Activation::kHardSigmoid);
       ++a) {
    if (name == ActivationName(static_cast<Activation>(a))) {
      *out = static_cast<Activation>(a);
      return true;
    }
  }
  return false;
}

float DefaultAlpha(Activation act) {
  return act == Activation::kHardSwish || act == Activation::kHardSigmoid ? 1.0f / 6.0f : 0.01f;
}

int64_t TensorRef::elements() const {
  if (shape.empty()) return 0;
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0 || !CheckedMul(n, d, &n)) return -1;
  }
  return n;
}

int64_t WindowOutputSize(int64_t in, int kernel, int stride, int dilation, int pad_before,
                         int pad_after) {
  if (in <= 0 || kernel <= 0 || stride <= 0 || dilation <= 0 || pad_before < 0 || pad_after < 0)
    return 0;
  // All operands are bounded by the limits' order of magnitude, but stay
  // overflow-safe for any int input.
  int64_t effective = (int64_t{kernel} - 1) * dilation + 1;
  int64_t padded = in + pad_before + pad_after;
  if (padded < effective) return 0;
  return (padded - effective) / stride + 1;
}

namespace {

bool ValidActivation(Activation a) {
  return static_cast<int>(a) >= static_cast<int>(Activation::kNone) &&
         static_cast<int>(a) <= static_cast<int>(Activation::kHardSigmoid);
}

std::string ShapeString(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(s[i]);
  }
  return out + "]";
}

std::string ShapeString(const Shape& s) {
  return std::to_string(s.h) + "x" + std::to_string(s.w) + "x" + std::to_string(s.c);
}

// Validates one node; `shapes` holds the shapes of values 0..index.
class NodeChecker {
 public:
  NodeChecker(const Node& node, int index, const std::vector<Shape>& shapes)
      : node_(node), index_(index), shapes_(shapes) {
    if (node.name.empty()) {
      prefix_ = "node #" + std::to_string(index);
    } else {
      prefix_ = "node '" + node.name.substr(0, 80) + "'";
    }
    prefix_ += std::string(" (") + (ValidOpType(node.op) ? OpTypeName(node.op) : "unknown op") + ")";
  }

  Status Error(ErrorCode code, const std::string& what) const {
    return MakeError(code, "%s: %s", prefix_.c_str(), what.c_str());
  }

  Result<Shape> Check() {
    if (!ValidOpType(node_.op))
      return Error(ErrorCode::kBadGraph,
                   "unknown op code " + std::to_string(static_cast<int>(node_.op)));
    FLAWLENS_RETURN_IF_ERROR(CheckInputs());
    FLAWLENS_RETURN_IF_ERROR(CheckActivation());
    const Shape& in = shapes_[node_.inputs[0]];
    Shape out;
    switch (InfoOf(node_.op).shape) {
      case ShapeRule::kSame:
        out = in;
        break;
      case ShapeRule::kSameAsBoth: {
        const Shape& b = shapes_[node_.inputs[1]];
        if (in != b)
          return Error(ErrorCode::kBadShape, "input shapes differ: " + ShapeString(in) + " vs " +
                                                 ShapeString(b));
        out = in;
        break;
      }
      case ShapeRule::kBroadcastMul: {
        const Shape& b = shapes_[node_.inputs[1]];
        const Shape row{1, 1, in.c};
        if (b != in && b != row)
          return Error(ErrorCode::kBadShape,
                       "input 1 is " + ShapeString(b) + "; it must be " + ShapeString(in) +
                           " (input 0's shape)" +
                           (in == row ? std::string() : " or " + ShapeString(row)));
        out = in;
        break;
      }
      case ShapeRule::kWindow: {
        if (InfoOf(node_.op).attrs == OpAttrs::kConv) {
          FLAWLENS_ASSIGN_OR_RETURN(out, CheckConv(in));
        } else {
          FLAWLENS_ASSIGN_OR_RETURN(out, CheckPool(in));
        }
        break;
      }
      case ShapeRule::kGlobal:
        out = Shape{1, 1, in.c};
        break;
      case ShapeRule::kDense: {
        FLAWLENS_ASSIGN_OR_RETURN(out, CheckDense(in));
        break;
      }
      case ShapeRule::kUpsample: {
        FLAWLENS_ASSIGN_OR_RETURN(out, CheckUpsample(in));
        break;
      }
      case ShapeRule::kConcatChannels: {
        FLAWLENS_ASSIGN_OR_RETURN(out, CheckConcat());
        break;
      }
      case ShapeRule::kPerPixel: {
        FLAWLENS_RETURN_IF_ERROR(CheckReduceMode());
        out = Shape{in.h, in.w, 1};
        break;
      }
      case ShapeRule::kPositionMahalanobis: {
        FLAWLENS_ASSIGN_OR_RETURN(out, CheckPositionMahalanobis(in));
        break;
      }
    }
    FLAWLENS_RETURN_IF_ERROR(CheckOutput(out));
    return out;
  }

 private:
  Status CheckInputs() const {
    size_t n = node_.inputs.size();
    bool count_ok = false;
    const char* expected = "";
    switch (InfoOf(node_.op).arity) {
      case OpArity::kTwoOrMore: count_ok = n >= 2; expected = "at least 2"; break;
      case OpArity::kTwo: count_ok = n == 2; expected = "exactly 2"; break;
      case OpArity::kOne: count_ok = n == 1; expected = "exactly 1"; break;
    }
    if (!count_ok)
      return Error(ErrorCode::kBadGraph, "has " + std::to_string(n) + " inputs, expected " +
                                             expected);
    for (int id : node_.inputs) {
      // Node i produces value i + 1 and may read values 0..i.
      if (id < 0 || id > index_)
        return Error(ErrorCode::kBadGraph,
                     "input value " + std::to_string(id) +
                         (id > index_ ? " is not produced by an earlier node"
                                      : " is out of range"));
    }
    return Status::Ok();
  }

  Status CheckActivation() const {
    if (!ValidActivation(node_.activation))
      return Error(ErrorCode::kBadGraph,
                   "unknown activation " + std::to_string(static_cast<int>(node_.activation)));
    const OpActivation kind = InfoOf(node_.op).activation;
    const bool fused_allowed = kind != OpActivation::kNone;
    if (!fused_allowed && node_.activation != Activation::kNone)
      return Error(ErrorCode::kBadGraph, std::string("activation '") +
                                             ActivationName(node_.activation) +
                                             "' cannot be fused into this op");
    if (kind == OpActivation::kRequired && node_.activation == Activation::kNone)
      return Error(ErrorCode::kBadGraph, "activation node with activation 'none'");
    const bool uses_alpha = node_.activation == Activation::kLeakyRelu ||
                            node_.activation == Activation::kHardSwish ||
                            node_.activation == Activation::kHardSigmoid;
    if (uses_alpha && !std::isfinite(node_.alpha))
      return Error(ErrorCode::kBadGraph, std::string(ActivationName(node_.activation)) +
                                             " alpha is not finite");
    return Status::Ok();
  }

  // Range check of one integer attribute: below `lo` is a bad graph, above
  // `hi` (a documented limit) is kLimitExceeded.
  Status CheckRange(const char* what, int v, int lo, int hi) const {
    if (v < lo)
      return Error(ErrorCode::kBadGraph, std::string(what) + " " + std::to_string(v) +
                                             " is below " + std::to_string(lo));
    if (v > hi)
      return Error(ErrorCode::kLimitExceeded, std::string(what) + " " + std::to_string(v) +
                                                  " exceeds the limit " + std::to_string(hi));
    return Status::Ok();
  }

  Status CheckWindowAttributes(bool allow_dilation) const {
    FLAWLENS_RETURN_IF_ERROR(CheckRange("kernel_h", node_.kernel_h, 1, kMaxKernel));
    FLAWLENS_RETURN_IF_ERROR(CheckRange("kernel_w", node_.kernel_w, 1, kMaxKernel));
    FLAWLENS_RETURN_IF_ERROR(CheckRange("stride_h", node_.stride_h, 1, kMaxStride));
    FLAWLENS_RETURN_IF_ERROR(CheckRange("stride_w", node_.stride_w, 1, kMaxStride));
    FLAWLENS_RETURN_IF_ERROR(CheckRange("dilation_h", node_.dilation_h, 1,
                                        allow_dilation ? kMaxDilation : 1));
    FLAWLENS_RETURN_IF_ERROR(CheckRange("dilation_w", node_.dilation_w, 1,
                                        allow_dilation ? kMaxDilation : 1));
    FLAWLENS_RETURN_IF_ERROR(CheckRange("pad_top", node_.pad_top, 0, kMaxPad));
    FLAWLENS_RETURN_IF_ERROR(CheckRange("pad_left", node_.pad_left, 0, kMaxPad));
    FLAWLENS_RETURN_IF_ERROR(CheckRange("pad_bottom", node_.pad_bottom, 0, kMaxPad));
    FLAWLENS_RETURN_IF_ERROR(CheckRange("pad_right", node_.pad_right, 0, kMaxPad));
    return Status::Ok();
  }

  Result<Shape> WindowOutput(const Shape& in, int channels) const {
    int64_t oh = WindowOutputSize(in.h, node_.kernel_h, node_.stride_h, node_.dilation_h,
                                  node_.pad_top, node_.pad_bottom);
    int64_t ow = WindowOutputSize(in.w, node_.kernel_w, node_.stride_w, node_.dilation_w,
                                  node_.pad_left, node_.pad_right);
    if (oh < 1 || ow < 1)
      return Error(ErrorCode::kBadShape,
                   "window " + std::to_string(node_.kernel_h) + "x" +
                       std::to_string(node_.kernel_w) + " (dilation " +
                       std::to_string(node_.dilation_h) + "x" + std::to_string(node_.dilation_w) +
                       ") does not fit the padded input " + ShapeString(in));
    return Shape{static_cast<int>(oh), static_cast<int>(ow), channels};
  }

  Status CheckTensor(const TensorRef& t, const char* what,
                     const std::vector<int64_t>& expected) const {
    if (t.shape != expected)
      return Error(ErrorCode::kBadShape, std::string(what) + " has shape " +
                                             ShapeString(t.shape) + ", expected " +
                                             ShapeString(expected));
    if (t.data == nullptr) return Error(ErrorCode::kBadGraph, std::string(what) + " has no data");
    return Status::Ok();
  }

  Status CheckBias(int64_t out) const {
    if (node_.bias.data == nullptr && node_.bias.shape.empty()) return Status::Ok();
    return CheckTensor(node_.bias, "bias", {out});
  }

  Result<Shape> CheckConv(const Shape& in) const {
    FLAWLENS_RETURN_IF_ERROR(CheckWindowAttributes(/*allow_dilation=*/true));
    FLAWLENS_RETURN_IF_ERROR(CheckRange("out_channels", node_.out_channels, 1, kMaxChannels));
    FLAWLENS_RETURN_IF_ERROR(CheckRange("groups", node_.groups, 1, kMaxChannels));
    if (in.c % node_.groups != 0)
      return Error(ErrorCode::kBadGraph, "groups " + std::to_string(node_.groups) +
                                             " does not divide the " + std::to_string(in.c) +
                                             " input channels");
    if (node_.out_channels % node_.groups != 0)
      return Error(ErrorCode::kBadGraph, "groups " + std::to_string(node_.groups) +
                                             " does not divide out_channels " +
                                             std::to_string(node_.out_channels));
    const int in_per_group = in.c / node_.groups;
    const auto& ws = node_.weight.shape;
    if (ws.size() == 4 && ws[0] == node_.out_channels && ws[1] == node_.kernel_h &&
        ws[2] == node_.kernel_w && ws[3] != in_per_group) {
      return Error(ErrorCode::kBadShape,
                   "input has " + std::to_string(in.c) + " channels (" +
                       std::to_string(in_per_group) + " per group), weights expect " +
                       std::to_string(ws[3]));
    }
    FLAWLENS_RETURN_IF_ERROR(CheckTensor(
        node_.weight, "weight",
        {node_.out_channels, node_.kernel_h, node_.kernel_w, in_per_group}));
    FLAWLENS_RETURN_IF_ERROR(CheckBias(node_.out_channels));
    return WindowOutput(in, node_.out_channels);
  }

  Status CheckReduceMode() const {
    if (InfoOf(node_.op).attrs != OpAttrs::kReduce) return Status::Ok();
    const int m = static_cast<int>(node_.reduce_mode);
    if (m < static_cast<int>(ReduceMode::kSumSquares) || m > static_cast<int>(ReduceMode::kMean))
      return Error(ErrorCode::kBadGraph, "unknown reduce mode " + std::to_string(m));
    return Status::Ok();
  }

  Result<Shape> CheckPool(const Shape& in) const {
    const bool max = InfoOf(node_.op).attrs == OpAttrs::kMaxPool;
    if (!max && (node_.dilation_h != 1 || node_.dilation_w != 1))
      return Error(ErrorCode::kBadGraph, "dilation_h/dilation_w must be 1 (avgpool2d has no dilation)");
    FLAWLENS_RETURN_IF_ERROR(CheckWindowAttributes(/*allow_dilation=*/max));
    // PyTorch's rule: padding at most half the (effective) window, so that no
    // window lies entirely in the padding.
    int64_t eff_h = (int64_t{node_.kernel_h} - 1) * node_.dilation_h + 1;
    int64_t eff_w = (int64_t{node_.kernel_w} - 1) * node_.dilation_w + 1;
    if (2 * int64_t{node_.pad_top} > eff_h || 2 * int64_t{node_.pad_bottom} > eff_h ||
        2 * int64_t{node_.pad_left} > eff_w || 2 * int64_t{node_.pad_right} > eff_w)
      return Error(ErrorCode::kBadGraph, "padding exceeds half the pooling window");
    if (node_.weight.data != nullptr || node_.bias.data != nullptr)
      return Error(ErrorCode::kBadGraph, "pooling has weights");
    return WindowOutput(in, in.c);
  }

  Result<Shape> CheckDense(const Shape& in) const {
    FLAWLENS_RETURN_IF_ERROR(CheckRange("out_channels", node_.out_channels, 1, kMaxChannels));
    const int64_t in_flat = in.elements();
    const auto& ws = node_.weight.shape;
    if (ws.size() == 2 && ws[0] == node_.out_channels && ws[1] != in_flat)
      return Error(ErrorCode::kBadShape, "input has " + std::to_string(in_flat) +
                                             " elements (" + ShapeString(in) +
                                             "), weights expect " + std::to_string(ws[1]));
    FLAWLENS_RETURN_IF_ERROR(CheckTensor(node_.weight, "weight", {node_.out_channels, in_flat}));
    FLAWLENS_RETURN_IF_ERROR(CheckBias(node_.out_channels));
    return Shape{1, 1, node_.out_channels};
  }

  // weight [gh, gw, c, c] with 1 <= gh <= h, 1 <= gw <= w (regions of
  // cells share a whitening matrix: cell (y, x) uses region (y gh / h,
  // x gw / w); [h, w, c, c] is one per cell), bias [h, w, c], both required.
  Result<Shape> CheckPositionMahalanobis(const Shape& in) const {
    if (node_.weight.data == nullptr && node_.weight.shape.empty())
      return Error(ErrorCode::kBadGraph, "needs a weight (whitening matrices [gh, gw, c, c])");
    if (node_.bias.data == nullptr && node_.bias.shape.empty())
      return Error(ErrorCode::kBadGraph, "needs a bias (means [h, w, c])");
    const int64_t h = in.h, w = in.w, c = in.c;
    const std::vector<int64_t>& ws = node_.weight.shape;
    if (ws.size() != 4 || ws[0] < 1 || ws[0] > h || ws[1] < 1 || ws[1] > w)
      return Error(ErrorCode::kBadShape,
                   "weight has shape " + ShapeString(ws) + ", expected [gh, gw, " +
                       std::to_string(c) + ", " + std::to_string(c) + "] with 1 <= gh <= " +
                       std::to_string(h) + ", 1 <= gw <= " + std::to_string(w));
    FLAWLENS_RETURN_IF_ERROR(CheckTensor(node_.weight, "weight", {ws[0], ws[1], c, c}));
    FLAWLENS_RETURN_IF_ERROR(CheckTensor(node_.bias, "bias", {h, w, c}));
    return Shape{in.h, in.w, 1};
  }

  Result<Shape> CheckUpsample(const Shape& in) const {
    int m = static_cast<int>(node_.upsample_mode);
    if (m != static_cast<int>(UpsampleMode::kNearest) &&
        m != static_cast<int>(UpsampleMode::kBilinear))
      return Error(ErrorCode::kBadGraph, "unknown upsample mode " + std::to_string(m));
    // Large factors broadcast a 1x1 value (an image-level term) over a map.
    FLAWLENS_RETURN_IF_ERROR(CheckRange("scale_h", node_.scale_h, 1, kMaxModelInputSide));
    FLAWLENS_RETURN_IF_ERROR(CheckRange("scale_w", node_.scale_w, 1, kMaxModelInputSide));
    int64_t oh = int64_t{in.h} * node_.scale_h, ow = int64_t{in.w} * node_.scale_w;
    if (oh > kMaxModelInputSide * 16 || ow > kMaxModelInputSide * 16)
      return Error(ErrorCode::kLimitExceeded, "upsampled size " + std::to_string(oh) + "x" +
                                                  std::to_string(ow) + " is too large");
    return Shape{static_cast<int>(oh), static_cast<int>(ow), in.c};
  }

  Result<Shape> CheckConcat() const {
    const Shape& first = shapes_[node_.inputs[0]];
    int64_t c = 0;
    for (size_t i = 0; i < node_.inputs.size(); ++i) {
      const Shape& s = shapes_[node_.inputs[i]];
      if (s.h != first.h || s.w != first.w)
        return Error(ErrorCode::kBadShape, "input " + std::to_string(i) + " is " +
                                               ShapeString(s) + ", input 0 is " +
                                               ShapeString(first) + " (h, w must agree)");
      c += s.c;
      if (c > kMaxChannels)
        return Error(ErrorCode::kLimitExceeded, "concatenated channels exceed the limit " +
                                                    std::to_string(kMaxChannels));
    }
    return Shape{first.h, first.w, static_cast<int>(c)};
  }

  Status CheckOutput(const Shape& out) const {
    if (out.h < 1 || out.w < 1 || out.c < 1)
      return Error(ErrorCode::kBadShape, "output shape " + ShapeString(out) + " is empty");
    if (out.c > kMaxChannels)
      return Error(ErrorCode::kLimitExceeded, "output has " + std::to_string(out.c) +
                                                  " channels, limit " +
                                                  std::to_string(kMaxChannels));
    int64_t n = 0;
    if (!CheckedMul(int64_t{out.h}, int64_t{out.w}, &n) || !CheckedMul(n, int64_t{out.c}, &n) ||
        n > kMaxActivationElements)
      return Error(ErrorCode::kLimitExceeded, "output " + ShapeString(out) +
                                                  " exceeds the activation limit of " +
                                                  std::to_string(kMaxActivationElements) +
                                                  " elements");
    return Status::Ok();
  }

  const Node& node_;
  int index_;
  const std::vector<Shape>& shapes_;
  std::string prefix_;
};

}  // namespace

Status Graph::Finalize() {
  shapes.clear();
  depth = 0;
  if (nodes.empty()) return MakeError(ErrorCode::kBadGraph, "graph has no nodes");
  if (nodes.size() > static_cast<size_t>(kMaxNodes))
    return MakeError(ErrorCode::kLimitExceeded, "graph has %zu nodes, limit %d", nodes.size(),
                     kMaxNodes);
  if (input.h < 1 || input.w < 1 || input.c < 1)
    return MakeError(ErrorCode::kBadShape, "network input %dx%dx%d is empty", input.h, input.w,
                     input.c);
  if (input.h > kMaxModelInputSide || input.w > kMaxModelInputSide)
    return MakeError(ErrorCode::kLimitExceeded, "network input %dx%d exceeds the limit %d",
                     input.h, input.w, kMaxModelInputSide);
  if (input.c > kMaxChannels)
    return MakeError(ErrorCode::kLimitExceeded, "network input has %d channels, limit %d",
                     input.c, kMaxChannels);
  if (input.elements() > kMaxActivationElements)
    return MakeError(ErrorCode::kLimitExceeded, "network input exceeds %lld elements",
                     static_cast<long long>(kMaxActivationElements));
  const int n = static_cast<int>(nodes.size());
  if (output < 1 || output > n)
    return MakeError(ErrorCode::kBadGraph, "graph output value %d is not a node output (1..%d)",
                     output, n);

  std::vector<Shape> inferred;
  inferred.reserve(nodes.size() + 1);
  inferred.push_back(input);
  std::vector<int> value_depth(nodes.size() + 1, 0);
  for (int i = 0; i < n; ++i) {
    NodeChecker checker(nodes[i], i, inferred);
    auto shape = checker.Check();
    if (!shape.ok()) return shape.status();
    inferred.push_back(shape.value());
    int d = 0;
    for (int id : nodes[i].inputs) d = std::max(d, value_depth[id]);
    value_depth[i + 1] = d + 1;
    if (value_depth[i + 1] > kMaxGraphDepth)
      return checker.Error(ErrorCode::kLimitExceeded,
                           "graph depth exceeds the limit " + std::to_string(kMaxGraphDepth));
  }
  shapes = std::move(inferred);
  depth = value_depth[output];
  return Status::Ok();
}

int64_t Graph::Macs() const {
  if (shapes.size() != nodes.size() + 1) return 0;
  int64_t total = 0;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const Node& node = nodes[i];
    const Shape& out = shapes[i + 1];
    const Shape& in = shapes[node.inputs[0]];
    const OpAttrs kind = InfoOf(node.op).attrs;
    if (kind == OpAttrs::kConv) {
      total += out.elements() * node.kernel_h * node.kernel_w * (in.c / node.groups);
    } else if (kind == OpAttrs::kDense) {
      total += int64_t{node.out_channels} * in.elements();
    } else if (kind == OpAttrs::kWhitening) {
      // Per position: the c x c whitening product plus c squares.
      total += int64_t{in.h} * in.w * in.c * (int64_t{in.c} + 1);
    }
  }
  return total;
}

}  // namespace flawlens
