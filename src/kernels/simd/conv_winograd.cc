// conv2d_f32_3x3s1__winograd_simd128: Winograd F(4x4, 3x3) for 3x3 stride 1
// dilation 1 convs with >= 8 input channels.
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <vector>

#include "core/limits.h"
#include "kernels/simd/conv_internal.h"

namespace flawlens {
namespace simd {
namespace {

// ---- Winograd F(4x4, 3x3) ---------------------------------------------------
// Y = A^T [ (G g G^T) .* (B^T d B) ] A, 6x6 input tiles, 4x4 output tiles:
// 36 multiplies per output tile per (ic, oc) instead of 144. The 36
// element-wise products over channels are 36 GEMMs (tiles x C) * (C x OC)
// run with the same 4x8 micro-kernel.

template <class T>
inline void InputTransform1d(T d0, T d1, T d2, T d3, T d4, T d5, T* o, int s) {
  o[0 * s] = (d0 * 4.0f - d2 * 5.0f) + d4;
  o[1 * s] = (d3 + d4) - (d1 + d2) * 4.0f;
  o[2 * s] = (d4 - d3) + (d1 - d2) * 4.0f;
  o[3 * s] = (d4 - d2) + (d3 - d1) * 2.0f;
  o[4 * s] = (d4 - d2) + (d1 - d3) * 2.0f;
  o[5 * s] = (d1 * 4.0f - d3 * 5.0f) + d5;
}

template <class T>
inline void OutputTransform1d(T m0, T m1, T m2, T m3, T m4, T m5, T* y, int s) {
  const T a = m1 + m2, b = m1 - m2, c = m3 + m4, d = m3 - m4;
  y[0 * s] = m0 + a + c;
  y[1 * s] = b + d * 2.0f;
  y[2 * s] = a + c * 4.0f;
  y[3 * s] = (b + d * 8.0f) + m5;
}

// d: 36 input values (row-major 6x6) -> v: 36 transformed values B^T d B.
template <class T>
inline void InputTransform(const T* d, T* v) {
  T t[36];
  for (int j = 0; j < 6; ++j) InputTransform1d(d[j], d[6 + j], d[12 + j], d[18 + j], d[24 + j], d[30 + j], t + j, 6);
  for (int i = 0; i < 6; ++i) {
    const T* r = t + 6 * i;
    InputTransform1d(r[0], r[1], r[2], r[3], r[4], r[5], v + 6 * i, 1);
  }
}

// m: 36 values -> y: 16 outputs (row-major 4x4) A^T m A.
template <class T>
inline void OutputTransform(const T* m, T* y) {
  T t[24];
  for (int j = 0; j < 6; ++j) OutputTransform1d(m[j], m[6 + j], m[12 + j], m[18 + j], m[24 + j], m[30 + j], t + j, 6);
  for (int i = 0; i < 4; ++i) {
    const T* r = t + 6 * i;
    OutputTransform1d(r[0], r[1], r[2], r[3], r[4], r[5], y + 4 * i, 1);
  }
}

class WinogradConv : public OpImpl {
 public:
  static constexpr int kTile = 4, kPoints = 36;

  WinogradConv(const OpSpec& spec) : node_(spec.node), in_(spec.input_shapes[0]), out_(spec.output_shape) {
    const Node& n = node_;
    const int c = in_.c, oc = out_.c;
    ocp_ = RoundUp(oc, kNr);
    // U = G g G^T in double, packed [point][ocb][ic][8].
    static const double kG[6][3] = {{1.0 / 4, 0, 0},
                                    {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                    {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                    {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                    {1.0 / 24, -1.0 / 12, 1.0 / 6},
                                    {0, 0, 1}};
    u_.assign(static_cast<size_t>(kPoints) * ocp_ * c, 0.0f);
    for (int o = 0; o < oc; ++o) {
      for (int ic = 0; ic < c; ++ic) {
        double g[3][3];
        for (int ky = 0; ky < 3; ++ky)
          for (int kx = 0; kx < 3; ++kx) g[ky][kx] = n.weight.data[((static_cast<size_t>(o) * 3 + ky) * 3 + kx) * c + ic];
        double tmp[6][3];
        for (int i = 0; i < 6; ++i)
          for (int kx = 0; kx < 3; ++kx)
            tmp[i][kx] = kG[i][0] * g[0][kx] + kG[i][1] * g[1][kx] + kG[i][2] * g[2][kx];
        for (int i = 0; i < 6; ++i) {
          for (int j = 0; j < 6; ++j) {
            const double u = tmp[i][0] * kG[j][0] + tmp[i][1] * kG[j][1] + tmp[i][2] * kG[j][2];
            const size_t idx = ((static_cast<size_t>(i * 6 + j) * (ocp_ / kNr) + o / kNr) * c + ic) * kNr + o % kNr;
            u_[idx] = static_cast<float>(u);
          }
        }
      }
    }
    bias_.assign(ocp_, 0.0f);
    if (n.bias.data != nullptr) std::copy(n.bias.data, n.bias.data + oc, bias_.begin());
    zeros_.assign(kNr, 0.0f);
    tiles_h_ = (out_.h + kTile - 1) / kTile;
    tiles_w_ = (out_.w + kTile - 1) / kTile;
    geo_.top = n.pad_top;
    geo_.left = n.pad_left;
    geo_.h = tiles_h_ * kTile + 2;
    geo_.w = tiles_w_ * kTile + 2;
    // Tiles per block: transformed input + products of one block ~1 MiB.
    const int total = tiles_h_ * tiles_w_;
    const int budget = (256 * 1024) / (kPoints * (c + ocp_));
    block_ = std::max(kMr, std::min(RoundUp(total, kMr), budget / kMr * kMr));
  }

  size_t workspace_floats() const override {
    return static_cast<size_t>(geo_.h) * geo_.w * in_.c +
           static_cast<size_t>(kPoints) * block_ * (in_.c + ocp_);
  }
  const char* kernel_name() const override { return "conv2d_f32_3x3s1__winograd_simd128"; }

  void Run(const float* const* inputs, float* output, float* workspace) override {
    const int c = in_.c;
    float* pin = workspace;
    PadInput(inputs[0], in_.h, in_.w, c, geo_, pin);
    float* v = pin + static_cast<size_t>(geo_.h) * geo_.w * c;
    float* m = v + static_cast<size_t>(kPoints) * block_ * c;
    const int total = tiles_h_ * tiles_w_;
    for (int t0 = 0; t0 < total; t0 += block_) {
      const int nt = std::min(block_, total - t0);
      TransformInput(pin, t0, nt, v);
      Multiply(v, nt, m);
      TransformOutput(m, t0, nt, output);
    }
  }

 private:
  void TransformInput(const float* pin, int t0, int nt, float* v) const {
    const int c = in_.c;
    const size_t point_stride = static_cast<size_t>(block_) * c;
    const size_t row = static_cast<size_t>(geo_.w) * c;
    for (int t = 0; t < nt; ++t) {
      const int ty = (t0 + t) / tiles_w_, tx = (t0 + t) % tiles_w_;
      const float* base = pin + static_cast<size_t>(ty) * kTile * row + static_cast<size_t>(tx) * kTile * c;
      float* dst = v + static_cast<size_t>(t) * c;
      int ch = 0;
      for (; ch + 4 <= c; ch += 4) {
        f32x4 d[36], r[36];
        for (int i = 0; i < 6; ++i)
          for (int j = 0; j < 6; ++j) d[i * 6 + j] = Load(base + i * row + j * c + ch);
        InputTransform(d, r);
        for (int p = 0; p < kPoints; ++p) Store(dst + p * point_stride + ch, r[p]);
      }
      for (; ch < c; ++ch) {
        float d[36], r[36];
        for (int i = 0; i < 6; ++i)
          for (int j = 0; j < 6; ++j) d[i * 6 + j] = base[i * row + j * c + ch];
        InputTransform(d, r);
        for (int p = 0; p < kPoints; ++p) dst[p * point_stride + ch] = r[p];
      }
    }
  }

  void Multiply(const float* v, int nt, float* m) const {
    const int c = in_.c;
    const int n_ocb = ocp_ / kNr;
    const f32x4 vmin = Splat(-std::numeric_limits<float>::infinity());
    const f32x4 vmax = Splat(std::numeric_limits<float>::infinity());
    for (int p = 0; p < kPoints; ++p) {
      const float* vp = v + static_cast<size_t>(p) * block_ * c;
      float* mp = m + static_cast<size_t>(p) * block_ * ocp_;
      const float* up = u_.data() + static_cast<size_t>(p) * ocp_ * c;
      for (int b = 0; b < n_ocb; ++b) {
        TileRow(nt, vp, c, c, 1, 0, 1, 0, c, up + static_cast<size_t>(b) * c * kNr, zeros_.data(),
                vmin, vmax, mp + b * kNr, ocp_, kNr);
      }
    }
  }

  void TransformOutput(const float* m, int t0, int nt, float* output) const {
    const Node& n = node_;
    const int oc = out_.c;
    const size_t point_stride = static_cast<size_t>(block_) * ocp_;
    for (int t = 0; t < nt; ++t) {
      const int ty = (t0 + t) / tiles_w_, tx = (t0 + t) % tiles_w_;
      const int rows = std::min(kTile, out_.h - ty * kTile);
      const int cols = std::min(kTile, out_.w - tx * kTile);
      const float* src = m + static_cast<size_t>(t) * ocp_;
      float* dst = output + (static_cast<size_t>(ty) * kTile * out_.w + static_cast<size_t>(tx) * kTile) * oc;
      for (int ch = 0; ch < oc; ch += 4) {
        f32x4 d[36], y[16];
        for (int p = 0; p < kPoints; ++p) d[p] = Load(src + p * point_stride + ch);
        OutputTransform(d, y);
        const f32x4 b = Load(bias_.data() + ch);
        const int lanes = std::min(4, oc - ch);
        for (int i = 0; i < rows; ++i) {
          for (int j = 0; j < cols; ++j) {
            const f32x4 r = ApplyActivation(y[i * 4 + j] + b, n.activation, n.alpha);
            float* o = dst + (static_cast<size_t>(i) * out_.w + j) * oc + ch;
            if (lanes == 4) {
              Store(o, r);
            } else {
              for (int l = 0; l < lanes; ++l) o[l] = r[l];
            }
          }
        }
      }
    }
  }

  Node node_;
  Shape in_, out_;
  int ocp_ = 0, tiles_h_ = 0, tiles_w_ = 0, block_ = 0;
  Padded geo_;
  std::vector<float> u_, bias_, zeros_;
};

}  // namespace

std::unique_ptr<OpImpl> MakeWinogradConv(const OpSpec& spec) { return std::make_unique<WinogradConv>(spec); }

}  // namespace simd
}  // namespace flawlens
