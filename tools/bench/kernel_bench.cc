// kernel_bench: the anchor nets of the shared benchmark (A: seed CNN 64x64x3,
// B: FCN-256) and M, the MobileNetV3 backbone of the centernet TF.js model
// (its 1x1 / depthwise 3x3 and 5x5 convs with TF "SAME" padding, relu /
// hard_swish, on a 256x256 input; squeeze-excitation and residual adds left
// out), built directly from the OpImpls of one backend (no model file, no
// executor), deterministic weights; prints per-layer and total median ms and
// GFLOP/s. Builds natively and with em++ (see tools/bench/README.md).
//
//   kernel_bench [--backend simd|ref|xnnpack] [--net A|B|M|ABM] [--runs N]
//                [--warmup N] [--check] [--cpu] [--engine NAME]
// --cpu times with the thread CPU clock (native) or node's process.cpuUsage()
// (wasm): steadier than wall clock on a loaded machine.
// --check also runs the reference backend once and prints the max abs diff.
//
//   kernel_bench --model FILE [--backend simd|ref|xnnpack] [--runs N] [--check]
// profiles a model file's graph instead (e.g. the default model: the
// centernet backbone + its density head): every node built by the backend
// chain the executor uses (xnnpack -> simd -> ref), one buffer per value,
// each node timed on its own; per node and per op type median ms, then the
// whole network through the Executor (its planned arena), median of N runs.
// With --check the Executor's output is compared with the reference backend's.
// The per-node runner only uses the Backend/OpImpl interface, so the same
// source links against an older libflawlens_core.a for before/after tables.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <memory>
#include <string>
#include <vector>

#if defined(__EMSCRIPTEN__)
#include <emscripten.h>
#endif

#include "model/model.h"
#include "nn/backend.h"
#include "nn/executor.h"
#include "nn/graph.h"

namespace {

using flawlens::Activation;
using flawlens::Backend;
using flawlens::Node;
using flawlens::OpImpl;
using flawlens::OpSpec;
using flawlens::OpType;
using flawlens::Shape;

struct Layer {
  Node node;
  Shape in, out;
  std::vector<float> weight, bias;
  int64_t macs = 0;
  std::unique_ptr<OpImpl> op;
};

struct Net {
  std::string name;
  Shape input;
  std::vector<Layer> layers;
};

uint32_t g_seed = 12345;
float Rand() {  // deterministic, in [-1, 1)
  g_seed = g_seed * 1664525u + 1013904223u;
  return static_cast<float>(g_seed >> 8) / 8388608.0f - 1.0f;
}

// TF padding along one axis: 'same' puts the extra row/column bottom/right.
void TfPad(int in, int k, int s, bool same, int* out, int* before, int* after) {
  if (!same) {
    *out = (in - k) / s + 1;
    *before = *after = 0;
    return;
  }
  *out = (in + s - 1) / s;
  const int total = std::max(0, (*out - 1) * s + k - in);
  *before = total / 2;
  *after = total - *before;
}

// groups == in_c == oc: depthwise.
void AddConv(Net* net, int k, int s, int oc, bool same, Activation act, int groups = 1) {
  Layer l;
  l.in = net->layers.empty() ? net->input : net->layers.back().out;
  Node& n = l.node;
  n.name = "conv" + std::to_string(net->layers.size());
  n.op = OpType::kConv2d;
  n.kernel_h = n.kernel_w = k;
  n.stride_h = n.stride_w = s;
  n.out_channels = oc;
  n.groups = groups;
  n.activation = act;
  n.alpha = act == Activation::kHardSwish ? 0.1666259765625f : 0.01f;  // TF's float16 1/6
  int oh, ow;
  TfPad(l.in.h, k, s, same, &oh, &n.pad_top, &n.pad_bottom);
  TfPad(l.in.w, k, s, same, &ow, &n.pad_left, &n.pad_right);
  l.out = {oh, ow, oc};
  const int fan_in = k * k * (l.in.c / groups);
  l.weight.resize(static_cast<size_t>(oc) * fan_in);
  for (auto& w : l.weight) w = Rand() * 1.7f / std::sqrt(static_cast<float>(fan_in));
  l.bias.resize(oc);
  for (auto& b : l.bias) b = 0.1f * Rand();
  l.macs = int64_t{oh} * ow * oc * fan_in;
  net->layers.push_back(std::move(l));
}

void AddMaxPool(Net* net) {
  Layer l;
  l.in = net->layers.back().out;
  Node& n = l.node;
  n.name = "maxpool" + std::to_string(net->layers.size());
  n.op = OpType::kMaxPool2d;
  n.kernel_h = n.kernel_w = 2;
  n.stride_h = n.stride_w = 2;
  l.out = {(l.in.h - 2) / 2 + 1, (l.in.w - 2) / 2 + 1, l.in.c};
  net->layers.push_back(std::move(l));
}

void AddDense(Net* net, int units, Activation act) {
  Layer l;
  l.in = net->layers.back().out;
  Node& n = l.node;
  n.name = "dense" + std::to_string(net->layers.size());
  n.op = OpType::kDense;
  n.out_channels = units;
  n.activation = act;
  l.out = {1, 1, units};
  const int64_t fan_in = l.in.elements();
  l.weight.resize(static_cast<size_t>(units) * fan_in);
  for (auto& w : l.weight) w = Rand() * 1.7f / std::sqrt(static_cast<float>(fan_in));
  l.bias.resize(units);
  for (auto& b : l.bias) b = 0.1f * Rand();
  l.macs = fan_in * units;
  net->layers.push_back(std::move(l));
}

Net MakeNet(char which) {
  Net net;
  if (which == 'A') {
    net.name = "A";
    net.input = {64, 64, 3};
    AddConv(&net, 3, 1, 32, false, Activation::kRelu);
    AddMaxPool(&net);
    AddConv(&net, 3, 1, 64, false, Activation::kRelu);
    AddMaxPool(&net);
    AddDense(&net, 128, Activation::kRelu);  // flattens 14x14x64 = 12544
    AddDense(&net, 1, Activation::kSigmoid);
  } else if (which == 'M') {
    net.name = "M";
    net.input = {256, 256, 3};
    const Activation kRelu = Activation::kRelu, kHs = Activation::kHardSwish;
    AddConv(&net, 3, 2, 16, true, kHs);
    // expanded_conv .. expanded_conv_14: expand channels, depthwise kernel
    // and stride, project channels, activation.
    const struct { int expand, k, s, project; Activation act; } blocks[] = {
        {16, 3, 1, 16, kRelu},  {64, 3, 2, 24, kRelu},  {72, 3, 1, 24, kRelu},
        {72, 5, 2, 32, kRelu},  {96, 5, 1, 32, kRelu},  {96, 5, 1, 32, kRelu},
        {192, 3, 2, 64, kHs},   {160, 3, 1, 64, kHs},   {144, 3, 1, 64, kHs},
        {144, 3, 1, 64, kHs},   {384, 3, 1, 88, kHs},   {528, 3, 1, 88, kHs},
        {528, 5, 2, 120, kHs},  {720, 5, 1, 120, kHs},  {720, 5, 1, 120, kHs}};
    for (const auto& b : blocks) {
      if (net.layers.back().out.c != b.expand) AddConv(&net, 1, 1, b.expand, true, b.act);
      AddConv(&net, b.k, b.s, b.expand, true, b.act, /*groups=*/b.expand);
      AddConv(&net, 1, 1, b.project, true, Activation::kNone);
    }
  } else {
    net.name = "B";
    net.input = {256, 256, 3};
    const int oc[] = {32, 32, 64, 64, 128, 128};
    for (int i = 0; i < 6; ++i) AddConv(&net, 3, i % 2 == 0 ? 2 : 1, oc[i], true, Activation::kRelu);
    AddConv(&net, 1, 1, 1, true, Activation::kNone);
  }
  for (auto& l : net.layers) {
    l.node.weight.data = l.weight.empty() ? nullptr : l.weight.data();
    l.node.weight.shape = {static_cast<int64_t>(l.weight.size())};
    l.node.bias.data = l.bias.empty() ? nullptr : l.bias.data();
    l.node.bias.shape = {static_cast<int64_t>(l.bias.size())};
  }
  return net;
}

struct Runner {
  std::vector<std::unique_ptr<OpImpl>> ops;
  std::vector<std::vector<float>> values;  // values[0] = input
  std::vector<float> workspace;

  bool Build(Net& net, Backend* backend, Backend* fallback) {
    values.assign(1, std::vector<float>(net.input.elements()));
    size_t ws = 0;
    for (auto& l : net.layers) {
      std::vector<Shape> ins = {l.in};
      OpSpec spec{l.node, ins, l.out};
      auto op = backend->Create(spec);
      if (!op.ok() && op.status().code() == flawlens::ErrorCode::kUnsupported && fallback != nullptr) {
        op = fallback->Create(spec);
      }
      if (!op.ok()) {
        fprintf(stderr, "%s: %s\n", l.node.name.c_str(), op.status().ToString().c_str());
        return false;
      }
      ws = std::max(ws, (*op)->workspace_floats());
      ops.push_back(std::move(*op));
      values.emplace_back(l.out.elements());
    }
    workspace.assign(ws + 4, 0.0f);
    return true;
  }
  void RunLayer(size_t i) {
    const float* in = values[i].data();
    ops[i]->Run(&in, values[i + 1].data(), workspace.data());
  }
};

std::string g_engine = "flawlens-kernels";  // --engine: name in the RESULT line
bool g_cpu_clock = false;  // --cpu: thread CPU time (native: ignores time spent preempted)

double NowMs() {
  if (g_cpu_clock) {
#if defined(__EMSCRIPTEN__)
    // node: process CPU time (user + system), microsecond resolution.
    return EM_ASM_DOUBLE({
      const u = process.cpuUsage();
      return (u.user + u.system) / 1000;
    });
#endif
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
  }
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Times `runs` passes of steps 0..n-1 (each step timed, and the pass), after a
// warm-up of `warmup` passes and, unless `exact_warmup`, at least 1 s (as the
// shared bench does).
struct StepTimes {
  std::vector<std::vector<double>> per_step;
  std::vector<double> totals;
};
template <typename Step>
StepTimes TimeSteps(size_t n, int runs, int warmup, bool exact_warmup, Step&& step) {
  StepTimes out;
  out.per_step.resize(n);
  const double warm_start = NowMs();
  for (int it = 0; it < warmup || (!exact_warmup && NowMs() - warm_start < 1000.0); ++it) {
    for (size_t i = 0; i < n; ++i) step(i);
  }
  for (int it = 0; it < runs; ++it) {
    const double t0 = NowMs();
    double prev = t0;
    for (size_t i = 0; i < n; ++i) {
      step(i);
      const double t = NowMs();
      out.per_step[i].push_back(t - prev);
      prev = t;
    }
    out.totals.push_back(prev - t0);
  }
  return out;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}
double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(std::lround(p * (v.size() - 1)))];
}

int BenchNet(char which, const std::string& backend_name, int runs, int warmup, bool exact_warmup, bool check) {
  Net net = MakeNet(which);
  std::unique_ptr<Backend> backend;
  if (backend_name == "simd") backend = flawlens::MakeSimdBackend();
  else if (backend_name == "ref") backend = flawlens::MakeRefBackend();
  else if (backend_name == "xnnpack") backend = flawlens::MakeXnnpackBackend(1);
  if (backend == nullptr) {
    fprintf(stderr, "backend '%s' not available\n", backend_name.c_str());
    return 1;
  }
  auto ref = flawlens::MakeRefBackend();
  Runner r;
  if (!r.Build(net, backend.get(), ref.get())) return 1;
  for (auto& x : r.values[0]) x = Rand();

  const size_t n = net.layers.size();
  const StepTimes times = TimeSteps(n, runs, warmup, exact_warmup, [&](size_t i) { r.RunLayer(i); });
  const std::vector<std::vector<double>>& per_layer = times.per_step;
  const std::vector<double>& totals = times.totals;
  int64_t macs = 0;
  printf("net %s, backend %s, %d runs (median ms)\n", net.name.c_str(), backend_name.c_str(), runs);
  printf("  %-10s %-14s %-14s %-40s %9s %9s %8s\n", "layer", "in", "out", "kernel", "med ms", "min ms",
         "GFLOP/s");
  for (size_t i = 0; i < n; ++i) {
    const Layer& l = net.layers[i];
    const double ms = Median(per_layer[i]);
    macs += l.macs;
    char in[32], out[32];
    snprintf(in, sizeof(in), "%dx%dx%d", l.in.h, l.in.w, l.in.c);
    snprintf(out, sizeof(out), "%dx%dx%d", l.out.h, l.out.w, l.out.c);
    const double min_ms = *std::min_element(per_layer[i].begin(), per_layer[i].end());
    printf("  %-10s %-14s %-14s %-40s %9.3f %9.3f %8.2f\n", l.node.name.c_str(), in, out, r.ops[i]->kernel_name(), ms,
           min_ms, l.macs > 0 ? 2.0 * l.macs / (ms * 1e6) : 0.0);
  }
  const double med = Median(totals), p10 = Percentile(totals, 0.1);
  const double min_total = *std::min_element(totals.begin(), totals.end());
  printf("  TOTAL net %s: median %.3f ms, p10 %.3f ms, min %.3f ms, %.1f MFLOP, %.2f GFLOP/s (median), %.2f (p10)\n",
         net.name.c_str(), med, p10, min_total, 2.0 * macs / 1e6, 2.0 * macs / (med * 1e6), 2.0 * macs / (p10 * 1e6));
  // Same fields as the shared bench's common.report(), so this line can join
  // its run.sh as an engine (ENGINE_CMD_<name>="... kernel_bench.js --net").
  printf("RESULT {\"engine\":\"%s\",\"net\":\"%s\",\"flops\":%lld,\"n\":%d,\"median\":%.4f,"
         "\"p10\":%.4f,\"p90\":%.4f,\"min\":%.4f,\"max\":%.4f,\"gflops\":%.3f,\"threads\":1}\n",
         g_engine.c_str(), net.name.c_str(), static_cast<long long>(2 * macs), runs, med, p10,
         Percentile(totals, 0.9), min_total, *std::max_element(totals.begin(), totals.end()),
         2.0 * macs / (med * 1e6));

  if (check) {
    Runner rr;
    if (!rr.Build(net, ref.get(), nullptr)) return 1;
    rr.values[0] = r.values[0];
    for (size_t i = 0; i < n; ++i) rr.RunLayer(i);
    double max_diff = 0;
    for (size_t i = 1; i <= n; ++i) {
      for (size_t j = 0; j < r.values[i].size(); ++j) {
        max_diff = std::max(max_diff, static_cast<double>(std::fabs(r.values[i][j] - rr.values[i][j])));
      }
    }
    printf("  check vs ref: max abs diff over all layers %.3g, output %.6f vs %.6f\n", max_diff, r.values[n][0],
           rr.values[n][0]);
  }
  return 0;
}


// ---- --model: a model file's graph, node by node ------------------------------

bool ReadFile(const std::string& path, std::vector<uint8_t>* out) {
  FILE* f = fopen(path.c_str(), "rb");
  if (f == nullptr) return false;
  fseek(f, 0, SEEK_END);
  const long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  out->resize(n > 0 ? static_cast<size_t>(n) : 0);
  const bool ok = n > 0 && fread(out->data(), 1, out->size(), f) == out->size();
  fclose(f);
  return ok;
}

int64_t NodeMacs(const flawlens::Graph& g, size_t i) {
  const Node& node = g.nodes[i];
  const Shape& out = g.shapes[i + 1];
  const Shape& in = g.shapes[node.inputs[0]];
  switch (node.op) {
    case OpType::kConv2d:
      return out.elements() * node.kernel_h * node.kernel_w * (in.c / node.groups);
    case OpType::kDense: return int64_t{node.out_channels} * in.elements();
    case OpType::kPositionMahalanobis: return int64_t{in.h} * in.w * in.c * (int64_t{in.c} + 1);
    default: return 0;
  }
}

// A short label of a node for the tables: op, kernel, stride, depthwise.
std::string NodeKind(const flawlens::Graph& g, size_t i) {
  const Node& n = g.nodes[i];
  if (n.op != OpType::kConv2d) return flawlens::OpTypeName(n.op);
  const Shape& in = g.shapes[n.inputs[0]];
  const Shape& out = g.shapes[i + 1];
  char buf[64];
  const bool dw = n.groups > 1 && n.groups == in.c;
  snprintf(buf, sizeof(buf), "%s%dx%ds%d%s", dw ? "dw" : "conv", n.kernel_h, n.kernel_w, n.stride_h,
           !dw && out.h == 1 && out.w == 1 ? "(1x1 map)" : "");
  return buf;
}

struct GraphRunner {
  std::vector<std::unique_ptr<OpImpl>> ops;
  std::vector<std::vector<float>> values;  // per value id (+ slack for SIMD tails)
  std::vector<std::vector<const float*>> inputs;
  std::vector<float> workspace;

  bool Build(const flawlens::Graph& g, const std::vector<Backend*>& chain) {
    values.clear();
    for (const Shape& s : g.shapes) values.emplace_back(static_cast<size_t>(s.elements()) + 16, 0.0f);
    size_t ws = 0;
    for (size_t i = 0; i < g.nodes.size(); ++i) {
      const Node& node = g.nodes[i];
      std::vector<Shape> in_shapes;
      std::vector<const float*> in_ptrs;
      for (int id : node.inputs) {
        in_shapes.push_back(g.shapes[id]);
        in_ptrs.push_back(values[id].data());
      }
      OpSpec spec{node, in_shapes, g.shapes[i + 1]};
      std::unique_ptr<OpImpl> op;
      for (Backend* b : chain) {
        auto created = b->Create(spec);
        if (created.ok()) {
          op = std::move(created.value());
          break;
        }
        if (created.status().code() != flawlens::ErrorCode::kUnsupported) {
          fprintf(stderr, "%s: %s\n", node.name.c_str(), created.status().ToString().c_str());
          return false;
        }
      }
      if (op == nullptr) {
        fprintf(stderr, "%s: no backend supports it\n", node.name.c_str());
        return false;
      }
      ws = std::max(ws, op->workspace_floats());
      ops.push_back(std::move(op));
      inputs.push_back(std::move(in_ptrs));
    }
    workspace.assign(ws + 16, 0.0f);
    for (size_t i = 0; i < ops.size(); ++i) {
      auto st = ops[i]->Prepare(inputs[i].data(), values[i + 1].data(), workspace.data());
      if (!st.ok()) {
        fprintf(stderr, "%s: %s\n", g.nodes[i].name.c_str(), st.ToString().c_str());
        return false;
      }
    }
    return true;
  }
  void RunNode(size_t i) { ops[i]->Run(inputs[i].data(), values[i + 1].data(), workspace.data()); }
};

flawlens::BackendKind KindOf(const std::string& name) {
  if (name == "ref") return flawlens::BackendKind::kReference;
  if (name == "xnnpack") return flawlens::BackendKind::kXnnpack;
  return flawlens::BackendKind::kSimd;
}

int BenchModel(const std::string& path, const std::string& backend_name, int runs, bool check) {
  std::vector<uint8_t> bytes;
  if (!ReadFile(path, &bytes)) {
    fprintf(stderr, "cannot read %s\n", path.c_str());
    return 1;
  }
  auto model = flawlens::LoadModel(bytes.data(), bytes.size());
  if (!model.ok()) {
    fprintf(stderr, "%s: %s\n", path.c_str(), model.status().ToString().c_str());
    return 1;
  }
  const flawlens::Graph& g = (*model)->graph;
  std::vector<std::unique_ptr<Backend>> owned;
  if (backend_name == "xnnpack") owned.push_back(flawlens::MakeXnnpackBackend(1));
  if (backend_name != "ref") owned.push_back(flawlens::MakeSimdBackend());
  owned.push_back(flawlens::MakeRefBackend());
  std::vector<Backend*> chain;
  for (auto& b : owned) {
    if (b == nullptr) {
      fprintf(stderr, "backend '%s' not available\n", backend_name.c_str());
      return 1;
    }
    chain.push_back(b.get());
  }
  GraphRunner r;
  if (!r.Build(g, chain)) return 1;
  for (auto& x : r.values[0]) x = 127.5f + 127.5f * Rand();  // the backbone takes 0..255

  const size_t n = g.nodes.size();
  const StepTimes times = TimeSteps(n, runs, 3, false, [&](size_t i) { r.RunNode(i); });
  const std::vector<std::vector<double>>& per_node = times.per_step;
  const std::vector<double>& totals = times.totals;

  printf("model %s, backend %s, %d runs (median ms per node, each node timed on its own)\n", path.c_str(),
         backend_name.c_str(), runs);
  printf("  %-3s %-48s %-14s %-14s %-14s %-44s %8s %8s\n", "#", "node", "kind", "in", "out", "kernel",
         "med ms", "GFLOP/s");
  struct Group { double ms = 0; int64_t macs = 0; int count = 0; };
  std::map<std::string, Group> groups;
  double sum_med = 0;
  int64_t macs = 0;
  for (size_t i = 0; i < n; ++i) {
    const Node& node = g.nodes[i];
    const Shape& in = g.shapes[node.inputs[0]];
    const Shape& out = g.shapes[i + 1];
    const double ms = Median(per_node[i]);
    const int64_t m = NodeMacs(g, i);
    sum_med += ms;
    macs += m;
    const std::string kind = NodeKind(g, i);
    Group& gr = groups[kind];
    gr.ms += ms;
    gr.macs += m;
    ++gr.count;
    char si[32], so[32];
    snprintf(si, sizeof(si), "%dx%dx%d", in.h, in.w, in.c);
    snprintf(so, sizeof(so), "%dx%dx%d", out.h, out.w, out.c);
    std::string name = node.name;
    if (name.size() > 48) name = ".." + name.substr(name.size() - 46);
    printf("  %-3zu %-48s %-14s %-14s %-14s %-44s %8.3f %8.2f\n", i, name.c_str(), kind.c_str(), si, so,
           r.ops[i]->kernel_name(), ms, m > 0 ? 2.0 * m / (ms * 1e6) : 0.0);
  }
  printf("  by kind (sum of node medians %.3f ms):\n", sum_med);
  std::vector<std::pair<std::string, Group>> sorted(groups.begin(), groups.end());
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.second.ms > b.second.ms; });
  for (const auto& [kind, gr] : sorted) {
    printf("    %-18s %3d nodes %9.3f ms %5.1f %%  %8.1f MFLOP %8.2f GFLOP/s\n", kind.c_str(), gr.count, gr.ms,
           100.0 * gr.ms / sum_med, 2.0 * gr.macs / 1e6, gr.macs > 0 ? 2.0 * gr.macs / (gr.ms * 1e6) : 0.0);
  }
  printf("  node by node: median %.3f ms, min %.3f ms, %.1f MFLOP\n", Median(totals),
         *std::min_element(totals.begin(), totals.end()), 2.0 * macs / 1e6);

  // The whole network as the product runs it: the Executor with its arena.
  flawlens::ExecutorOptions eo;
  eo.backend = KindOf(backend_name);
  auto ex = flawlens::Executor::Create(g, eo);
  if (!ex.ok()) {
    fprintf(stderr, "executor: %s\n", ex.status().ToString().c_str());
    return 1;
  }
  std::copy(r.values[0].begin(), r.values[0].begin() + g.input.elements(), (*ex)->input());
  const std::vector<std::string> ex_kernels = (*ex)->KernelNames();
  for (size_t i = 0; i < n && i < ex_kernels.size(); ++i) {
    if (ex_kernels[i] != r.ops[i]->kernel_name())
      printf("  executor runs node %zu (%s) with %s\n", i, g.nodes[i].name.c_str(), ex_kernels[i].c_str());
  }
  std::vector<double> ex_times;
  const double ex_warm = NowMs();
  for (int it = 0; it < 3 || NowMs() - ex_warm < 1000.0; ++it) (*ex)->Run();
  for (int it = 0; it < runs; ++it) {
    const double t0 = NowMs();
    (*ex)->Run();
    ex_times.push_back(NowMs() - t0);
  }
  const double med = Median(ex_times);
  printf("  executor: median %.3f ms, p10 %.3f ms, min %.3f ms, %.2f GFLOP/s (median)\n", med,
         Percentile(ex_times, 0.1), *std::min_element(ex_times.begin(), ex_times.end()), 2.0 * macs / (med * 1e6));
  printf("RESULT {\"engine\":\"%s\",\"net\":\"model\",\"flops\":%lld,\"n\":%d,\"median\":%.4f,"
         "\"p10\":%.4f,\"p90\":%.4f,\"min\":%.4f,\"max\":%.4f,\"gflops\":%.3f,\"threads\":1}\n",
         g_engine.c_str(), static_cast<long long>(2 * macs), runs, med, Percentile(ex_times, 0.1),
         Percentile(ex_times, 0.9), *std::min_element(ex_times.begin(), ex_times.end()),
         *std::max_element(ex_times.begin(), ex_times.end()), 2.0 * macs / (med * 1e6));

  if (check) {
    flawlens::ExecutorOptions ro;
    ro.backend = flawlens::BackendKind::kReference;
    auto rex = flawlens::Executor::Create(g, ro);
    if (!rex.ok()) return 1;
    std::copy(r.values[0].begin(), r.values[0].begin() + g.input.elements(), (*rex)->input());
    (*rex)->Run();
    const int64_t count = g.output_shape().elements();
    double max_abs = 0, max_ref = 0;
    for (int64_t j = 0; j < count; ++j) {
      max_abs = std::max(max_abs, std::fabs(double((*ex)->output()[j]) - (*rex)->output()[j]));
      max_ref = std::max(max_ref, std::fabs(double((*rex)->output()[j])));
    }
    printf("  check vs ref: output max |diff| %.3g (max |ref| %.3g, rel %.3g)\n", max_abs, max_ref,
           max_ref > 0 ? max_abs / max_ref : 0.0);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string backend = "simd", nets = "AB", model;
  int runs = 0, warmup = -1;
  bool check = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--backend" && i + 1 < argc) backend = argv[++i];
    else if (a == "--net" && i + 1 < argc) nets = argv[++i];
    else if (a == "--runs" && i + 1 < argc) runs = atoi(argv[++i]);
    else if (a == "--warmup" && i + 1 < argc) warmup = atoi(argv[++i]);
    else if (a == "--check") check = true;
    else if (a == "--cpu") g_cpu_clock = true;
    else if (a == "--engine" && i + 1 < argc) g_engine = argv[++i];
    else if (a == "--model" && i + 1 < argc) model = argv[++i];
    else {
      fprintf(stderr, "usage: kernel_bench [--backend simd|ref|xnnpack] [--net A|B|M|ABM] [--runs N] [--warmup N] [--check] [--cpu] [--engine NAME]\n"
              "       kernel_bench --model FILE [--backend simd|ref|xnnpack] [--runs N] [--check] [--cpu]\n");
      return 2;
    }
  }
  if (!model.empty()) return BenchModel(model, backend, runs > 0 ? runs : 30, check);
  for (char c : nets) {
    if (c != 'A' && c != 'B' && c != 'M') continue;
    const int n_runs = runs > 0 ? runs : (c == 'A' ? 200 : c == 'M' ? 30 : 50);
    const int n_warm = warmup >= 0 ? warmup : (c == 'A' ? 20 : 5);
    if (BenchNet(c, backend, n_runs, n_warm, warmup >= 0, check) != 0) return 1;
  }
  return 0;
}
