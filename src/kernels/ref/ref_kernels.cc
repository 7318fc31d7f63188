#include "kernels/ref/ref_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/activation.h"

namespace flawlens {
namespace ref {

void Conv2d(const Node& node, const Shape& in, const Shape& out, const float* input,
            const float* weight, const float* bias, float* output) {
  const int groups = node.groups;
  const int cin_g = in.c / groups;
  const int cout_g = out.c / groups;
  const int kh = node.kernel_h, kw = node.kernel_w;
  for (int oy = 0; oy < out.h; ++oy) {
    for (int ox = 0; ox < out.w; ++ox) {
      float* dst = output + (int64_t{oy} * out.w + ox) * out.c;
      for (int oc = 0; oc < out.c; ++oc) {
        const int g = oc / cout_g;
        double acc = bias != nullptr ? bias[oc] : 0.0;
        for (int ky = 0; ky < kh; ++ky) {
          const int iy = oy * node.stride_h - node.pad_top + ky * node.dilation_h;
          if (iy < 0 || iy >= in.h) continue;
          for (int kx = 0; kx < kw; ++kx) {
            const int ix = ox * node.stride_w - node.pad_left + kx * node.dilation_w;
            if (ix < 0 || ix >= in.w) continue;
            const float* src = input + (int64_t{iy} * in.w + ix) * in.c + int64_t{g} * cin_g;
            const float* w = weight + ((int64_t{oc} * kh + ky) * kw + kx) * cin_g;
            for (int ic = 0; ic < cin_g; ++ic) acc += double{src[ic]} * double{w[ic]};
          }
        }
        dst[oc] = ApplyActivation(static_cast<float>(acc), node.activation, node.alpha);
      }
    }
  }
}

void ActivationOp(Activation act, float alpha, int64_t n, const float* input, float* output) {
  for (int64_t i = 0; i < n; ++i) output[i] = ApplyActivation(input[i], act, alpha);
}

void MaxPool2d(const Node& node, const Shape& in, const Shape& out, const float* input,
               float* output) {
  for (int oy = 0; oy < out.h; ++oy) {
    for (int ox = 0; ox < out.w; ++ox) {
      float* dst = output + (int64_t{oy} * out.w + ox) * out.c;
      for (int c = 0; c < out.c; ++c) {
        float m = -std::numeric_limits<float>::infinity();
        int count = 0;
        for (int ky = 0; ky < node.kernel_h; ++ky) {
          const int iy = oy * node.stride_h - node.pad_top + ky * node.dilation_h;
          if (iy < 0 || iy >= in.h) continue;
          for (int kx = 0; kx < node.kernel_w; ++kx) {
            const int ix = ox * node.stride_w - node.pad_left + kx * node.dilation_w;
            if (ix < 0 || ix >= in.w) continue;
            m = std::max(m, input[(int64_t{iy} * in.w + ix) * in.c + c]);
            ++count;
          }
        }
        dst[c] = count > 0 ? m : 0.0f;  // a window entirely in padding reads 0
      }
    }
  }
}

// PyTorch semantics: with count_include_pad the divisor counts window taps
// inside the padded input [-pad_before, size + pad_after); otherwise only
// taps inside the input.
void AvgPool2d(const Node& node, const Shape& in, const Shape& out, const float* input,
               float* output) {
  for (int oy = 0; oy < out.h; ++oy) {
    for (int ox = 0; ox < out.w; ++ox) {
      float* dst = output + (int64_t{oy} * out.w + ox) * out.c;
      for (int c = 0; c < out.c; ++c) {
        double sum = 0.0;
        int valid = 0, padded = 0;
        for (int ky = 0; ky < node.kernel_h; ++ky) {
          const int iy = oy * node.stride_h - node.pad_top + ky * node.dilation_h;
          if (iy >= in.h + node.pad_bottom) continue;
          const bool row_in = iy >= 0 && iy < in.h;
          for (int kx = 0; kx < node.kernel_w; ++kx) {
            const int ix = ox * node.stride_w - node.pad_left + kx * node.dilation_w;
            if (ix >= in.w + node.pad_right) continue;
            ++padded;
            if (!row_in || ix < 0 || ix >= in.w) continue;
            sum += input[(int64_t{iy} * in.w + ix) * in.c + c];
            ++valid;
          }
        }
        const int divisor = node.count_include_pad ? padded : valid;
        dst[c] = divisor > 0 ? static_cast<float>(sum / divisor) : 0.0f;
      }
    }
  }
}

void GlobalAvgPool(const Shape& in, const float* input, float* output) {
  const int64_t pixels = int64_t{in.h} * in.w;
  for (int c = 0; c < in.c; ++c) {
    double sum = 0.0;
    for (int64_t p = 0; p < pixels; ++p) sum += input[p * in.c + c];
    output[c] = static_cast<float>(sum / static_cast<double>(pixels));
  }
}

void Dense(const Node& node, const Shape& in, int out_features, const float* input,
           const float* weight, const float* bias, float* output) {
  const int64_t n = in.elements();
  for (int o = 0; o < out_features; ++o) {
    double acc = bias != nullptr ? bias[o] : 0.0;
    const float* w = weight + o * n;
    for (int64_t i = 0; i < n; ++i) acc += double{w[i]} * double{input[i]};
    output[o] = ApplyActivation(static_cast<float>(acc), node.activation, node.alpha);
  }
}

// Bilinear: PyTorch align_corners=False, src = (dst + 0.5) / scale - 0.5,
// clamped at 0; the upper neighbour is clamped to the last row/column.
// Nearest: src = floor(dst / scale).
void Upsample(const Node& node, const Shape& in, const Shape& out, const float* input,
              float* output) {
  const int c_n = in.c;
  for (int oy = 0; oy < out.h; ++oy) {
    for (int ox = 0; ox < out.w; ++ox) {
      float* dst = output + (int64_t{oy} * out.w + ox) * c_n;
      if (node.upsample_mode == UpsampleMode::kNearest) {
        const int iy = oy / node.scale_h, ix = ox / node.scale_w;
        const float* src = input + (int64_t{iy} * in.w + ix) * c_n;
        for (int c = 0; c < c_n; ++c) dst[c] = src[c];
        continue;
      }
      const float sy = std::max(0.0f, (oy + 0.5f) / node.scale_h - 0.5f);
      const float sx = std::max(0.0f, (ox + 0.5f) / node.scale_w - 0.5f);
      const int y0 = std::min(static_cast<int>(sy), in.h - 1);
      const int x0 = std::min(static_cast<int>(sx), in.w - 1);
      const int y1 = std::min(y0 + 1, in.h - 1), x1 = std::min(x0 + 1, in.w - 1);
      const float ly = sy - y0, lx = sx - x0;
      const float* p00 = input + (int64_t{y0} * in.w + x0) * c_n;
      const float* p01 = input + (int64_t{y0} * in.w + x1) * c_n;
      const float* p10 = input + (int64_t{y1} * in.w + x0) * c_n;
      const float* p11 = input + (int64_t{y1} * in.w + x1) * c_n;
      for (int c = 0; c < c_n; ++c) {
        const float top = p00[c] + (p01[c] - p00[c]) * lx;
        const float bottom = p10[c] + (p11[c] - p10[c]) * lx;
        dst[c] = top + (bottom - top) * ly;
      }
    }
  }
}

void Concat(const std::vector<Shape>& ins, const float* const* inputs, const Shape& out,
            float* output) {
  const int64_t pixels = int64_t{out.h} * out.w;
  for (int64_t p = 0; p < pixels; ++p) {
    float* dst = output + p * out.c;
    for (size_t i = 0; i < ins.size(); ++i) {
      const int c_n = ins[i].c;
      const float* src = inputs[i] + p * c_n;
      for (int c = 0; c < c_n; ++c) dst[c] = src[c];
      dst += c_n;
    }
  }
}

void Add(const Node& node, int64_t n, const float* a, const float* b, float* output) {
  for (int64_t i = 0; i < n; ++i) output[i] = ApplyActivation(a[i] + b[i], node.activation, node.alpha);
}

void ReduceChannels(ReduceMode mode, const Shape& in, const float* input, float* output) {
  const int64_t pixels = int64_t{in.h} * in.w;
  for (int64_t p = 0; p < pixels; ++p) {
    const float* src = input + p * in.c;
    double acc = (mode == ReduceMode::kMin || mode == ReduceMode::kMax) ? src[0] : 0.0;
    for (int c = 0; c < in.c; ++c) {
      const double v = src[c];
      switch (mode) {
        case ReduceMode::kSumSquares: acc += v * v; break;
        case ReduceMode::kMin: acc = std::min(acc, v); break;
        case ReduceMode::kMax: acc = std::max(acc, v); break;
        case ReduceMode::kMean: acc += v; break;
      }
    }
    if (mode == ReduceMode::kMean) acc /= in.c;
    output[p] = static_cast<float>(acc);
  }
}

void Mul(const Node& node, const Shape& in, const Shape& in_b, const float* a, const float* b,
         float* output) {
  const int64_t pixels = int64_t{in.h} * in.w;
  const bool broadcast = in_b != in;
  for (int64_t p = 0; p < pixels; ++p) {
    const float* bp = broadcast ? b : b + p * in.c;
    for (int c = 0; c < in.c; ++c) {
      const int64_t i = p * in.c + c;
      output[i] = ApplyActivation(a[i] * bp[c], node.activation, node.alpha);
    }
  }
}

void PositionMahalanobis(const Shape& in, const float* input, const float* weight,
                         const float* bias, float* output, int grid_h, int grid_w) {
  const int d = in.c;
  const int64_t pixels = int64_t{in.h} * in.w;
  std::vector<double> diff(d);
  for (int64_t p = 0; p < pixels; ++p) {
    const float* x = input + p * d;
    const float* mu = bias + p * d;
    const int64_t region = PositionRegion(p, in.h, in.w, grid_h, grid_w);
    const float* a = weight + region * d * d;
    for (int j = 0; j < d; ++j) diff[j] = double{x[j]} - double{mu[j]};
    double sum = 0.0;
    for (int k = 0; k < d; ++k) {
      double y = 0.0;
      for (int j = 0; j < d; ++j) y += double{a[int64_t{k} * d + j]} * diff[j];
      sum += y * y;
    }
    output[p] = static_cast<float>(sum);
  }
}

}  // namespace ref
}  // namespace flawlens
