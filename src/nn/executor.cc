// Executor: picks a kernel per node (backend fallback chain), plans one arena
// for all activations and one shared workspace, then runs without allocating.
//
// Buffer planning: value v (0 = input, i + 1 = output of node i) is live from
// the step that defines it (-1 for the input, i for node i) to the last step
// that reads it. The network input and output are live for the whole run, so
// Run() never overwrites the input and the output is readable afterwards.
// Offsets are assigned greedily, largest value first, at the lowest offset
// that does not collide with an already placed value whose lifetime overlaps
// (TFLite's "greedy by size" planner). All offsets are 16-byte aligned.
#include "nn/executor.h"

#include <algorithm>
#include <new>

#include "core/limits.h"

namespace flawlens {

namespace {

constexpr size_t kAlignBytes = 64;                      // arena/workspace base
constexpr size_t kAlignFloats = 16 / sizeof(float);     // every value offset
constexpr size_t kTailFloats = 16 / sizeof(float);      // readable slack after the arena

size_t RoundUp(size_t n, size_t m) { return (n + m - 1) / m * m; }

float* AllocFloats(size_t n) {
  if (n == 0) return nullptr;
  return static_cast<float*>(::operator new[](n * sizeof(float), std::align_val_t(kAlignBytes),
                                              std::nothrow));
}

void FreeFloats(float* p) {
  if (p != nullptr) ::operator delete[](p, std::align_val_t(kAlignBytes));
}

struct Interval {
  int value;
  size_t floats;
  int first, last;  // steps, inclusive
  size_t offset = 0;
};

}  // namespace

Result<std::unique_ptr<Executor>> Executor::Create(const Graph& graph,
                                                   const ExecutorOptions& options) {
  if (graph.nodes.empty() || graph.shapes.size() != graph.nodes.size() + 1)
    return MakeError(ErrorCode::kInvalidArgument,
                     "executor: graph is not finalized (call Graph::Finalize() first)");
  std::unique_ptr<Executor> executor(new Executor(graph));
  FLAWLENS_RETURN_IF_ERROR(executor->Plan(options));
  return executor;
}

Executor::~Executor() {
  ops_.clear();  // ops may reference backend state (e.g. a threadpool)
  backends_.clear();
  FreeFloats(arena_);
  FreeFloats(workspace_);
}

Status Executor::Plan(const ExecutorOptions& options) {
  // 1. Backends, most preferred first.
  std::vector<BackendKind> chain;
  switch (options.backend) {
    case BackendKind::kAuto:
      if (HaveXnnpack()) chain.push_back(BackendKind::kXnnpack);
      chain.push_back(BackendKind::kSimd);
      chain.push_back(BackendKind::kReference);
      break;
    case BackendKind::kXnnpack:
      if (!HaveXnnpack())
        return MakeError(ErrorCode::kUnsupported, "executor: this build has no XNNPACK backend");
      chain = {BackendKind::kXnnpack, BackendKind::kSimd, BackendKind::kReference};
      break;
    case BackendKind::kSimd:
      chain = {BackendKind::kSimd, BackendKind::kReference};
      break;
    case BackendKind::kReference:
      chain = {BackendKind::kReference};
      break;
    default:
      return MakeError(ErrorCode::kInvalidArgument, "executor: unknown backend kind %d",
                       static_cast<int>(options.backend));
  }
  for (BackendKind kind : chain) {
    std::unique_ptr<Backend> backend;
    switch (kind) {
      case BackendKind::kXnnpack: backend = MakeXnnpackBackend(options.threads); break;
      case BackendKind::kSimd: backend = MakeSimdBackend(); break;
      case BackendKind::kReference: backend = MakeRefBackend(); break;
      default: break;
    }
    if (backend == nullptr)
      return MakeError(ErrorCode::kUnsupported, "executor: backend '%s' is not available",
                       BackendKindName(kind));
    backends_.push_back(std::move(backend));
  }

  // 2. One operator per node: first backend that supports it.
  const int n = static_cast<int>(graph_.nodes.size());
  ops_.reserve(n);
  size_t workspace_floats = 0;
  for (int i = 0; i < n; ++i) {
    const Node& node = graph_.nodes[i];
    std::vector<Shape> input_shapes;
    for (int id : node.inputs) input_shapes.push_back(graph_.shapes[id]);
    OpSpec spec{node, input_shapes, graph_.shapes[i + 1]};
    std::unique_ptr<OpImpl> op;
    for (auto& backend : backends_) {
      auto created = backend->Create(spec);
      if (created.ok()) {
        op = std::move(created.value());
        break;
      }
      if (created.status().code() != ErrorCode::kUnsupported) return created.status();
    }
    if (op == nullptr)
      return MakeError(ErrorCode::kUnsupported,
                       "node '%s' (%s): no backend supports this configuration",
                       node.name.c_str(), OpTypeName(node.op));
    workspace_floats = std::max(workspace_floats, op->workspace_floats());
    ops_.push_back(std::move(op));
  }

  // 3. Lifetimes.
  const int num_values = n + 1;
  std::vector<Interval> intervals(num_values);
  for (int v = 0; v < num_values; ++v) {
    intervals[v].value = v;
    intervals[v].floats = RoundUp(static_cast<size_t>(graph_.shapes[v].elements()), kAlignFloats);
    intervals[v].first = v - 1;
    intervals[v].last = v - 1;
  }
  for (int i = 0; i < n; ++i)
    for (int id : graph_.nodes[i].inputs) intervals[id].last = std::max(intervals[id].last, i);
  intervals[0].last = n;
  intervals[graph_.output].last = n;

  // 4. Greedy by size.
  std::vector<int> order(num_values);
  for (int v = 0; v < num_values; ++v) order[v] = v;
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    return intervals[a].floats > intervals[b].floats;
  });
  std::vector<int> placed;  // value ids, sorted by offset
  size_t total = 0;
  for (int v : order) {
    Interval& cur = intervals[v];
    size_t offset = 0;
    for (int p : placed) {  // ascending offset
      const Interval& other = intervals[p];
      bool overlap_in_time = cur.first <= other.last && other.first <= cur.last;
      if (!overlap_in_time) continue;
      if (offset + cur.floats <= other.offset) break;  // fits in the gap before `other`
      offset = std::max(offset, other.offset + other.floats);
    }
    cur.offset = offset;
    total = std::max(total, offset + cur.floats);
    auto pos = std::upper_bound(placed.begin(), placed.end(), v, [&](int a, int b) {
      return intervals[a].offset < intervals[b].offset;
    });
    placed.insert(pos, v);
  }
  // Kernels (XNNPACK, SIMD tails) may read up to 16 bytes past a buffer's end.
  total += kTailFloats;
  workspace_floats = workspace_floats > 0 ? workspace_floats + kTailFloats : 0;
  uint64_t arena_bytes = 0, workspace_bytes = 0;
  if (!CheckedMul(uint64_t{total}, uint64_t{sizeof(float)}, &arena_bytes) ||
      !CheckedMul(uint64_t{workspace_floats}, uint64_t{sizeof(float)}, &workspace_bytes) ||
      arena_bytes > static_cast<uint64_t>(kMaxArenaBytes) ||
      workspace_bytes > static_cast<uint64_t>(kMaxArenaBytes))
    return MakeError(ErrorCode::kLimitExceeded,
                     "executor: planned buffers (%llu + %llu bytes) exceed the limit of %lld bytes",
                     static_cast<unsigned long long>(arena_bytes),
                     static_cast<unsigned long long>(workspace_bytes),
                     static_cast<long long>(kMaxArenaBytes));
  arena_floats_ = total;
  arena_ = AllocFloats(total);
  if (arena_ == nullptr)
    return MakeError(ErrorCode::kLimitExceeded, "executor: cannot allocate %llu bytes of arena",
                     static_cast<unsigned long long>(arena_bytes));
  if (workspace_floats > 0) {
    workspace_ = AllocFloats(workspace_floats);
    if (workspace_ == nullptr)
      return MakeError(ErrorCode::kLimitExceeded,
                       "executor: cannot allocate %llu bytes of workspace",
                       static_cast<unsigned long long>(workspace_bytes));
  }
  // Zero once so that nothing uninitialised is ever read (e.g. alignment tails).
  std::fill(arena_, arena_ + total, 0.0f);
  if (workspace_ != nullptr) std::fill(workspace_, workspace_ + workspace_floats, 0.0f);

  values_.resize(num_values);
  for (int v = 0; v < num_values; ++v) values_[v] = arena_ + intervals[v].offset;
  op_inputs_.resize(n);
  for (int i = 0; i < n; ++i)
    for (int id : graph_.nodes[i].inputs) op_inputs_[i].push_back(values_[id]);
  for (int i = 0; i < n; ++i) {
    Status st = ops_[i]->Prepare(op_inputs_[i].data(), values_[i + 1], workspace_);
    if (!st.ok())
      return MakeError(st.code(), "node '%s' (%s), kernel %s: %s", graph_.nodes[i].name.c_str(),
                       OpTypeName(graph_.nodes[i].op), ops_[i]->kernel_name(),
                       st.message().c_str());
  }
  return Status::Ok();
}

void Executor::Run() {
  const size_t n = ops_.size();
  for (size_t i = 0; i < n; ++i) ops_[i]->Run(op_inputs_[i].data(), values_[i + 1], workspace_);
}

std::vector<std::string> Executor::KernelNames() const {
  std::vector<std::string> names;
  names.reserve(ops_.size());
  for (const auto& op : ops_) names.emplace_back(op->kernel_name());
  return names;
}

}  // namespace flawlens
