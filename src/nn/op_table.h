// The op table: the one description of every graph op. OpType and its names,
// the model loader's parser (name, input count, tensors, attribute groups,
// fused activation), Graph::Finalize's checks and shape rule, the executor's
// row bands and the reference backend's dispatch are all derived from it.
//
// Adding an op: one X(...) line below, using an existing attribute group and
// shape rule where one fits (a new kind needs its parser in
// model/model_loader.cc and its rule in nn/graph.cc), and its reference
// kernel (kernels/ref/ref_kernels.{h,cc} + RefRun<Name> in
// kernels/ref_backend.cc: the build fails until it exists). The SIMD and
// XNNPACK backends answer kUnsupported for ops they have no kernel for, so
// the executor falls back to the reference one. model/FORMAT.md documents
// the op for file writers.
#pragma once

#include <cstddef>

namespace flawlens {

// How many inputs an op reads.
enum class OpArity { kOne, kTwo, kTwoOrMore };

// Which tensors an op reads from the file: none, a weight and an optional
// bias, or both required.
enum class OpTensors { kNone, kWeight, kWeightAndBias };

// The attribute groups the loader parses (model/FORMAT.md, per op); every
// other key of a node is ignored.
enum class OpAttrs {
  kNone,
  kConv,      // out_channels (weight dim 0), kernel, stride, dilation, pad, groups
  kDense,     // out_channels (weight dim 0)
  kMaxPool,   // kernel (required), stride (= kernel), dilation, pad
  kAvgPool,   // kernel (required), stride (= kernel), pad, count_include_pad
  kUpsample,  // mode (nearest | bilinear), scale
  kReduce,    // mode (sum_squares | min | max | mean)
  kWhitening, // weight [gh, gw, c, c] and bias [h, w, c] ranks
};

// Whether the node carries an `activation` (+ `alpha`).
enum class OpActivation { kNone, kFused, kRequired };

// The output shape, from the inputs and attributes (nn/graph.cc).
enum class ShapeRule {
  kSame,                 // input 0's shape
  kSameAsBoth,           // both inputs of one shape -> that shape
  kBroadcastMul,         // input 1 is input 0's shape or 1 x 1 x C -> input 0's shape
  kWindow,               // conv2d / pool window over h, w; channels from out_channels or input
  kGlobal,               // 1 x 1 x C
  kDense,                // 1 x 1 x out_channels
  kUpsample,             // h * scale_h x w * scale_w x C
  kConcatChannels,       // equal h, w; channels summed
  kPerPixel,             // h x w x 1
  kPositionMahalanobis,  // h x w x 1, with weight / bias shapes checked against the input
};

// Executor properties: kBandable ops may be split into bands of output rows
// that run at once on the pool; kWindowed bands read a window of input rows
// (kernel, stride, padding) instead of the same rows.
enum OpFlags : unsigned { kOpNoFlags = 0, kOpBandable = 1u << 0, kOpWindowed = 1u << 1 };

// X(Name, "name", arity, tensors, attributes, activation, shape rule, flags)
#define FLAWLENS_OPS(X)                                                                        \
  X(Conv2d, "conv2d", kOne, kWeight, kConv, kFused, kWindow, kOpBandable | kOpWindowed)          \
  X(Activation, "activation", kOne, kNone, kNone, kRequired, kSame, kOpBandable)               \
  X(MaxPool2d, "maxpool2d", kOne, kNone, kMaxPool, kNone, kWindow, kOpBandable | kOpWindowed)  \
  X(AvgPool2d, "avgpool2d", kOne, kNone, kAvgPool, kNone, kWindow, kOpBandable | kOpWindowed)  \
  X(GlobalAvgPool, "global_avgpool", kOne, kNone, kNone, kNone, kGlobal, kOpNoFlags)           \
  X(Dense, "dense", kOne, kWeight, kDense, kFused, kDense, kOpNoFlags)                         \
  X(Upsample, "upsample", kOne, kNone, kUpsample, kNone, kUpsample, kOpNoFlags)                \
  X(Concat, "concat", kTwoOrMore, kNone, kNone, kNone, kConcatChannels, kOpBandable)           \
  X(Add, "add", kTwo, kNone, kNone, kFused, kSameAsBoth, kOpBandable)                          \
  X(ReduceChannels, "reduce_channels", kOne, kNone, kReduce, kNone, kPerPixel, kOpBandable)    \
  X(Mul, "mul", kTwo, kNone, kNone, kFused, kBroadcastMul, kOpNoFlags)                         \
  X(PositionMahalanobis, "position_mahalanobis", kOne, kWeightAndBias, kWhitening, kNone,      \
    kPositionMahalanobis, kOpNoFlags)

enum class OpType {
#define FLAWLENS_OP_ENUM(Name, ...) k##Name,
  FLAWLENS_OPS(FLAWLENS_OP_ENUM)
#undef FLAWLENS_OP_ENUM
};

struct OpInfo {
  const char* name;  // in model files
  OpArity arity;
  OpTensors tensors;
  OpAttrs attrs;
  OpActivation activation;
  ShapeRule shape;
  unsigned flags;
};

inline constexpr OpInfo kOpInfo[] = {
#define FLAWLENS_OP_INFO(Name, text, arity, tensors, attrs, act, shape, flags)              \
  {text,          OpArity::arity,     OpTensors::tensors, OpAttrs::attrs, OpActivation::act, \
   ShapeRule::shape, static_cast<unsigned>(flags)},
    FLAWLENS_OPS(FLAWLENS_OP_INFO)
#undef FLAWLENS_OP_INFO
};

inline constexpr int kOpCount = static_cast<int>(sizeof(kOpInfo) / sizeof(kOpInfo[0]));
// A tripwire, as ggml keeps one beside GGML_OP_NAME: what is not derived from
// this table has to be checked by hand when an op is added or removed — the op
// list of model/FORMAT.md, tools/onnx (export / import), the TF.js importer's
// mapping, tools/train/adapt/graph_module.cc (the LibTorch interpreter), the tfjs /
// ONNX versions of the ops in tools/bench/page/threads.mjs and
// tools/bench/threads/anchors.mjs — then the count
// here is updated.
static_assert(kOpCount == 12, "an op was added or removed: see the comment above");

inline bool ValidOpType(OpType op) {
  return static_cast<int>(op) >= 0 && static_cast<int>(op) < kOpCount;
}
// The op's row of the table; `op` must be valid (ValidOpType).
inline const OpInfo& InfoOf(OpType op) { return kOpInfo[static_cast<int>(op)]; }

}  // namespace flawlens
