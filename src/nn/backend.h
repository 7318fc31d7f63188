// Backends turn a validated graph node into a runnable operator.
//
// The executor asks the preferred backend first; a backend that does not
// implement a node (or a node configuration) returns kUnsupported and the
// executor falls back: xnnpack -> simd -> ref. Everything an operator needs
// (packed weights, lookup tables) is prepared in Create(); Run() allocates
// nothing and cannot fail (all checks happened at Create()).
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "core/status.h"
#include "nn/graph.h"

namespace flawlens {

class OpImpl {
 public:
  virtual ~OpImpl() = default;
  // Scratch floats Run() needs; the executor plans one shared workspace.
  virtual size_t workspace_floats() const { return 0; }
  // inputs[i]: NHWC activations of node.inputs[i]; output: NHWC, preallocated.
  // Pointers are 16-byte aligned and stay the same between calls of one
  // executor (so backends may cache setup keyed on them).
  virtual void Run(const float* const* inputs, float* output, float* workspace) = 0;
  // Called once by the executor after buffer planning, with the pointers every
  // later Run() receives. Backends may bind them here (e.g. XNNPACK setup,
  // which validates and allocates) so that Run() neither fails nor allocates.
  // Optional: the default does nothing.
  virtual Status Prepare(const float* const* inputs, float* output, float* workspace) {
    return Status::Ok();
  }
  // Kernel name, XNNPACK style: "conv2d_f32_3x3s1__winograd_simd128".
  virtual const char* kernel_name() const = 0;
};

struct OpSpec {
  const Node& node;
  const std::vector<Shape>& input_shapes;
  const Shape& output_shape;
};

// What a backend offers besides kernels; the executor asks for these and
// never tests a backend's name.
enum class BackendFeature {
  // Its operators thread themselves (XNNPACK's pool): the executor does not
  // split their nodes into row bands.
  kOwnThreads,
  // A pointwise conv (1x1, stride 1, no padding, groups 1) can read the
  // inputs of a concat in place, in concat order (OpSpec with one input shape
  // per concat input): the executor then drops that concat (ElideConcats).
  kConcatIntoPointwiseConv,
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;  // for messages and kernel tables only
  // Ops it has kernels for. Create() may still answer kUnsupported for a
  // configuration it does not accelerate; for other ops the executor does not
  // ask it.
  virtual bool Implements(OpType op) const = 0;
  virtual bool Has(BackendFeature feature) const { return false; }
  // kUnsupported -> executor falls back to the next backend.
  virtual Result<std::unique_ptr<OpImpl>> Create(const OpSpec& spec) = 0;
};

enum class BackendKind {
  kAuto,       // xnnpack natively when built in, else simd
  kReference,  // scalar reference kernels only (the spec)
  kSimd,       // our 128-bit SIMD kernels (what the wasm build runs)
  kXnnpack,    // Debian's XNNPACK (native builds only)
};

const char* BackendKindName(BackendKind kind);

// The backends themselves are made in src/kernels (kernels/backends.h): nn
// only defines the contract, so it does not depend on the kernels.

}  // namespace flawlens
