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
//
// Row bands (see executor.h): band [y0, y1) of a window op reads input rows
// [y0*s - pad_top, (y1-1)*s - pad_top + (k-1)*d]; the part of that range
// outside the input becomes the band's own pad_top / pad_bottom. NHWC rows are
// contiguous, so a band's input and output are the full buffers at a row
// offset. Each band has its own slot of the workspace (bands run at once).
#include "nn/executor.h"

#include <algorithm>
#include <new>
#include <string>

#include "core/limits.h"
#include "core/thread_pool.h"

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

// Band boundaries are multiples of this many output rows: the Winograd
// kernel computes 4x4 output tiles from the tile's 6x6 inputs, so a band that
// starts on a tile boundary reproduces the unsplit op bit for bit.
constexpr int kBandRowGranularity = 4;

bool IsBandableOp(OpType op) { return (InfoOf(op).flags & kOpBandable) != 0; }
bool IsWindowOp(OpType op) { return (InfoOf(op).flags & kOpWindowed) != 0; }

// Rough work of one node, in multiply-accumulates or element visits.
int64_t NodeWork(const Node& node, const Shape& in, const Shape& out) {
  switch (node.op) {
    case OpType::kConv2d:
      return out.elements() * node.kernel_h * node.kernel_w * (in.c / std::max(1, node.groups));
    case OpType::kMaxPool2d:
    case OpType::kAvgPool2d:
      return out.elements() * node.kernel_h * node.kernel_w;
    case OpType::kReduceChannels:
      return in.elements();
    default:
      return out.elements();
  }
}

struct Interval {
  int value;
  size_t floats;
  int first, last;  // steps, inclusive
  size_t offset = 0;
};

// Lifetimes of every value (first and last step that touches it), then
// offsets greedily by size: values whose lifetimes do not overlap share
// memory. Returns the arena size in floats.
// reads[i]: the values step i reads (a node's inputs, unless the executor
// rewired it, see ElideConcats).
size_t PlaceValues(const Graph& graph, const std::vector<std::vector<int>>& reads,
                   std::vector<Interval>* out) {
  // Lifetimes.
  const int n = static_cast<int>(graph.nodes.size());
  const int num_values = n + 1;
  std::vector<Interval>& intervals = *out;
  intervals.assign(num_values, Interval{});
  for (int v = 0; v < num_values; ++v) {
    intervals[v].value = v;
    intervals[v].floats = RoundUp(static_cast<size_t>(graph.shapes[v].elements()), kAlignFloats);
    intervals[v].first = v - 1;
    intervals[v].last = v - 1;
  }
  for (int i = 0; i < n; ++i)
    for (int id : reads[i]) intervals[id].last = std::max(intervals[id].last, i);
  intervals[0].last = n;
  intervals[graph.output].last = n;

  // Offsets, greedily by size.
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
  return total;
}

// A concat whose only reader reads its inputs in place: nothing to do.
class ElidedConcat : public OpImpl {
 public:
  void Run(const float* const* /*inputs*/, float* /*output*/, float* /*workspace*/) override {}
  const char* kernel_name() const override { return "concat_elided"; }
};

}  // namespace

struct Executor::Band {
  std::unique_ptr<OpImpl> op;
  std::vector<int64_t> input_offsets;  // floats into each input value
  int64_t output_offset = 0;           // floats into the output value
  size_t workspace_offset = 0;         // floats into the workspace
  // Bound once buffers are planned.
  std::vector<const float*> inputs;
  float* output = nullptr;
  float* workspace = nullptr;
};

struct Executor::Step {
  std::unique_ptr<OpImpl> op;  // the whole op; null when split into bands
  Backend* backend = nullptr;  // the backend that created it
  std::vector<int> reads;      // value ids the op reads (node.inputs unless rewired)
  std::vector<const float*> inputs;
  std::vector<Band> bands;
  const char* kernel_name() const {
    return op != nullptr ? op->kernel_name() : bands.front().op->kernel_name();
  }
};

Executor::Executor(const Graph& graph) : graph_(graph) {}

Result<std::unique_ptr<Executor>> Executor::Create(
    const Graph& graph, std::vector<std::unique_ptr<Backend>> backends,
    const ExecutorOptions& options) {
  if (graph.nodes.empty() || graph.shapes.size() != graph.nodes.size() + 1)
    return MakeError(ErrorCode::kInvalidArgument,
                     "executor: graph is not finalized (call Graph::Finalize() first)");
  if (backends.empty())
    return MakeError(ErrorCode::kInvalidArgument, "executor: no backend given");
  for (const auto& b : backends)
    if (b == nullptr) return MakeError(ErrorCode::kInvalidArgument, "executor: null backend");
  std::unique_ptr<Executor> executor(new Executor(graph));
  executor->backends_ = std::move(backends);
  FLAWLENS_RETURN_IF_ERROR(executor->Plan(options));
  return executor;
}

Executor::~Executor() {
  steps_.clear();  // ops may reference backend state (e.g. a threadpool)
  backends_.clear();
  FreeFloats(arena_);
  FreeFloats(workspace_);
}

Status Executor::Plan(const ExecutorOptions& options) {
  // 1. Backends: given to Create(), most preferred first.

  // 2. One operator per node: first backend that supports it; split into
  // row bands where that pays.
  band_threads_ = std::min(std::max(options.threads, 1), ThreadPool::kMaxThreads);
  const int n = static_cast<int>(graph_.nodes.size());
  steps_.resize(n);
  size_t workspace_floats = 0;
  size_t band_slot_floats = 0;  // largest workspace of one band
  int max_bands = 0;
  for (int i = 0; i < n; ++i) {
    const Node& node = graph_.nodes[i];
    std::vector<Shape> input_shapes;
    for (int id : node.inputs) input_shapes.push_back(graph_.shapes[id]);
    OpSpec spec{node, input_shapes, graph_.shapes[i + 1]};
    std::unique_ptr<OpImpl> op;
    Backend* chosen = nullptr;
    for (auto& backend : backends_) {
      if (!backend->Implements(node.op)) continue;
      auto created = backend->Create(spec);
      if (created.ok()) {
        op = std::move(created.value());
        chosen = backend.get();
        break;
      }
      if (created.status().code() != ErrorCode::kUnsupported) return created.status();
    }
    if (op == nullptr)
      return MakeError(ErrorCode::kUnsupported,
                       "node '%s' (%s): no backend supports this configuration",
                       node.name.c_str(), OpTypeName(node.op));
    Step& step = steps_[i];
    step.backend = chosen;
    step.reads = node.inputs;
    // Some backends thread their operators themselves (XNNPACK).
    if (band_threads_ > 1 && IsBandableOp(node.op) &&
        !chosen->Has(BackendFeature::kOwnThreads)) {
      FLAWLENS_RETURN_IF_ERROR(
          CreateBands(i, *chosen, *op, band_threads_, options.min_band_work, &step));
    }
    if (step.bands.empty()) step.op = std::move(op);
  }
  ElideConcats();
  for (const Step& step : steps_) {
    if (step.bands.empty()) {
      workspace_floats = std::max(workspace_floats, step.op->workspace_floats());
    } else {
      for (const Band& band : step.bands)
        band_slot_floats = std::max(band_slot_floats, band.op->workspace_floats());
      max_bands = std::max(max_bands, static_cast<int>(step.bands.size()));
    }
  }
  // Band b of every split op uses workspace slot b.
  const size_t slot_stride =
      band_slot_floats > 0 ? RoundUp(band_slot_floats + kTailFloats, kAlignBytes / sizeof(float))
                           : 0;
  for (Step& step : steps_)
    for (size_t b = 0; b < step.bands.size(); ++b) step.bands[b].workspace_offset = b * slot_stride;
  workspace_floats = std::max(workspace_floats, slot_stride * max_bands);

  // 3. Value buffers: offsets into one arena.
  const int num_values = n + 1;
  std::vector<Interval> intervals;
  std::vector<std::vector<int>> reads;
  for (const Step& step : steps_) reads.push_back(step.reads);
  size_t total = PlaceValues(graph_, reads, &intervals);
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
  for (int i = 0; i < n; ++i) {
    Step& step = steps_[i];
    for (int id : step.reads) step.inputs.push_back(values_[id]);
    Status st = Status::Ok();
    if (step.op != nullptr) {
      st = step.op->Prepare(step.inputs.data(), values_[i + 1], workspace_);
    }
    for (size_t b = 0; b < step.bands.size() && st.ok(); ++b) {
      Band& band = step.bands[b];
      for (size_t k = 0; k < step.inputs.size(); ++k)
        band.inputs.push_back(step.inputs[k] + band.input_offsets[k]);
      band.output = values_[i + 1] + band.output_offset;
      band.workspace = workspace_ != nullptr ? workspace_ + band.workspace_offset : nullptr;
      st = band.op->Prepare(band.inputs.data(), band.output, band.workspace);
    }
    if (!st.ok())
      return MakeError(st.code(), "node '%s' (%s), kernel %s: %s", graph_.nodes[i].name.c_str(),
                       OpTypeName(graph_.nodes[i].op), step.kernel_name(), st.message().c_str());
  }
  if (max_bands > 1) {
    // Without threads (a build or a host that has none) the bands run one
    // after the other: same results, no speed-up.
    auto pool = SharedThreadPool(band_threads_);
    if (pool.ok()) pool_ = std::move(pool.value());
  }
  return Status::Ok();
}

// A concat read by nothing but one pointwise conv (1x1, stride 1, no
// padding, running whole) is dropped: the conv reads the concat's inputs in
// place, in concat order, so it sums the same products in the same order
// (bit-equal) without the copy. Only where the conv's backend offers that
// (BackendFeature::kConcatIntoPointwiseConv); otherwise nothing changes. (The default model's
// projection of the concatenated backbone features is such a conv.)
void Executor::ElideConcats() {
  const int n = static_cast<int>(graph_.nodes.size());
  std::vector<int> readers(n + 1, 0), reader(n + 1, -1);
  for (int i = 0; i < n; ++i) {
    for (int id : graph_.nodes[i].inputs) {
      ++readers[id];
      reader[id] = i;
    }
  }
  for (int i = 0; i < n; ++i) {
    const Node& cat = graph_.nodes[i];
    const int v = i + 1;
    if (cat.op != OpType::kConcat || v == graph_.output || readers[v] != 1) continue;
    const int j = reader[v];
    const Node& conv = graph_.nodes[j];
    Step& cs = steps_[j];
    const bool pointwise = conv.op == OpType::kConv2d && conv.inputs.size() == 1 && conv.groups == 1 &&
                           conv.kernel_h == 1 && conv.kernel_w == 1 && conv.stride_h == 1 &&
                           conv.stride_w == 1 && conv.pad_top == 0 && conv.pad_left == 0 &&
                           conv.pad_bottom == 0 && conv.pad_right == 0;
    if (!pointwise || cs.op == nullptr || !cs.bands.empty() || steps_[i].op == nullptr ||
        cs.backend == nullptr || !cs.backend->Has(BackendFeature::kConcatIntoPointwiseConv))
      continue;
    std::vector<Shape> input_shapes;
    for (int id : cat.inputs) input_shapes.push_back(graph_.shapes[id]);
    OpSpec spec{conv, input_shapes, graph_.shapes[j + 1]};
    auto created = cs.backend->Create(spec);
    if (!created.ok()) continue;
    cs.op = std::move(created.value());
    cs.reads = cat.inputs;
    steps_[i].op = std::make_unique<ElidedConcat>();
    steps_[i].reads.clear();
  }
}

Status Executor::CreateBands(int node_index, Backend& backend, const OpImpl& whole, int bands,
                             int64_t min_band_work, Step* step) {
  const Node& node = graph_.nodes[node_index];
  const Shape& out = graph_.shapes[node_index + 1];
  const Shape& in0 = graph_.shapes[node.inputs[0]];
  const int units = out.h / kBandRowGranularity;
  bands = std::min(bands, units);
  if (bands < 2) return Status::Ok();
  if (NodeWork(node, in0, out) / bands < min_band_work) return Status::Ok();

  std::vector<Band> result(bands);
  for (int b = 0; b < bands; ++b) {
    const int y0 = kBandRowGranularity * static_cast<int>(int64_t{units} * b / bands);
    const int y1 =
        b + 1 == bands ? out.h : kBandRowGranularity * static_cast<int>(int64_t{units} * (b + 1) / bands);
    Node sub = node;
    std::vector<Shape> sub_inputs;
    Band& band = result[b];
    if (IsWindowOp(node.op)) {
      const int lo = y0 * node.stride_h - node.pad_top;
      const int hi = (y1 - 1) * node.stride_h - node.pad_top + (node.kernel_h - 1) * node.dilation_h;
      const int a = std::max(lo, 0), z = std::min(hi, in0.h - 1);
      if (a > z) return Status::Ok();  // the band reads only padding: run whole
      sub.pad_top = a - lo;
      sub.pad_bottom = hi - z;
      const Shape sub_in{z - a + 1, in0.w, in0.c};
      if (WindowOutputSize(sub_in.h, sub.kernel_h, sub.stride_h, sub.dilation_h, sub.pad_top,
                           sub.pad_bottom) != y1 - y0)
        return Status::Ok();
      sub_inputs.push_back(sub_in);
      band.input_offsets.push_back(int64_t{a} * in0.w * in0.c);
    } else {
      // Same rows in every input (all have the output's height).
      for (int id : node.inputs) {
        const Shape& s = graph_.shapes[id];
        if (s.h != out.h) return Status::Ok();
        sub_inputs.push_back(Shape{y1 - y0, s.w, s.c});
        band.input_offsets.push_back(int64_t{y0} * s.w * s.c);
      }
    }
    const Shape sub_out{y1 - y0, out.w, out.c};
    band.output_offset = int64_t{y0} * out.w * out.c;
    OpSpec spec{sub, sub_inputs, sub_out};
    auto created = backend.Create(spec);
    // A band the backend would run with a different kernel could differ in
    // rounding from the whole op: then the op runs whole.
    if (!created.ok() || std::string(created.value()->kernel_name()) != whole.kernel_name())
      return Status::Ok();
    band.op = std::move(created.value());
  }
  step->bands = std::move(result);
  return Status::Ok();
}

void Executor::RunBand(void* step, int band) {
  Band& b = static_cast<Step*>(step)->bands[band];
  b.op->Run(b.inputs.data(), b.output, b.workspace);
}

void Executor::Run() {
  const size_t n = steps_.size();
  for (size_t i = 0; i < n; ++i) {
    Step& step = steps_[i];
    if (step.op != nullptr) {
      step.op->Run(step.inputs.data(), values_[i + 1], workspace_);
    } else if (pool_ != nullptr) {
      pool_->Run(static_cast<int>(step.bands.size()), &Executor::RunBand, &step);
    } else {
      for (size_t b = 0; b < step.bands.size(); ++b) RunBand(&step, static_cast<int>(b));
    }
  }
}

std::vector<std::string> Executor::KernelNames() const {
  std::vector<std::string> names;
  names.reserve(steps_.size());
  for (const Step& step : steps_) names.emplace_back(step.kernel_name());
  return names;
}

int Executor::banded_nodes() const {
  int count = 0;
  for (const Step& step : steps_) count += step.bands.empty() ? 0 : 1;
  return count;
}

int Executor::pool_threads() const {
  return pool_ != nullptr ? std::min(pool_->threads(), band_threads_) : 1;
}

}  // namespace flawlens
