// engine_bench nets: the anchor nets of the shared benchmark (A: seed CNN
// 64x64x3, B: FCN-256, TF 'same' padding) and M, the MobileNetV3 backbone of
// the centernet TF.js model (its 1x1 / depthwise 3x3 and 5x5 convs with TF
// "SAME" padding, relu / hard_swish, on a 256x256 input; squeeze-excitation
// and residual adds left out), built directly from the OpImpls of one backend
// (no model file, no executor) with deterministic weights. Per layer and total
// median ms and GFLOP/s; the RESULT line joins the anchor benchmark's run.sh.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "bench_util.h"
#include "engine_bench.h"
#include "nn/backend.h"
#include "nn/graph.h"
#include "kernels/backends.h"

namespace flawlens::bench {
namespace {

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
      if (!op.ok() && op.status().code() == ErrorCode::kUnsupported && fallback != nullptr) {
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

int BenchNet(char which, const std::string& backend_name, int runs, int warmup, bool exact_warmup,
             bool check, const std::string& engine) {
  Net net = MakeNet(which);
  std::unique_ptr<Backend> backend;
  if (backend_name == "simd") backend = MakeSimdBackend();
  else if (backend_name == "ref") backend = MakeRefBackend();
  else if (backend_name == "xnnpack" && HaveXnnpack()) backend = MakeXnnpackBackend(1);
  if (backend == nullptr) {
    fprintf(stderr, "backend '%s' not available\n", backend_name.c_str());
    return 1;
  }
  auto ref = MakeRefBackend();
  Runner r;
  if (!r.Build(net, backend.get(), ref.get())) return 1;
  for (auto& x : r.values[0]) x = Rand();

  const size_t n = net.layers.size();
  const StepTimes times =
      TimeSteps(n, runs, warmup, exact_warmup, [&](size_t i) { r.RunLayer(i); });
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
  // Joins the shared bench's run.sh as an engine (ENGINE_CMD_<name>="... engine_bench.js nets --net").
  PrintResult(engine, net.name, 2 * macs, totals);

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


}  // namespace

int RunNets(const NetsOptions& opt) {
  for (char c : opt.nets) {
    if (c != 'A' && c != 'B' && c != 'M') {
      std::fprintf(stderr, "engine_bench nets: unknown net '%c' (A, B or M)\n", c);
      return 2;
    }
    const int n_runs = opt.runs > 0 ? opt.runs : (c == 'A' ? 200 : c == 'M' ? 30 : 50);
    const int n_warm = opt.warmup >= 0 ? opt.warmup : (c == 'A' ? 20 : 5);
    if (BenchNet(c, opt.backend, n_runs, n_warm, opt.warmup >= 0, opt.check, opt.engine) != 0)
      return 1;
  }
  return 0;
}

}  // namespace flawlens::bench
