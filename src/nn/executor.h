// Runs a finalized Graph. All buffers are planned at Create(): one arena for
// activations (values whose lifetimes do not overlap share memory) and one
// workspace; Run() allocates nothing.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "nn/backend.h"
#include "nn/graph.h"

namespace flawlens {

struct ExecutorOptions {
  BackendKind backend = BackendKind::kAuto;
  int threads = 1;  // XNNPACK threadpool size (native only)
};

class Executor {
 public:
  // `graph` must outlive the executor (weights are read in place or packed).
  static Result<std::unique_ptr<Executor>> Create(const Graph& graph,
                                                  const ExecutorOptions& options = {});
  ~Executor();

  float* input() { return values_[0]; }
  const Shape& input_shape() const { return graph_.input; }
  const float* output() const { return values_[graph_.output]; }
  const Shape& output_shape() const { return graph_.output_shape(); }
  // Any value (for tests / debugging); pointer is valid only right after Run()
  // and only if the planner kept it alive (the output always is).
  void Run();

  // One entry per node: the kernel chosen for it.
  std::vector<std::string> KernelNames() const;
  size_t arena_bytes() const { return arena_floats_ * sizeof(float); }

 private:
  explicit Executor(const Graph& graph) : graph_(graph) {}
  Status Plan(const ExecutorOptions& options);

  const Graph& graph_;
  std::vector<std::unique_ptr<Backend>> backends_;
  std::vector<std::unique_ptr<OpImpl>> ops_;
  std::vector<float*> values_;  // per value id, into arena_
  float* arena_ = nullptr;
  size_t arena_floats_ = 0;
  float* workspace_ = nullptr;
  std::vector<std::vector<const float*>> op_inputs_;
};

}  // namespace flawlens
