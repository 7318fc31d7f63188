// Runs a finalized Graph. All buffers are planned at Create(): one arena for
// activations (values whose lifetimes do not overlap share memory) and one
// workspace; Run() allocates nothing.
//
// Threads: with threads > 1, ops the XNNPACK backend runs use its own
// threadpool (native builds); every other op whose work is worth it is split
// into horizontal bands of output rows, one operator per band, created at
// Create() by the same backend for the band's sub-shape (input rows the band
// reads, top/bottom padding adjusted), and the bands run on a shared thread
// pool. Only ops whose output rows depend on a known window of input rows are
// split (conv2d, max/avg pool, activation, add, concat, reduce_channels);
// every other op runs whole. The kernels compute each output row from the
// same inputs in the same order whichever band it is in (Winograd bands start
// on a multiple of its 4-row tile), so results are bit-equal to one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "nn/backend.h"
#include "nn/graph.h"

namespace flawlens {

class ThreadPool;

struct ExecutorOptions {
  BackendKind backend = BackendKind::kAuto;
  // XNNPACK threadpool size (native) and the number of row bands other ops
  // are split into (see above).
  int threads = 1;
  // An op is split only if each band gets at least this much work
  // (multiply-accumulates for conv2d, window taps for pools, elements for the
  // rest): below it, waking a thread costs more than it saves.
  int64_t min_band_work = 1 << 17;
};

class Executor {
 public:
  // `graph` must outlive the executor (weights are read in place or packed).
  // `backends`, most preferred first: each node runs on the first one that
  // implements it (kernels/backends.h makes the usual chains; CreateExecutor()
  // there does both steps). options.backend is not read here.
  static Result<std::unique_ptr<Executor>> Create(const Graph& graph,
                                                  std::vector<std::unique_ptr<Backend>> backends,
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
  // Bands per split op (1: nothing is split) and how many nodes are split.
  int band_threads() const { return band_threads_; }
  int banded_nodes() const;
  // Threads that actually run bands (1 when the build has no threads).
  int pool_threads() const;

 private:
  struct Band;
  struct Step;

  explicit Executor(const Graph& graph);
  Status Plan(const ExecutorOptions& options);
  Status CreateBands(int node_index, Backend& backend, const OpImpl& whole, int bands,
                     int64_t min_band_work, Step* step);
  void ElideConcats();
  static void RunBand(void* step, int band);

  const Graph& graph_;
  std::vector<std::unique_ptr<Backend>> backends_;
  std::vector<Step> steps_;
  std::vector<float*> values_;  // per value id, into arena_
  float* arena_ = nullptr;
  size_t arena_floats_ = 0;
  float* workspace_ = nullptr;
  int band_threads_ = 1;
  std::shared_ptr<ThreadPool> pool_;
};

}  // namespace flawlens
