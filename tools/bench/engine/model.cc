// engine_bench model FILE: a model file's graph (e.g. the default model: the
// centernet backbone + its density head), every node built by the backend
// chain the executor uses (xnnpack -> simd -> ref), one buffer per value, each
// node timed on its own; per node and per op kind median ms, then the whole
// network through the Executor (its planned arena). With --check the
// Executor's output is compared with the reference backend's. The per-node
// runner only uses the Backend/OpImpl interface, so the same source links
// against an older core library for before/after tables.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bench_util.h"
#include "engine_bench.h"
#include "model/model.h"
#include "nn/backend.h"
#include "nn/executor.h"
#include "nn/graph.h"
#include "kernels/backends.h"

namespace flawlens::bench {
namespace {

int64_t NodeMacs(const Graph& g, size_t i) {
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
std::string NodeKind(const Graph& g, size_t i) {
  const Node& n = g.nodes[i];
  if (n.op != OpType::kConv2d) return OpTypeName(n.op);
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

  bool Build(const Graph& g, const std::vector<Backend*>& chain) {
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
        if (created.status().code() != ErrorCode::kUnsupported) {
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

BackendKind KindOf(const std::string& name) {
  if (name == "ref") return BackendKind::kReference;
  if (name == "xnnpack") return BackendKind::kXnnpack;
  return BackendKind::kSimd;
}

int BenchModel(const std::string& path, const std::string& backend_name, int runs, bool check,
               const std::string& engine) {
  std::vector<uint8_t> bytes;
  if (!ReadFile(path, &bytes)) {
    fprintf(stderr, "cannot read %s\n", path.c_str());
    return 1;
  }
  auto model = LoadModel(bytes.data(), bytes.size());
  if (!model.ok()) {
    fprintf(stderr, "%s: %s\n", path.c_str(), model.status().ToString().c_str());
    return 1;
  }
  const Graph& g = (*model)->graph;
  std::vector<std::unique_ptr<Backend>> owned;
  if (backend_name == "xnnpack") owned.push_back(HaveXnnpack() ? MakeXnnpackBackend(1) : nullptr);
  if (backend_name != "ref") owned.push_back(MakeSimdBackend());
  owned.push_back(MakeRefBackend());
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
  ExecutorOptions eo;
  eo.backend = KindOf(backend_name);
  auto ex = CreateExecutor(g, eo);
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
  PrintResult(engine, "model", 2 * macs, ex_times);

  if (check) {
    ExecutorOptions ro;
    ro.backend = BackendKind::kReference;
    auto rex = CreateExecutor(g, ro);
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

int RunModel(const ModelOptions& opt) {
  return BenchModel(opt.path, opt.backend, opt.runs, opt.check, opt.engine);
}

}  // namespace flawlens::bench
