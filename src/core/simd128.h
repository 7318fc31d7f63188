// One small 128-bit SIMD vocabulary for all SIMD kernels: GCC/clang vector
// extensions for arithmetic, intrinsics for what the extensions lack. The same
// kernel bodies compile natively (SSE2 baseline) and to WebAssembly
// (emcc -msimd128). SIMD128 has no FMA: mul-add is a mul then an add, on both
// targets, so native and wasm results agree bit for bit.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__wasm_simd128__)
#include <wasm_simd128.h>
#elif defined(__SSE2__)
#include <emmintrin.h>
#else
#error "core/simd128.h needs SSE2 (native) or -msimd128 (wasm)"
#endif

namespace flawlens {
namespace simd {

typedef float f32x4 __attribute__((vector_size(16)));
typedef int32_t i32x4 __attribute__((vector_size(16)));

inline f32x4 Load(const float* p) {
  f32x4 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
inline void Store(float* p, f32x4 v) { std::memcpy(p, &v, sizeof(v)); }

#if defined(__wasm_simd128__)
inline f32x4 Splat(float x) { return (f32x4)wasm_f32x4_splat(x); }
inline f32x4 LoadSplat(const float* p) { return (f32x4)wasm_v128_load32_splat(p); }
// pmax/pmin: the x86-friendly (maxps-like) variants; NaN handling is not needed.
inline f32x4 Max(f32x4 a, f32x4 b) { return (f32x4)wasm_f32x4_pmax((v128_t)a, (v128_t)b); }
inline f32x4 Min(f32x4 a, f32x4 b) { return (f32x4)wasm_f32x4_pmin((v128_t)a, (v128_t)b); }
#else
inline f32x4 Splat(float x) { return (f32x4)_mm_set1_ps(x); }
inline f32x4 LoadSplat(const float* p) { return (f32x4)_mm_load1_ps(p); }
inline f32x4 Max(f32x4 a, f32x4 b) { return (f32x4)_mm_max_ps((__m128)a, (__m128)b); }
inline f32x4 Min(f32x4 a, f32x4 b) { return (f32x4)_mm_min_ps((__m128)a, (__m128)b); }
#endif

inline float HorizontalSum(f32x4 v) { return (v[0] + v[1]) + (v[2] + v[3]); }
inline float HorizontalMax(f32x4 v) {
  const float a = v[0] > v[1] ? v[0] : v[1], b = v[2] > v[3] ? v[2] : v[3];
  return a > b ? a : b;
}
inline float HorizontalMin(f32x4 v) {
  const float a = v[0] < v[1] ? v[0] : v[1], b = v[2] < v[3] ? v[2] : v[3];
  return a < b ? a : b;
}

// exp(x) for x in float range: Cephes-style range reduction to
// [-ln2/2, ln2/2] and a degree-6 polynomial (rel. error ~2e-7); inputs are
// clamped to [-87.3, 88.3] so the result stays finite and normal.
inline f32x4 Exp(f32x4 x) {
  x = Min(Max(x, Splat(-87.3f)), Splat(88.3f));
  const f32x4 magic = Splat(12582912.0f);  // 1.5 * 2^23: rounds to integer
  f32x4 t = x * Splat(1.44269504088896341f) + magic;
  const i32x4 n = (i32x4)t - (i32x4)magic;
  t = t - magic;
  f32x4 r = x - t * Splat(0.693359375f);
  r = r - t * Splat(-2.12194440e-4f);
  f32x4 p = Splat(1.9875691500e-4f);
  p = p * r + Splat(1.3981999507e-3f);
  p = p * r + Splat(8.3334519073e-3f);
  p = p * r + Splat(4.1665795894e-2f);
  p = p * r + Splat(1.6666665459e-1f);
  p = p * r + Splat(5.0000001201e-1f);
  const f32x4 y = p * (r * r) + r + Splat(1.0f);
  const i32x4 bits = (n + 127) << 23;
  return y * (f32x4)bits;
}

inline f32x4 Sigmoid(f32x4 x) { return Splat(1.0f) / (Splat(1.0f) + Exp(Splat(0.0f) - x)); }

}  // namespace simd
}  // namespace flawlens
