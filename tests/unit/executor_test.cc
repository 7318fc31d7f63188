// Executor: same results on ref / simd / auto for a chain and a DAG with skip
// connections, planned buffers match an unplanned evaluation exactly, buffers
// are shared, the input survives Run(), and Run() allocates nothing. With
// threads, ops split into row bands give bit-equal results, and the thread
// pool runs every task exactly once.
#include "nn/executor.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <limits>
#include <new>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "nn/backend.h"
#include "nn/graph.h"
#include "kernels/backends.h"
#include "test_models.h"

// ---- allocation counter: replaces global operator new in this binary ----------
namespace {
std::atomic<bool> g_counting{false};
std::atomic<long> g_allocations{0};

void* CountedAlloc(std::size_t n, std::size_t align) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1);
  if (n == 0) n = 1;
  void* p = nullptr;
  if (align <= alignof(std::max_align_t)) {
    p = std::malloc(n);
  } else {
    p = std::aligned_alloc(align, (n + align - 1) / align * align);
  }
  if (p == nullptr) std::abort();
  return p;
}
}  // namespace

void* operator new(std::size_t n) { return CountedAlloc(n, 0); }
void* operator new[](std::size_t n) { return CountedAlloc(n, 0); }
void* operator new(std::size_t n, std::align_val_t a) {
  return CountedAlloc(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a) {
  return CountedAlloc(n, static_cast<std::size_t>(a));
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return CountedAlloc(n, 0); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return CountedAlloc(n, 0); }
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return CountedAlloc(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return CountedAlloc(n, static_cast<std::size_t>(a));
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  std::free(p);
}

namespace flawlens {
namespace {

using Builder = testing::GraphBuilder;
using testing::XorShiftRng;

// conv -> pool -> conv(silu) -> avgpool -> conv(leaky) -> gap -> dense(sigmoid)
Builder MakeChain() {
  Builder b({23, 19, 3}, 1);
  int c1 = b.Conv("c1", 0, 3, 16, 3, 1, 1, 1, Activation::kRelu);
  int p1 = b.Pool("p1", OpType::kMaxPool2d, c1, 2, 2, 0);
  int c2 = b.Conv("c2", p1, 16, 13, 3, 1, 1, 1, Activation::kSilu);
  int p2 = b.Pool("p2", OpType::kAvgPool2d, c2, 3, 2, 1, /*include_pad=*/true);
  int c3 = b.Conv("c3", p2, 13, 24, 3, 2, 1, 1, Activation::kLeakyRelu);
  int g = b.Op("gap", OpType::kGlobalAvgPool, {c3});
  b.Dense("fc", g, 24, 7, Activation::kSigmoid);
  EXPECT_TRUE(b.graph.Finalize().ok()) << b.graph.Finalize().ToString();
  return b;
}

// A small U-Net with skips, both upsample modes, depthwise conv, add,
// standalone activations and a reduce head; one dead branch (gap/dense).
Builder MakeUNet() {
  Builder b({32, 24, 3}, 2);
  int e1 = b.Conv("enc1", 0, 3, 16, 3, 1, 1, 1, Activation::kRelu);             // 32x24x16
  int p1 = b.Pool("pool1", OpType::kMaxPool2d, e1, 2, 2, 0);                    // 16x12x16
  int e2 = b.Conv("enc2", p1, 16, 32, 3, 1, 1, 1, Activation::kSilu);           // 16x12x32
  int p2 = b.Pool("pool2", OpType::kAvgPool2d, e2, 2, 2, 0);                    // 8x6x32
  int bt = b.Conv("bottleneck", p2, 32, 32, 3, 1, 1, 1, Activation::kLeakyRelu);  // 8x6x32
  int dw = b.Conv("dw", bt, 32, 32, 3, 1, 1, /*groups=*/32);                    // 8x6x32
  int u2 = b.Upsample("up2", dw, 2, UpsampleMode::kBilinear);                   // 16x12x32
  int c2 = b.Op("cat2", OpType::kConcat, {u2, e2});                             // 16x12x64
  int d2 = b.Conv("dec2", c2, 64, 16, 3, 1, 1, 1, Activation::kRelu);           // 16x12x16
  int u1 = b.Upsample("up1", d2, 2, UpsampleMode::kNearest);                    // 32x24x16
  int s1 = b.Op("skip1", OpType::kAdd, {u1, e1}, Activation::kSilu);            // 32x24x16
  int a1 = b.Op("act", OpType::kActivation, {s1}, Activation::kSigmoid);        // 32x24x16
  int c1 = b.Op("cat1", OpType::kConcat, {a1, 0, e1});                          // 32x24x35
  int g = b.Op("gap", OpType::kGlobalAvgPool, {c1});                            // dead branch
  b.Dense("fc", g, 35, 5, Activation::kNone);
  int h = b.Conv("head", c1, 35, 8, 1, 1, 0, 1, Activation::kNone);             // 32x24x8
  int r = b.Op("reduce", OpType::kReduceChannels, {h});                         // 32x24x1
  b.graph.output = r;
  EXPECT_TRUE(b.graph.Finalize().ok()) << b.graph.Finalize().ToString();
  return b;
}

// Runs every node with the reference backend into its own buffer: no
// planning, no sharing. The executor must reproduce this bit for bit.
std::vector<float> RunUnplanned(const Graph& g, const std::vector<float>& input) {
  auto backend = MakeRefBackend();
  std::vector<std::vector<float>> values(g.nodes.size() + 1);
  values[0] = input;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& node = g.nodes[i];
    std::vector<Shape> in_shapes;
    std::vector<const float*> ins;
    for (int id : node.inputs) {
      in_shapes.push_back(g.shapes[id]);
      ins.push_back(values[id].data());
    }
    OpSpec spec{node, in_shapes, g.shapes[i + 1]};
    auto op = backend->Create(spec);
    EXPECT_TRUE(op.ok()) << op.status().ToString();
    if (!op.ok()) return {};
    values[i + 1].assign(static_cast<size_t>(g.shapes[i + 1].elements()), 0.0f);
    std::vector<float> ws((*op)->workspace_floats() + 4);
    (*op)->Run(ins.data(), values[i + 1].data(), ws.data());
  }
  return values[g.output];
}

std::vector<float> RunExecutor(const Graph& g, BackendKind kind, const std::vector<float>& input,
                               std::vector<std::string>* kernels = nullptr, int threads = 1) {
  ExecutorOptions options;
  options.backend = kind;
  options.threads = threads;
  auto ex = CreateExecutor(g, options);
  EXPECT_TRUE(ex.ok()) << BackendKindName(kind) << ": " << ex.status().ToString();
  if (!ex.ok()) return {};
  Executor& e = **ex;
  EXPECT_EQ(e.input_shape(), g.input);
  EXPECT_EQ(e.output_shape(), g.output_shape());
  std::copy(input.begin(), input.end(), e.input());
  e.Run();
  // The input is never overwritten.
  EXPECT_TRUE(std::equal(input.begin(), input.end(), e.input())) << BackendKindName(kind);
  std::vector<float> out(e.output(), e.output() + g.output_shape().elements());
  // A second run gives the same answer (no state carried between runs).
  e.Run();
  EXPECT_TRUE(std::equal(out.begin(), out.end(), e.output())) << BackendKindName(kind);
  if (kernels != nullptr) *kernels = e.KernelNames();
  EXPECT_EQ(e.KernelNames().size(), g.nodes.size());
  return out;
}

// |a - b| <= atol + rtol * |b| elementwise.
void ExpectClose(const std::vector<float>& a, const std::vector<float>& b, float atol, float rtol,
                 const char* what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  int bad = 0;
  float worst = 0.0f;
  for (size_t i = 0; i < a.size(); ++i) {
    float d = std::fabs(a[i] - b[i]);
    if (!(d <= atol + rtol * std::fabs(b[i]))) {
      if (bad++ < 5) ADD_FAILURE() << what << ": [" << i << "] " << a[i] << " vs " << b[i];
    }
    worst = std::max(worst, d);
  }
  EXPECT_EQ(bad, 0) << what << ": worst abs diff " << worst;
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Tolerance between backends: different summation order / FMA / exp
// approximations. Outputs are O(1).
constexpr float kAtol = 2e-4f, kRtol = 2e-4f;

TEST(Executor, ChainSameOnAllBackends) {
  Builder b = MakeChain();
  const Graph& g = b.graph;
  std::vector<float> x = b.Input(7);
  std::vector<float> unplanned = RunUnplanned(g, x);
  std::vector<std::string> kernels;
  std::vector<float> ref = RunExecutor(g, BackendKind::kReference, x, &kernels);
  EXPECT_EQ(ref, unplanned);  // bitwise: same kernels, different buffers
  for (const auto& k : kernels) EXPECT_TRUE(EndsWith(k, "__ref")) << k;
  ExpectClose(RunExecutor(g, BackendKind::kSimd, x), ref, kAtol, kRtol, "simd");
  ExpectClose(RunExecutor(g, BackendKind::kAuto, x), ref, kAtol, kRtol, "auto");
  ExpectClose(RunExecutor(g, BackendKind::kAuto, x, nullptr, 2), ref, kAtol, kRtol, "auto x2");
  // Sanity: the output is not trivially constant.
  float lo = ref[0], hi = ref[0];
  for (float v : ref) lo = std::min(lo, v), hi = std::max(hi, v);
  EXPECT_GT(hi - lo, 1e-3f);
}

TEST(Executor, UNetSameOnAllBackends) {
  Builder b = MakeUNet();
  const Graph& g = b.graph;
  std::vector<float> x = b.Input(11);
  std::vector<float> unplanned = RunUnplanned(g, x);
  std::vector<float> ref = RunExecutor(g, BackendKind::kReference, x);
  EXPECT_EQ(ref, unplanned);
  ExpectClose(RunExecutor(g, BackendKind::kSimd, x), ref, kAtol, kRtol, "simd");
  std::vector<std::string> kernels;
  ExpectClose(RunExecutor(g, BackendKind::kAuto, x, &kernels), ref, kAtol, kRtol, "auto");
  if (HaveXnnpack()) {
    // enc1 runs on XNNPACK; nearest upsample and reduce_channels fall back.
    EXPECT_TRUE(EndsWith(kernels[0], "__xnnpack")) << kernels[0];
    EXPECT_FALSE(EndsWith(kernels[9], "__xnnpack")) << kernels[9];
    EXPECT_FALSE(EndsWith(kernels.back(), "__xnnpack")) << kernels.back();
    ExpectClose(RunExecutor(g, BackendKind::kXnnpack, x), ref, kAtol, kRtol, "xnnpack");
  }
}

TEST(Executor, PlannerSharesBuffers) {
  // A chain of 8 equal convs: input + output + 2 ping-pong buffers suffice.
  Builder b({20, 20, 16}, 3);
  int v = 0;
  for (int i = 0; i < 8; ++i)
    v = b.Conv("c" + std::to_string(i), v, 16, 16, 3, 1, 1, 1, Activation::kRelu);
  ASSERT_TRUE(b.graph.Finalize().ok());
  const size_t one = 20 * 20 * 16 * sizeof(float);
  auto ex = CreateExecutor(b.graph, {BackendKind::kReference, 1});
  ASSERT_TRUE(ex.ok()) << ex.status().ToString();
  EXPECT_LT((*ex)->arena_bytes(), 9 * one);
  EXPECT_LE((*ex)->arena_bytes(), 4 * one + 64);
  std::vector<float> x = b.Input(5);
  std::copy(x.begin(), x.end(), (*ex)->input());
  (*ex)->Run();
  std::vector<float> out((*ex)->output(), (*ex)->output() + b.graph.output_shape().elements());
  EXPECT_EQ(out, RunUnplanned(b.graph, x));

  // The DAG shares too: the arena is smaller than the sum of all values.
  Builder u = MakeUNet();
  size_t sum = 0;
  for (const Shape& s : u.graph.shapes) sum += static_cast<size_t>(s.elements()) * sizeof(float);
  auto eu = CreateExecutor(u.graph, {BackendKind::kReference, 1});
  ASSERT_TRUE(eu.ok());
  EXPECT_LT((*eu)->arena_bytes(), sum);
  EXPECT_EQ(reinterpret_cast<uintptr_t>((*eu)->input()) % 16, 0u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>((*eu)->output()) % 16, 0u);
}

TEST(Executor, RunAllocatesNothing) {
  // The counter works.
  static void* volatile sink;
  g_allocations = 0;
  g_counting = true;
  sink = new std::vector<int>(10);
  g_counting = false;
  EXPECT_GE(g_allocations.load(), 1);
  delete static_cast<std::vector<int>*>(sink);

  Builder b = MakeUNet();
  std::vector<float> x = b.Input(3);
  for (BackendKind kind : {BackendKind::kReference, BackendKind::kSimd, BackendKind::kAuto}) {
    for (int threads : {1, 2, 3}) {
      ExecutorOptions options{kind, threads};
      options.min_band_work = 0;  // split every op that can be
      auto ex = CreateExecutor(b.graph, options);
      ASSERT_TRUE(ex.ok()) << ex.status().ToString();
      if (threads > 1 && kind != BackendKind::kAuto) {
        EXPECT_GT((*ex)->banded_nodes(), 0);
      }
      std::copy(x.begin(), x.end(), (*ex)->input());
      g_allocations = 0;
      g_counting = true;
      (*ex)->Run();
      (*ex)->Run();
      g_counting = false;
      EXPECT_EQ(g_allocations.load(), 0) << BackendKindName(kind) << " threads " << threads;
    }
  }
}

TEST(Executor, CreateErrors) {
  Builder b({8, 8, 3}, 4);
  b.Conv("c", 0, 3, 4, 3, 1, 1);
  auto not_finalized = CreateExecutor(b.graph);
  ASSERT_FALSE(not_finalized.ok());
  EXPECT_EQ(not_finalized.status().code(), ErrorCode::kInvalidArgument);
  ASSERT_TRUE(b.graph.Finalize().ok());
  auto xnn = CreateExecutor(b.graph, {BackendKind::kXnnpack, 1});
  if (HaveXnnpack()) {
    EXPECT_TRUE(xnn.ok()) << xnn.status().ToString();
  } else {
    ASSERT_FALSE(xnn.ok());
    EXPECT_EQ(xnn.status().code(), ErrorCode::kUnsupported);
  }
  auto bad_kind = CreateExecutor(b.graph, {static_cast<BackendKind>(17), 1});
  ASSERT_FALSE(bad_kind.ok());
  EXPECT_EQ(bad_kind.status().code(), ErrorCode::kInvalidArgument);
}

TEST(Executor, OutputMayBeAnIntermediateValue) {
  // Output is not the last node: it must stay alive while later nodes run.
  Builder b({9, 7, 4}, 6);
  int c1 = b.Conv("c1", 0, 4, 8, 3, 1, 1, 1, Activation::kRelu);
  int c2 = b.Conv("c2", c1, 8, 8, 3, 1, 1);
  b.Conv("c3", c2, 8, 8, 3, 1, 1);
  b.Conv("c4", c2, 8, 8, 3, 1, 1);
  b.graph.output = c2;
  ASSERT_TRUE(b.graph.Finalize().ok());
  std::vector<float> x = b.Input(9);
  std::vector<float> ref = RunExecutor(b.graph, BackendKind::kReference, x);
  EXPECT_EQ(ref, RunUnplanned(b.graph, x));
  ExpectClose(RunExecutor(b.graph, BackendKind::kAuto, x), ref, kAtol, kRtol, "auto");
}

// ---- threads -------------------------------------------------------------------

// Output of `g` on `kind` with `threads` bands (every splittable op split),
// and how many nodes were split.
std::vector<float> RunThreaded(const Graph& g, BackendKind kind, int threads,
                               const std::vector<float>& input, int* banded = nullptr) {
  ExecutorOptions options{kind, threads};
  options.min_band_work = 0;
  auto ex = CreateExecutor(g, options);
  EXPECT_TRUE(ex.ok()) << ex.status().ToString();
  if (!ex.ok()) return {};
  EXPECT_EQ((*ex)->band_threads(), threads);
  if (banded != nullptr) *banded = (*ex)->banded_nodes();
  std::copy(input.begin(), input.end(), (*ex)->input());
  (*ex)->Run();
  std::vector<float> out((*ex)->output(), (*ex)->output() + g.output_shape().elements());
  (*ex)->Run();  // again: bands carry no state between runs
  EXPECT_TRUE(std::equal(out.begin(), out.end(), (*ex)->output()));
  return out;
}

// The default model's tail: backbone maps at two scales, the coarse one
// upsampled, concatenated, projected by a 1x1 conv. On the SIMD backend with
// one thread the concat is dropped and the projection reads its inputs in
// place; the result must be bit-equal to the copy (threads split both ops
// into bands and keep the concat) and match the reference. Variants: a concat
// with three inputs incl. the network input, an activation on the projection,
// a second reader of the concat (no elision), a concat that is the output.
TEST(Executor, ConcatReadInPlaceByPointwiseConv) {
  for (int variant = 0; variant < 4; ++variant) {
    SCOPED_TRACE(variant);
    Builder b({16, 12, 3}, 40 + variant);
    const int e = b.Conv("e", 0, 3, 13, 3, 1, 1, 1, Activation::kHardSwish);  // 16x12x13
    const int p = b.Pool("p", OpType::kMaxPool2d, e, 2, 2, 0);                 // 8x6x13
    const int d = b.Conv("d", p, 13, 21, 1, 1, 0, 1, Activation::kRelu);       // 8x6x21
    const int u = b.Upsample("u", d, 2, UpsampleMode::kBilinear);              // 16x12x21
    const std::vector<int> parts = variant == 1 ? std::vector<int>{u, 0, e} : std::vector<int>{e, u};
    const int in_c = variant == 1 ? 37 : 34;
    const int cat = b.Op("cat", OpType::kConcat, parts);
    if (variant == 3) {
      b.graph.output = cat;
    } else {
      const int proj = b.Conv("proj", cat, in_c, 9, 1, 1, 0, 1,
                              variant == 1 ? Activation::kHardSwish : Activation::kNone);
      if (variant == 2) {
        const int g = b.Op("g", OpType::kGlobalAvgPool, {cat});  // a second reader
        b.graph.output = b.Op("sum", OpType::kAdd, {proj, b.Conv("gp", g, in_c, 9, 1)});
        b.graph.nodes.back().inputs = {proj, proj};  // same shapes; g stays a reader
      } else {
        b.graph.output = proj;
      }
    }
    ASSERT_TRUE(b.graph.Finalize().ok()) << b.graph.Finalize().ToString();
    const Graph& g = b.graph;
    const std::vector<float> x = b.Input(5);
    const int cat_index = cat - 1;
    std::vector<std::string> kernels;
    const std::vector<float> one = RunExecutor(g, BackendKind::kSimd, x, &kernels);
    const bool elided = variant <= 1;
    EXPECT_EQ(kernels[cat_index] == "concat_elided", elided) << kernels[cat_index];
    if (elided) EXPECT_TRUE(EndsWith(kernels[cat_index + 1], "_concat")) << kernels[cat_index + 1];
    ExpectClose(one, RunUnplanned(g, x), kAtol, kRtol, "simd vs ref");
    // Bands keep the concat (a split op is never elided): the same sums.
    ExecutorOptions options{BackendKind::kSimd, 2};
    options.min_band_work = 0;
    auto banded = CreateExecutor(g, options);
    ASSERT_TRUE(banded.ok()) << banded.status().ToString();
    EXPECT_NE((*banded)->KernelNames()[cat_index], "concat_elided");
    std::copy(x.begin(), x.end(), (*banded)->input());
    (*banded)->Run();
    EXPECT_TRUE(std::equal(one.begin(), one.end(), (*banded)->output())) << "1 thread vs bands";
  }
}

// One node of every splittable kind and geometry, on inputs of several
// heights (band edges fall on and off the Winograd tile grid; odd widths put
// band offsets off 16-byte boundaries): bands must reproduce one thread bit
// for bit, on the SIMD kernels and the reference kernels.
TEST(ExecutorThreads, EverySplittableOpIsBitEqual) {
  struct Case {
    const char* name;
    int in_c;
    std::function<int(Builder&)> add;
  };
  auto conv = [](int in_c, int out_c, int k, int stride, int pad, int groups, int dilation,
                 Activation act) {
    return [=](Builder& b) {
      int v = b.Conv("op", 0, in_c, out_c, k, stride, pad, groups, act);
      Node& n = b.graph.nodes.back();
      n.dilation_h = n.dilation_w = dilation;
      return v;
    };
  };
  std::vector<Case> cases = {
      {"conv3x3 winograd", 16, conv(16, 16, 3, 1, 1, 1, 1, Activation::kSilu)},
      {"conv3x3 s1 direct (3 in)", 3, conv(3, 8, 3, 1, 1, 1, 1, Activation::kRelu)},
      {"conv3x3 s2", 5, conv(5, 12, 3, 2, 1, 1, 1, Activation::kLeakyRelu)},
      {"conv3x3 valid", 8, conv(8, 8, 3, 1, 0, 1, 1, Activation::kNone)},
      {"conv3x3 dilation 2", 8, conv(8, 8, 3, 1, 2, 1, 2, Activation::kRelu)},
      {"conv5x5 pad 4", 4, conv(4, 8, 5, 1, 4, 1, 1, Activation::kNone)},
      {"conv1x1", 12, conv(12, 9, 1, 1, 0, 1, 1, Activation::kSigmoid)},
      {"depthwise s1", 12, conv(12, 12, 3, 1, 1, 12, 1, Activation::kRelu)},
      {"depthwise s2", 12, conv(12, 12, 3, 2, 1, 12, 1, Activation::kNone)},
      {"grouped (reference kernel)", 8, conv(8, 8, 3, 1, 1, 4, 1, Activation::kNone)},
      {"conv asymmetric pad", 6,
       [](Builder& b) {
         int v = b.Conv("op", 0, 6, 8, 3, 2, 0);
         b.graph.nodes.back().pad_bottom = 1;
         b.graph.nodes.back().pad_top = 2;
         return v;
       }},
      {"maxpool 3 s2 p1", 8, [](Builder& b) { return b.Pool("op", OpType::kMaxPool2d, 0, 3, 2, 1); }},
      {"maxpool 2 s2", 5, [](Builder& b) { return b.Pool("op", OpType::kMaxPool2d, 0, 2, 2, 0); }},
      {"maxpool dilated", 4,
       [](Builder& b) {
         int v = b.Pool("op", OpType::kMaxPool2d, 0, 3, 1, 2);
         b.graph.nodes.back().dilation_h = b.graph.nodes.back().dilation_w = 2;
         return v;
       }},
      {"avgpool incl pad", 7,
       [](Builder& b) { return b.Pool("op", OpType::kAvgPool2d, 0, 3, 1, 1, true); }},
      {"avgpool excl pad s2", 7,
       [](Builder& b) { return b.Pool("op", OpType::kAvgPool2d, 0, 3, 2, 1, false); }},
      {"activation", 5,
       [](Builder& b) { return b.Op("op", OpType::kActivation, {0}, Activation::kSilu); }},
      {"add", 6,
       [](Builder& b) {
         int c = b.Conv("c", 0, 6, 6, 1, 1, 0);
         return b.Op("op", OpType::kAdd, {0, c}, Activation::kLeakyRelu);
       }},
      {"concat", 3,
       [](Builder& b) {
         int c = b.Conv("c", 0, 3, 5, 1, 1, 0);
         return b.Op("op", OpType::kConcat, {c, 0, c});
       }},
      {"reduce_channels", 9,
       [](Builder& b) { return b.Op("op", OpType::kReduceChannels, {0}); }},
  };
  for (const Case& c : cases) {
    for (int h : {16, 19, 37}) {
      Builder b({h, 11, c.in_c}, 5);
      c.add(b);
      ASSERT_TRUE(b.graph.Finalize().ok()) << c.name << ": " << b.graph.Finalize().ToString();
      const int out_h = b.graph.output_shape().h;
      const std::vector<float> x = b.Input(static_cast<uint64_t>(h));
      for (BackendKind kind : {BackendKind::kSimd, BackendKind::kReference}) {
        const std::vector<float> one = RunThreaded(b.graph, kind, 1, x);
        for (int threads : {2, 3}) {
          int banded = -1;
          const std::vector<float> many = RunThreaded(b.graph, kind, threads, x, &banded);
          SCOPED_TRACE(std::string(c.name) + " h=" + std::to_string(h) + " " +
                       BackendKindName(kind) + " threads=" + std::to_string(threads));
          // The op is split whenever it has two bands of 4 rows.
          EXPECT_EQ(banded > 0, out_h >= 8) << "out_h " << out_h;
          EXPECT_GE(banded, out_h >= 8 ? 1 : 0);
          ASSERT_EQ(many.size(), one.size());
          EXPECT_TRUE(many == one) << "not bit-equal";
        }
      }
    }
  }
}

// Whole networks: the chain and the U-Net (upsample, global pool and dense
// run whole between split ops) give the one-thread output bit for bit.
TEST(ExecutorThreads, NetworksAreBitEqual) {
  for (Builder b : {MakeChain(), MakeUNet()}) {
    const std::vector<float> x = b.Input(21);
    for (BackendKind kind : {BackendKind::kSimd, BackendKind::kReference}) {
      const std::vector<float> one = RunThreaded(b.graph, kind, 1, x);
      for (int threads : {2, 4}) {
        int banded = 0;
        EXPECT_TRUE(RunThreaded(b.graph, kind, threads, x, &banded) == one)
            << BackendKindName(kind) << " threads " << threads;
        EXPECT_GT(banded, 0);
      }
    }
    // auto: XNNPACK (native) threads its own ops; the rest are split.
    ExpectClose(RunThreaded(b.graph, BackendKind::kAuto, 2, x),
                RunExecutor(b.graph, BackendKind::kReference, x), kAtol, kRtol, "auto x2");
  }
}

TEST(ExecutorThreads, SplitsOnlyWhereWorthIt) {
  Builder b = MakeUNet();
  ExecutorOptions options{BackendKind::kSimd, 2};
  options.min_band_work = int64_t{1} << 40;
  auto none = CreateExecutor(b.graph, options);
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_EQ((*none)->banded_nodes(), 0);
  EXPECT_EQ((*none)->pool_threads(), 1);  // nothing to split: no pool
  options.min_band_work = 0;
  auto all = CreateExecutor(b.graph, options);
  ASSERT_TRUE(all.ok());
  // Upsample, global_avgpool and dense are never split; 8x6 values are too
  // short for two 4-row bands.
  const std::vector<std::string> kernels = (*all)->KernelNames();
  EXPECT_GT((*all)->banded_nodes(), 4);
  EXPECT_LT((*all)->banded_nodes(), static_cast<int>(b.graph.nodes.size()) - 3);
  EXPECT_EQ((*all)->pool_threads(), ThreadPool::ThreadsAvailable() ? 2 : 1);
  // One thread never splits.
  options.threads = 1;
  auto one = CreateExecutor(b.graph, options);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ((*one)->banded_nodes(), 0);
}

TEST(ExecutorThreads, ThreadsComeFromTheOptionsAndAreClamped) {
  Builder b = MakeChain();
  ExecutorOptions options{BackendKind::kSimd, 3};
  options.min_band_work = 0;
  auto ex = CreateExecutor(b.graph, options);
  ASSERT_TRUE(ex.ok());
  EXPECT_EQ((*ex)->band_threads(), 3);
  EXPECT_GT((*ex)->banded_nodes(), 0);
  // Only the clamp is checked from here on: with nothing worth banding no
  // pool is started, since a 64-thread pool cannot start in a wasm test (its
  // prebuilt workers are 8, and Node starts more only between event-loop turns).
  options.min_band_work = std::numeric_limits<int64_t>::max();
  options.threads = 1000;
  auto many = CreateExecutor(b.graph, options);
  ASSERT_TRUE(many.ok());
  EXPECT_EQ((*many)->band_threads(), ThreadPool::kMaxThreads);
  options.threads = -5;
  auto none = CreateExecutor(b.graph, options);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ((*none)->band_threads(), 1);
}

TEST(ExecutorBackends, CreateRefusesAnEmptyOrNullChain) {
  Builder b = MakeChain();
  auto empty = Executor::Create(b.graph, {});
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().code(), ErrorCode::kInvalidArgument);
  std::vector<std::unique_ptr<Backend>> chain;
  chain.push_back(nullptr);
  auto null = Executor::Create(b.graph, std::move(chain));
  ASSERT_FALSE(null.ok());
  EXPECT_EQ(null.status().code(), ErrorCode::kInvalidArgument);
}

struct CountTasks {
  std::vector<std::atomic<int>>* hits;
  static void Fn(void* self, int task) {
    (*static_cast<CountTasks*>(self)->hits)[task].fetch_add(1);
  }
};

TEST(ThreadPool, RunsEveryTaskOnce) {
  EXPECT_FALSE(ThreadPool::Create(0).ok());
  EXPECT_FALSE(ThreadPool::Create(ThreadPool::kMaxThreads + 1).ok());
  auto two = ThreadPool::Create(2);
  if (!ThreadPool::ThreadsAvailable()) {
    ASSERT_FALSE(two.ok());
    EXPECT_EQ(two.status().code(), ErrorCode::kUnsupported);
  }
  for (int threads : {1, 2, 3}) {
    auto pool = ThreadPool::Create(threads);
    if (threads > 1 && !ThreadPool::ThreadsAvailable()) continue;
    ASSERT_TRUE(pool.ok()) << pool.status().ToString();
    EXPECT_EQ((*pool)->threads(), threads);
    // Many short jobs back to back: a worker late for one job must never run
    // a task of the next one twice or skip it.
    for (int round = 0; round < 300; ++round) {
      const int tasks = round % 7;
      std::vector<std::atomic<int>> hits(tasks);
      CountTasks ctx{&hits};
      (*pool)->Run(tasks, &CountTasks::Fn, &ctx);
      for (int t = 0; t < tasks; ++t) ASSERT_EQ(hits[t].load(), 1) << "round " << round;
    }
  }
}

TEST(ThreadPool, GrowsInPlace) {
  auto pool = ThreadPool::Create(1);
  ASSERT_TRUE(pool.ok());
  EXPECT_EQ((*pool)->threads(), 1);
  EXPECT_FALSE((*pool)->Grow(0).ok());
  EXPECT_FALSE((*pool)->Grow(ThreadPool::kMaxThreads + 1).ok());
  const Status grown = (*pool)->Grow(3);
  if (!ThreadPool::ThreadsAvailable()) {
    EXPECT_EQ(grown.code(), ErrorCode::kUnsupported);
    return;
  }
  ASSERT_TRUE(grown.ok()) << grown.ToString();
  EXPECT_EQ((*pool)->threads(), 3);
  EXPECT_TRUE((*pool)->Grow(2).ok());  // never shrinks
  EXPECT_EQ((*pool)->threads(), 3);
  std::vector<std::atomic<int>> hits(9);
  CountTasks ctx{&hits};
  (*pool)->Run(9, &CountTasks::Fn, &ctx);
  for (auto& h : hits) EXPECT_EQ(h.load(), 1);
}

TEST(ThreadPool, SharedPoolIsCreatedOnceAndGrows) {
  auto none = SharedThreadPool(1);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none.value(), nullptr);
  if (!ThreadPool::ThreadsAvailable()) return;
  auto a = SharedThreadPool(2);
  ASSERT_TRUE(a.ok());
  ASSERT_NE(a.value(), nullptr);
  EXPECT_GE(a.value()->threads(), 2);
  const int before = a.value()->threads();
  auto b = SharedThreadPool(before + 1);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(a.value(), b.value());  // the same pool, grown
  EXPECT_EQ(b.value()->threads(), before + 1);
  EXPECT_EQ(SharedThreadPool(2).value(), a.value());
}

TEST(BackendKind, Names) {
  EXPECT_STREQ(BackendKindName(BackendKind::kAuto), "auto");
  EXPECT_STREQ(BackendKindName(BackendKind::kReference), "ref");
  EXPECT_STREQ(BackendKindName(BackendKind::kSimd), "simd");
  EXPECT_STREQ(BackendKindName(BackendKind::kXnnpack), "xnnpack");
}

}  // namespace
}  // namespace flawlens
