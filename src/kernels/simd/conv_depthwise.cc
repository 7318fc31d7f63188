// dwconv2d_f32_{3x3,5x5,}__simd128_8ch: depthwise convs (groups == in_c ==
// out_c), no padded copy; 3x3 interiors 4 channels at a time with the weights
// in registers.
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <vector>

#include "core/limits.h"
#include "kernels/simd/conv_internal.h"

namespace flawlens {
namespace simd {
namespace {

// ---- depthwise --------------------------------------------------------------
// Weights packed per block of 8 channels: [block][tap][8] (the last block
// zero-padded), bias padded to a multiple of 8. No padded copy of the input:
// output pixels whose window lies inside the input (all but a border of about
// kernel / 2) read fixed tap offsets, unrolled for 3x3 and 5x5; border pixels
// visit only their taps inside the input (TF "SAME" asymmetric padding
// included). Two vectors (8 channels) per step keep two independent add
// chains in flight.
constexpr int kDwBlock = 8;

// One output pixel over all channels: `base` is the input at the window's
// top-left tap, taps at base + offs[t] (floats). T > 0: compile-time tap count.
template <int T, class Act>
inline void DwInteriorPixel(const float* base, const int64_t* offs, int taps, int c,
                            const float* w, const float* bias, Act act, float* out) {
  const int n = T > 0 ? T : taps;
  int ch = 0;
  for (; ch + kDwBlock <= c; ch += kDwBlock) {
    const float* wb = w + static_cast<size_t>(ch) * n;
    f32x4 a0 = Load(bias + ch), a1 = Load(bias + ch + 4);
    for (int t = 0; t < n; ++t) {
      const float* p = base + offs[t] + ch;
      a0 = a0 + Load(p) * Load(wb + t * kDwBlock);
      a1 = a1 + Load(p + 4) * Load(wb + t * kDwBlock + 4);
    }
    Store(out + ch, act(a0));
    Store(out + ch + 4, act(a1));
  }
  if (ch + 4 <= c) {
    const float* wb = w + static_cast<size_t>(ch) * n;
    f32x4 a0 = Load(bias + ch);
    for (int t = 0; t < n; ++t) a0 = a0 + Load(base + offs[t] + ch) * Load(wb + t * kDwBlock);
    Store(out + ch, act(a0));
    ch += 4;
  }
  for (; ch < c; ++ch) {
    const float* wb = w + static_cast<size_t>(ch / kDwBlock) * kDwBlock * n + ch % kDwBlock;
    float acc = bias[ch];
    for (int t = 0; t < n; ++t) acc += base[offs[t] + ch] * wb[t * kDwBlock];
    out[ch] = act.Scalar(acc);
  }
}

// 3x3 depthwise over `count` consecutive output pixels of one row whose
// windows lie inside the input, 4 channels [ch, ch + 4) at a time with that
// block's 9 weights held in registers (9 loads per pixel instead of 18).
// in: input at the first pixel's top-left tap and channel ch; taps at
// in + ky * row_step + kx * tap_step; pixel i at in + i * pix_step.
// w: the block's tap-t weights at w + t * kDwBlock. Each output is
// bias + sum over taps in tap order, as in DwInteriorPixel.
template <class Act>
void Dw3x3Run(const float* in, int64_t row_step, int64_t tap_step, int64_t pix_step, int count,
              const float* w, const float* bias, Act act, float* out, int64_t out_step) {
  const f32x4 w0 = Load(w), w1 = Load(w + kDwBlock), w2 = Load(w + 2 * kDwBlock);
  const f32x4 w3 = Load(w + 3 * kDwBlock), w4 = Load(w + 4 * kDwBlock), w5 = Load(w + 5 * kDwBlock);
  const f32x4 w6 = Load(w + 6 * kDwBlock), w7 = Load(w + 7 * kDwBlock), w8 = Load(w + 8 * kDwBlock);
  const f32x4 b = Load(bias);
  const int r = static_cast<int>(row_step), t = static_cast<int>(tap_step);
  for (int i = 0; i < count; ++i) {
    const float* p0 = in;
    const float* p1 = in + r;
    const float* p2 = p1 + r;
    f32x4 acc = b + Load(p0) * w0;
    acc = acc + Load(p0 + t) * w1;
    acc = acc + Load(p0 + 2 * t) * w2;
    acc = acc + Load(p1) * w3;
    acc = acc + Load(p1 + t) * w4;
    acc = acc + Load(p1 + 2 * t) * w5;
    acc = acc + Load(p2) * w6;
    acc = acc + Load(p2 + t) * w7;
    acc = acc + Load(p2 + 2 * t) * w8;
    Store(out, act(acc));
    in += pix_step;
    out += out_step;
  }
}

class DepthwiseConv : public OpImpl {
 public:
  DepthwiseConv(const OpSpec& spec) : node_(spec.node), in_(spec.input_shapes[0]), out_(spec.output_shape) {
    const Node& n = node_;
    const int c = in_.c;
    taps_ = n.kernel_h * n.kernel_w;
    const int cp = RoundUp(c, kDwBlock);
    w_.assign(static_cast<size_t>(taps_) * cp, 0.0f);
    for (int ch = 0; ch < c; ++ch) {
      float* dst = w_.data() + static_cast<size_t>(ch / kDwBlock) * kDwBlock * taps_ + ch % kDwBlock;
      for (int t = 0; t < taps_; ++t) dst[t * kDwBlock] = n.weight.data[static_cast<size_t>(ch) * taps_ + t];
    }
    bias_.assign(cp, 0.0f);
    if (n.bias.data != nullptr) std::copy(n.bias.data, n.bias.data + c, bias_.begin());
    for (int ky = 0; ky < n.kernel_h; ++ky)
      for (int kx = 0; kx < n.kernel_w; ++kx)
        offs_.push_back((static_cast<int64_t>(ky) * n.dilation_h * in_.w + static_cast<int64_t>(kx) * n.dilation_w) * c);
    // Output columns [x_lo_, x_hi_) have every tap inside the input width.
    x_lo_ = 0;
    while (x_lo_ < out_.w && x_lo_ * n.stride_w - n.pad_left < 0) ++x_lo_;
    x_hi_ = out_.w;
    while (x_hi_ > x_lo_ && (x_hi_ - 1) * n.stride_w - n.pad_left + (n.kernel_w - 1) * n.dilation_w >= in_.w) --x_hi_;
  }
  const char* kernel_name() const override {
    const Node& n = node_;
    if (n.kernel_h == 3 && n.kernel_w == 3) return "dwconv2d_f32_3x3__simd128_8ch";
    if (n.kernel_h == 5 && n.kernel_w == 5) return "dwconv2d_f32_5x5__simd128_8ch";
    return "dwconv2d_f32__simd128_8ch";
  }

  void Run(const float* const* inputs, float* output, float* /*workspace*/) override {
    const Node& n = node_;
    const int c = in_.c;
    const float* x = inputs[0];
    const Activation act = n.activation;
    const float alpha = n.alpha;
    for (int oy = 0; oy < out_.h; ++oy) {
      const int iy0 = oy * n.stride_h - n.pad_top;
      const bool rows_inside = iy0 >= 0 && iy0 + (n.kernel_h - 1) * n.dilation_h < in_.h;
      float* orow = output + static_cast<size_t>(oy) * out_.w * c;
      int ox = 0;
      if (rows_inside) {
        for (; ox < x_lo_; ++ox) BorderPixel(x, oy, ox, orow + static_cast<size_t>(ox) * c);
        const float* row = x + static_cast<int64_t>(iy0) * in_.w * c;
        if (taps_ == 9 && x_hi_ > ox) {
          Interior3x3(row + static_cast<int64_t>(ox * n.stride_w - n.pad_left) * c, x_hi_ - ox,
                      orow + static_cast<size_t>(ox) * c);
          ox = x_hi_;
        }
        if (ox < x_hi_) {
          WithAct(act, alpha, [&](auto fixed) {
            for (; ox < x_hi_; ++ox) {
              const float* base = row + static_cast<int64_t>(ox * n.stride_w - n.pad_left) * c;
              float* o = orow + static_cast<size_t>(ox) * c;
              if (taps_ == 25) {
                DwInteriorPixel<25>(base, offs_.data(), taps_, c, w_.data(), bias_.data(), fixed, o);
              } else {
                DwInteriorPixel<0>(base, offs_.data(), taps_, c, w_.data(), bias_.data(), fixed, o);
              }
            }
          });
        }
      }
      for (; ox < out_.w; ++ox) BorderPixel(x, oy, ox, orow + static_cast<size_t>(ox) * c);
    }
  }

 private:
  // `count` interior pixels of a 3x3 depthwise row: 4-channel blocks with the
  // weights in registers, then the (c % 4) last channels pixel by pixel.
  void Interior3x3(const float* in, int count, float* out) const {
    const Node& n = node_;
    const int c = in_.c;
    const int64_t row_step = static_cast<int64_t>(n.dilation_h) * in_.w * c;
    const int64_t tap_step = static_cast<int64_t>(n.dilation_w) * c;
    const int64_t pix_step = static_cast<int64_t>(n.stride_w) * c;
    const float alpha = n.alpha;
    int ch = 0;
    for (; ch + 4 <= c; ch += 4) {
      const float* w = w_.data() + static_cast<size_t>(ch / kDwBlock) * kDwBlock * 9 + ch % kDwBlock;
      const float* b = bias_.data() + ch;
      WithAct(n.activation, alpha, [&](auto act) {
        Dw3x3Run(in + ch, row_step, tap_step, pix_step, count, w, b, act, out + ch, c);
      });
    }
    for (; ch < c; ++ch) {
      const float* wb = w_.data() + static_cast<size_t>(ch / kDwBlock) * kDwBlock * 9 + ch % kDwBlock;
      for (int i = 0; i < count; ++i) {
        const float* base = in + i * pix_step + ch;
        float acc = bias_[ch];
        for (int t = 0; t < 9; ++t) acc += base[offs_[t]] * wb[t * kDwBlock];
        out[static_cast<int64_t>(i) * c + ch] = flawlens::ApplyActivation(acc, n.activation, alpha);
      }
    }
  }

  // A pixel whose window crosses the input border: the same 8-channel steps
  // over only the taps inside the input (padding contributes zeros).
  void BorderPixel(const float* x, int oy, int ox, float* out) const {
    const Node& n = node_;
    const int c = in_.c;
    const int iy0 = oy * n.stride_h - n.pad_top, ix0 = ox * n.stride_w - n.pad_left;
    int64_t offs[kMaxKernel * kMaxKernel];
    int widx[kMaxKernel * kMaxKernel];
    int nt = 0;
    for (int ky = 0; ky < n.kernel_h; ++ky) {
      const int iy = iy0 + ky * n.dilation_h;
      if (iy < 0 || iy >= in_.h) continue;
      for (int kx = 0; kx < n.kernel_w; ++kx) {
        const int ix = ix0 + kx * n.dilation_w;
        if (ix < 0 || ix >= in_.w) continue;
        offs[nt] = (static_cast<int64_t>(iy) * in_.w + ix) * c;
        widx[nt++] = (ky * n.kernel_w + kx) * kDwBlock;
      }
    }
    const float* bias = bias_.data();
    const Activation act = n.activation;
    const float alpha = n.alpha;
    int ch = 0;
    for (; ch + kDwBlock <= c; ch += kDwBlock) {
      const float* wb = w_.data() + static_cast<size_t>(ch) * taps_;
      f32x4 a0 = Load(bias + ch), a1 = Load(bias + ch + 4);
      for (int t = 0; t < nt; ++t) {
        const float* p = x + offs[t] + ch;
        a0 = a0 + Load(p) * Load(wb + widx[t]);
        a1 = a1 + Load(p + 4) * Load(wb + widx[t] + 4);
      }
      Store(out + ch, ApplyActivation(a0, act, alpha));
      Store(out + ch + 4, ApplyActivation(a1, act, alpha));
    }
    if (ch + 4 <= c) {
      const float* wb = w_.data() + static_cast<size_t>(ch) * taps_;
      f32x4 a0 = Load(bias + ch);
      for (int t = 0; t < nt; ++t) a0 = a0 + Load(x + offs[t] + ch) * Load(wb + widx[t]);
      Store(out + ch, ApplyActivation(a0, act, alpha));
      ch += 4;
    }
    for (; ch < c; ++ch) {
      const float* wb = w_.data() + static_cast<size_t>(ch / kDwBlock) * kDwBlock * taps_ + ch % kDwBlock;
      float acc = bias[ch];
      for (int t = 0; t < nt; ++t) acc += x[offs[t] + ch] * wb[widx[t]];
      out[ch] = flawlens::ApplyActivation(acc, act, alpha);
    }
  }

  Node node_;
  Shape in_, out_;
  int taps_ = 0, x_lo_ = 0, x_hi_ = 0;
  std::vector<int64_t> offs_;
  std::vector<float> w_, bias_;
};

}  // namespace

std::unique_ptr<OpImpl> MakeDepthwiseConv(const OpSpec& spec) { return std::make_unique<DepthwiseConv>(spec); }

}  // namespace simd
}  // namespace flawlens
