// SIMD128 operators other than conv2d: dense (GEMV, 4 rows at a time),
// activation, pools, upsample, concat, add, mul, reduce_channels,
// position_mahalanobis. All vectorise
// over channels (NHWC) with a scalar tail.
#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/activation.h"
#include "kernels/simd/simd_ops.h"

namespace flawlens {
namespace simd {

void ActivateInPlace(float* data, int64_t n, Activation act, float alpha) {
  if (act == Activation::kNone) return;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) Store(data + i, ApplyActivation(Load(data + i), act, alpha));
  for (; i < n; ++i) data[i] = flawlens::ApplyActivation(data[i], act, alpha);
}

namespace {

// ---- dense ------------------------------------------------------------------
class Dense : public OpImpl {
 public:
  Dense(const OpSpec& spec) : node_(spec.node), n_in_(spec.input_shapes[0].elements()), n_out_(spec.output_shape.c) {}
  const char* kernel_name() const override { return "dense_f32__simd128_4x4"; }

  void Run(const float* const* inputs, float* output, float* /*workspace*/) override {
    const float* x = inputs[0];
    const float* w = node_.weight.data;
    const float* bias = node_.bias.data;
    const int64_t n = n_in_;
    int o = 0;
    for (; o + 4 <= n_out_; o += 4) {
      const float* w0 = w + o * n;
      const float* w1 = w0 + n;
      const float* w2 = w1 + n;
      const float* w3 = w2 + n;
      f32x4 a0 = Splat(0.0f), a1 = a0, a2 = a0, a3 = a0;
      int64_t i = 0;
      for (; i + 4 <= n; i += 4) {
        const f32x4 xv = Load(x + i);
        a0 = a0 + Load(w0 + i) * xv;
        a1 = a1 + Load(w1 + i) * xv;
        a2 = a2 + Load(w2 + i) * xv;
        a3 = a3 + Load(w3 + i) * xv;
      }
      float s[4] = {HorizontalSum(a0), HorizontalSum(a1), HorizontalSum(a2), HorizontalSum(a3)};
      for (; i < n; ++i) {
        s[0] += w0[i] * x[i];
        s[1] += w1[i] * x[i];
        s[2] += w2[i] * x[i];
        s[3] += w3[i] * x[i];
      }
      for (int j = 0; j < 4; ++j) {
        const float b = bias != nullptr ? bias[o + j] : 0.0f;
        output[o + j] = flawlens::ApplyActivation(s[j] + b, node_.activation, node_.alpha);
      }
    }
    for (; o < n_out_; ++o) {
      const float* wr = w + o * n;
      f32x4 a = Splat(0.0f);
      int64_t i = 0;
      for (; i + 4 <= n; i += 4) a = a + Load(wr + i) * Load(x + i);
      float s = HorizontalSum(a);
      for (; i < n; ++i) s += wr[i] * x[i];
      const float b = bias != nullptr ? bias[o] : 0.0f;
      output[o] = flawlens::ApplyActivation(s + b, node_.activation, node_.alpha);
    }
  }

 private:
  Node node_;
  int64_t n_in_;
  int n_out_;
};

// ---- activation / add ---------------------------------------------------------
class ActivationOp : public OpImpl {
 public:
  ActivationOp(const OpSpec& spec) : act_(spec.node.activation), alpha_(spec.node.alpha), n_(spec.output_shape.elements()) {}
  const char* kernel_name() const override { return "activation_f32__simd128"; }
  void Run(const float* const* inputs, float* output, float* /*workspace*/) override {
    const float* x = inputs[0];
    int64_t i = 0;
    for (; i + 4 <= n_; i += 4) Store(output + i, ApplyActivation(Load(x + i), act_, alpha_));
    for (; i < n_; ++i) output[i] = flawlens::ApplyActivation(x[i], act_, alpha_);
  }

 private:
  Activation act_;
  float alpha_;
  int64_t n_;
};

class AddOp : public OpImpl {
 public:
  AddOp(const OpSpec& spec) : act_(spec.node.activation), alpha_(spec.node.alpha), n_(spec.output_shape.elements()) {}
  const char* kernel_name() const override { return "add_f32__simd128"; }
  void Run(const float* const* inputs, float* output, float* /*workspace*/) override {
    const float* a = inputs[0];
    const float* b = inputs[1];
    int64_t i = 0;
    for (; i + 4 <= n_; i += 4) Store(output + i, ApplyActivation(Load(a + i) + Load(b + i), act_, alpha_));
    for (; i < n_; ++i) output[i] = flawlens::ApplyActivation(a[i] + b[i], act_, alpha_);
  }

 private:
  Activation act_;
  float alpha_;
  int64_t n_;
};

// in1 has in0's shape, or is 1 x 1 x C and multiplies every pixel (SE gating).
class MulOp : public OpImpl {
 public:
  MulOp(const OpSpec& spec)
      : act_(spec.node.activation),
        alpha_(spec.node.alpha),
        in_(spec.input_shapes[0]),
        broadcast_(spec.input_shapes[1] != spec.input_shapes[0]) {}
  const char* kernel_name() const override {
    return broadcast_ ? "mul_bcast_f32__simd128" : "mul_f32__simd128";
  }
  void Run(const float* const* inputs, float* output, float* /*workspace*/) override {
    const float* a = inputs[0];
    const float* b = inputs[1];
    if (!broadcast_) {
      const int64_t n = in_.elements();
      int64_t i = 0;
      for (; i + 4 <= n; i += 4) Store(output + i, ApplyActivation(Load(a + i) * Load(b + i), act_, alpha_));
      for (; i < n; ++i) output[i] = flawlens::ApplyActivation(a[i] * b[i], act_, alpha_);
      return;
    }
    const int c = in_.c;
    const int64_t pixels = int64_t{in_.h} * in_.w;
    for (int64_t p = 0; p < pixels; ++p) {
      const float* ap = a + p * c;
      float* op = output + p * c;
      int ch = 0;
      for (; ch + 4 <= c; ch += 4) Store(op + ch, ApplyActivation(Load(ap + ch) * Load(b + ch), act_, alpha_));
      for (; ch < c; ++ch) op[ch] = flawlens::ApplyActivation(ap[ch] * b[ch], act_, alpha_);
    }
  }

 private:
  Activation act_;
  float alpha_;
  Shape in_;
  bool broadcast_;
};

// ---- pools ------------------------------------------------------------------
class Pool : public OpImpl {
 public:
  Pool(const OpSpec& spec) : node_(spec.node), in_(spec.input_shapes[0]), out_(spec.output_shape) {}
  const char* kernel_name() const override {
    return node_.op == OpType::kMaxPool2d ? "maxpool2d_f32__simd128" : "avgpool2d_f32__simd128";
  }
  void Run(const float* const* inputs, float* output, float* /*workspace*/) override {
    const Node& n = node_;
    const bool is_max = n.op == OpType::kMaxPool2d;
    const int c = in_.c;
    const float* x = inputs[0];
    for (int oy = 0; oy < out_.h; ++oy) {
      const int y0 = oy * n.stride_h - n.pad_top;
      // Taps ky whose row is inside the input; and the count of taps inside the
      // padded extent (for count_include_pad).
      int ky_lo = 0, ky_hi = n.kernel_h, rows_padded = 0;
      while (ky_lo < ky_hi && y0 + ky_lo * n.dilation_h < 0) ++ky_lo;
      while (ky_hi > ky_lo && y0 + (ky_hi - 1) * n.dilation_h >= in_.h) --ky_hi;
      for (int ky = 0; ky < n.kernel_h; ++ky) rows_padded += (y0 + ky * n.dilation_h < in_.h + n.pad_bottom);
      for (int ox = 0; ox < out_.w; ++ox) {
        const int x0 = ox * n.stride_w - n.pad_left;
        int kx_lo = 0, kx_hi = n.kernel_w, cols_padded = 0;
        while (kx_lo < kx_hi && x0 + kx_lo * n.dilation_w < 0) ++kx_lo;
        while (kx_hi > kx_lo && x0 + (kx_hi - 1) * n.dilation_w >= in_.w) --kx_hi;
        for (int kx = 0; kx < n.kernel_w; ++kx) cols_padded += (x0 + kx * n.dilation_w < in_.w + n.pad_right);
        const int valid = (ky_hi - ky_lo) * (kx_hi - kx_lo);
        float* o = output + (static_cast<size_t>(oy) * out_.w + ox) * c;
        if (valid == 0) {
          std::memset(o, 0, static_cast<size_t>(c) * sizeof(float));
          continue;
        }
        const int divisor = n.count_include_pad ? rows_padded * cols_padded : valid;
        const float inv = 1.0f / static_cast<float>(divisor);
        int ch = 0;
        for (; ch + 4 <= c; ch += 4) {
          f32x4 acc = is_max ? Splat(-std::numeric_limits<float>::infinity()) : Splat(0.0f);
          for (int ky = ky_lo; ky < ky_hi; ++ky) {
            const float* r = x + (static_cast<size_t>(y0 + ky * n.dilation_h) * in_.w) * c + ch;
            for (int kx = kx_lo; kx < kx_hi; ++kx) {
              const f32x4 v = Load(r + static_cast<size_t>(x0 + kx * n.dilation_w) * c);
              acc = is_max ? Max(acc, v) : acc + v;
            }
          }
          Store(o + ch, is_max ? acc : acc * Splat(inv));
        }
        for (; ch < c; ++ch) {
          float acc = is_max ? -std::numeric_limits<float>::infinity() : 0.0f;
          for (int ky = ky_lo; ky < ky_hi; ++ky) {
            const float* r = x + (static_cast<size_t>(y0 + ky * n.dilation_h) * in_.w) * c + ch;
            for (int kx = kx_lo; kx < kx_hi; ++kx) {
              const float v = r[static_cast<size_t>(x0 + kx * n.dilation_w) * c];
              acc = is_max ? std::max(acc, v) : acc + v;
            }
          }
          o[ch] = is_max ? acc : acc * inv;
        }
      }
    }
  }

 private:
  Node node_;
  Shape in_, out_;
};

class GlobalAvgPool : public OpImpl {
 public:
  GlobalAvgPool(const OpSpec& spec) : in_(spec.input_shapes[0]) {}
  const char* kernel_name() const override { return "global_avgpool_f32__simd128"; }
  void Run(const float* const* inputs, float* output, float* /*workspace*/) override {
    const int c = in_.c;
    const int64_t pixels = int64_t{in_.h} * in_.w;
    const float inv = 1.0f / static_cast<float>(pixels);
    const float* x = inputs[0];
    int ch = 0;
    for (; ch + 4 <= c; ch += 4) {
      f32x4 acc = Splat(0.0f);
      for (int64_t p = 0; p < pixels; ++p) acc = acc + Load(x + p * c + ch);
      Store(output + ch, acc * Splat(inv));
    }
    for (; ch < c; ++ch) {
      float acc = 0.0f;
      for (int64_t p = 0; p < pixels; ++p) acc += x[p * c + ch];
      output[ch] = acc * inv;
    }
  }

 private:
  Shape in_;
};

// ---- upsample -----------------------------------------------------------------
class Upsample : public OpImpl {
 public:
  Upsample(const OpSpec& spec) : node_(spec.node), in_(spec.input_shapes[0]), out_(spec.output_shape) {
    if (node_.upsample_mode != UpsampleMode::kBilinear) return;
    // Per output row/column: source indices and weights (half-pixel centres).
    auto axis = [](int out_n, int in_n, int scale, std::vector<int>* i0, std::vector<int>* i1,
                   std::vector<float>* l) {
      for (int o = 0; o < out_n; ++o) {
        const float s = std::max(0.0f, (o + 0.5f) / scale - 0.5f);
        const int a = std::min(static_cast<int>(s), in_n - 1);
        i0->push_back(a);
        i1->push_back(std::min(a + 1, in_n - 1));
        l->push_back(s - a);
      }
    };
    axis(out_.h, in_.h, node_.scale_h, &y0_, &y1_, &ly_);
    axis(out_.w, in_.w, node_.scale_w, &x0_, &x1_, &lx_);
  }
  const char* kernel_name() const override {
    return node_.upsample_mode == UpsampleMode::kNearest ? "upsample_nearest_f32__simd128"
                                                         : "upsample_bilinear_f32__simd128";
  }
  void Run(const float* const* inputs, float* output, float* /*workspace*/) override {
    const int c = in_.c;
    const float* x = inputs[0];
    if (node_.upsample_mode == UpsampleMode::kNearest) {
      for (int oy = 0; oy < out_.h; ++oy) {
        const int iy = oy / node_.scale_h;
        for (int ox = 0; ox < out_.w; ++ox) {
          const int ix = ox / node_.scale_w;
          std::memcpy(output + (static_cast<size_t>(oy) * out_.w + ox) * c,
                      x + (static_cast<size_t>(iy) * in_.w + ix) * c, static_cast<size_t>(c) * sizeof(float));
        }
      }
      return;
    }
    for (int oy = 0; oy < out_.h; ++oy) {
      const float* r0 = x + static_cast<size_t>(y0_[oy]) * in_.w * c;
      const float* r1 = x + static_cast<size_t>(y1_[oy]) * in_.w * c;
      const float ly = ly_[oy];
      const f32x4 vly = Splat(ly);
      for (int ox = 0; ox < out_.w; ++ox) {
        const float* p00 = r0 + static_cast<size_t>(x0_[ox]) * c;
        const float* p01 = r0 + static_cast<size_t>(x1_[ox]) * c;
        const float* p10 = r1 + static_cast<size_t>(x0_[ox]) * c;
        const float* p11 = r1 + static_cast<size_t>(x1_[ox]) * c;
        const float lx = lx_[ox];
        const f32x4 vlx = Splat(lx);
        float* o = output + (static_cast<size_t>(oy) * out_.w + ox) * c;
        int ch = 0;
        for (; ch + 4 <= c; ch += 4) {
          const f32x4 a = Load(p00 + ch), b = Load(p01 + ch), d = Load(p10 + ch), e = Load(p11 + ch);
          const f32x4 top = a + (b - a) * vlx;
          const f32x4 bottom = d + (e - d) * vlx;
          Store(o + ch, top + (bottom - top) * vly);
        }
        for (; ch < c; ++ch) {
          const float top = p00[ch] + (p01[ch] - p00[ch]) * lx;
          const float bottom = p10[ch] + (p11[ch] - p10[ch]) * lx;
          o[ch] = top + (bottom - top) * ly;
        }
      }
    }
  }

 private:
  Node node_;
  Shape in_, out_;
  std::vector<int> y0_, y1_, x0_, x1_;
  std::vector<float> ly_, lx_;
};

// ---- concat / reduce ---------------------------------------------------------------
class Concat : public OpImpl {
 public:
  Concat(const OpSpec& spec) : ins_(spec.input_shapes), out_(spec.output_shape) {}
  const char* kernel_name() const override { return "concat_f32__simd128"; }
  void Run(const float* const* inputs, float* output, float* /*workspace*/) override {
    const int64_t pixels = int64_t{out_.h} * out_.w;
    for (int64_t p = 0; p < pixels; ++p) {
      float* dst = output + p * out_.c;
      for (size_t i = 0; i < ins_.size(); ++i) {
        const int c = ins_[i].c;
        std::memcpy(dst, inputs[i] + p * c, static_cast<size_t>(c) * sizeof(float));
        dst += c;
      }
    }
  }

 private:
  std::vector<Shape> ins_;
  Shape out_;
};

class ReduceChannels : public OpImpl {
 public:
  ReduceChannels(const OpSpec& spec) : mode_(spec.node.reduce_mode), in_(spec.input_shapes[0]) {}
  const char* kernel_name() const override { return "reduce_channels_f32__simd128"; }
  void Run(const float* const* inputs, float* output, float* /*workspace*/) override {
    const int c = in_.c;
    const int64_t pixels = int64_t{in_.h} * in_.w;
    for (int64_t p = 0; p < pixels; ++p) {
      const float* x = inputs[0] + p * c;
      int ch = 0;
      float r;
      if (mode_ == ReduceMode::kMin || mode_ == ReduceMode::kMax) {
        const bool is_max = mode_ == ReduceMode::kMax;
        r = x[0];
        if (c >= 4) {
          f32x4 acc = Load(x);
          for (ch = 4; ch + 4 <= c; ch += 4) acc = is_max ? Max(acc, Load(x + ch)) : Min(acc, Load(x + ch));
          r = is_max ? HorizontalMax(acc) : HorizontalMin(acc);
        }
        for (; ch < c; ++ch) r = is_max ? std::max(r, x[ch]) : std::min(r, x[ch]);
      } else {
        const bool squares = mode_ == ReduceMode::kSumSquares;
        f32x4 acc = Splat(0.0f);
        for (; ch + 4 <= c; ch += 4) {
          const f32x4 v = Load(x + ch);
          acc = acc + (squares ? v * v : v);
        }
        r = HorizontalSum(acc);
        for (; ch < c; ++ch) r += squares ? x[ch] * x[ch] : x[ch];
        if (!squares) r /= static_cast<float>(c);
      }
      output[p] = r;
    }
  }

 private:
  ReduceMode mode_;
  Shape in_;
};

// Per position p: d = x_p - mu_p (into the workspace), y = A_r(p) d four
// rows at a time, out = sum y_k^2, with r(p) the cell's whitening region.
class PositionMahalanobis : public OpImpl {
 public:
  PositionMahalanobis(const OpSpec& spec)
      : in_(spec.input_shapes[0]), a_(spec.node.weight.data), mu_(spec.node.bias.data),
        grid_h_(int(spec.node.weight.shape[0])), grid_w_(int(spec.node.weight.shape[1])) {}
  size_t workspace_floats() const override { return static_cast<size_t>(in_.c); }
  const char* kernel_name() const override { return "position_mahalanobis_f32__simd128_4"; }
  void Run(const float* const* inputs, float* output, float* workspace) override {
    const int d = in_.c;
    const int64_t pixels = int64_t{in_.h} * in_.w;
    float* diff = workspace;
    for (int64_t p = 0; p < pixels; ++p) {
      const float* x = inputs[0] + p * d;
      const float* mu = mu_ + p * d;
      const float* a = a_ + PositionRegion(p, in_.h, in_.w, grid_h_, grid_w_) * d * d;
      int j = 0;
      for (; j + 4 <= d; j += 4) Store(diff + j, Load(x + j) - Load(mu + j));
      for (; j < d; ++j) diff[j] = x[j] - mu[j];
      f32x4 sum = Splat(0.0f);
      int k = 0;
      for (; k + 4 <= d; k += 4) {
        const float* r0 = a + int64_t{k} * d;
        const float* r1 = r0 + d;
        const float* r2 = r1 + d;
        const float* r3 = r2 + d;
        f32x4 y0 = Splat(0.0f), y1 = y0, y2 = y0, y3 = y0;
        j = 0;
        for (; j + 4 <= d; j += 4) {
          const f32x4 v = Load(diff + j);
          y0 = y0 + Load(r0 + j) * v;
          y1 = y1 + Load(r1 + j) * v;
          y2 = y2 + Load(r2 + j) * v;
          y3 = y3 + Load(r3 + j) * v;
        }
        f32x4 y = {HorizontalSum(y0), HorizontalSum(y1), HorizontalSum(y2), HorizontalSum(y3)};
        for (; j < d; ++j) {
          const f32x4 r = {r0[j], r1[j], r2[j], r3[j]};
          y = y + r * Splat(diff[j]);
        }
        sum = sum + y * y;
      }
      float total = HorizontalSum(sum);
      for (; k < d; ++k) {
        const float* r = a + int64_t{k} * d;
        f32x4 acc = Splat(0.0f);
        j = 0;
        for (; j + 4 <= d; j += 4) acc = acc + Load(r + j) * Load(diff + j);
        float y = HorizontalSum(acc);
        for (; j < d; ++j) y += r[j] * diff[j];
        total += y * y;
      }
      output[p] = total;
    }
  }

 private:
  Shape in_;
  const float* a_;
  const float* mu_;
  int grid_h_, grid_w_;  // whitening regions (weight [grid_h, grid_w, c, c])
};

}  // namespace

Result<std::unique_ptr<OpImpl>> CreateDense(const OpSpec& spec) {
  if (spec.input_shapes.size() != 1 || spec.node.weight.data == nullptr) {
    return MakeError(ErrorCode::kInternal, "simd dense '%s': needs 1 input and weights", spec.node.name.c_str());
  }
  std::unique_ptr<OpImpl> op = std::make_unique<Dense>(spec);
  return op;
}

Result<std::unique_ptr<OpImpl>> CreateElementwiseOp(const OpSpec& spec) {
  const Node& n = spec.node;
  const size_t want = n.op == OpType::kAdd || n.op == OpType::kMul ? 2 : 1;
  if (n.op != OpType::kConcat && spec.input_shapes.size() != want) {
    return MakeError(ErrorCode::kInternal, "simd %s '%s': expected %zu inputs", OpTypeName(n.op), n.name.c_str(), want);
  }
  std::unique_ptr<OpImpl> op;
  switch (n.op) {
    case OpType::kActivation: op = std::make_unique<ActivationOp>(spec); break;
    case OpType::kAdd: op = std::make_unique<AddOp>(spec); break;
    case OpType::kMaxPool2d:
    case OpType::kAvgPool2d: op = std::make_unique<Pool>(spec); break;
    case OpType::kGlobalAvgPool: op = std::make_unique<GlobalAvgPool>(spec); break;
    case OpType::kUpsample: op = std::make_unique<Upsample>(spec); break;
    case OpType::kConcat: op = std::make_unique<Concat>(spec); break;
    case OpType::kReduceChannels: op = std::make_unique<ReduceChannels>(spec); break;
    case OpType::kMul: op = std::make_unique<MulOp>(spec); break;
    case OpType::kPositionMahalanobis:
      if (n.weight.data == nullptr || n.bias.data == nullptr) {
        return MakeError(ErrorCode::kInternal, "simd position_mahalanobis '%s': no weight/bias",
                         n.name.c_str());
      }
      op = std::make_unique<PositionMahalanobis>(spec);
      break;
    default:
      return MakeError(ErrorCode::kUnsupported, "simd: op %s not handled here", OpTypeName(n.op));
  }
  return op;
}

}  // namespace simd
}  // namespace flawlens
