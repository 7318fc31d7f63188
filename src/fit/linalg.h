// Small dense linear algebra in double for fitting Gaussian densities
// (src/fit/): covariance shrinkage, Cholesky factorisation and the inverse of
// a triangular factor (the whitening matrix). No external library: the same
// code runs natively and in the page (wasm). Matrices are row-major n x n.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"

namespace flawlens::fit {

// Sufficient statistics of vectors x_k (k = 1..n) of dimension d, enough for
// the mean, the covariance and the Ledoit-Wolf shrinkage:
//   sum = sum_k x_k, outer = sum_k x_k x_k^T (upper triangle, packed row by
//   row), norm2x = sum_k |x_k|^2 x_k, norm4 = sum_k |x_k|^4.
// Vectors are shifted by `origin` (the first vector added) before they are
// summed, which keeps the sums small and the moments accurate in double.
class MomentAccumulator {
 public:
  MomentAccumulator() = default;
  explicit MomentAccumulator(int dim);

  int dim() const { return dim_; }
  double count() const { return count_; }
  void Add(const float* x);

  // Mean (d) and the maximum-likelihood covariance (d x d, divided by n).
  void MeanCovariance(std::vector<double>* mean, std::vector<double>* cov) const;
  // The Ledoit-Wolf shrinkage intensity in [0, 1] of the covariance towards
  // (trace / d) I, as scikit-learn's ledoit_wolf_shrinkage computes it from the
  // centred data; 0 for fewer than 2 vectors or a zero covariance.
  double LedoitWolfShrinkage() const;

  static size_t PackedSize(int dim) { return size_t(dim) * size_t(dim + 1) / 2; }

 private:
  int dim_ = 0;
  double count_ = 0;
  std::vector<double> origin_, sum_, outer_, norm2x_;
  double norm2_ = 0, norm4_ = 0;  // sum_k |x_k|^2, sum_k |x_k|^4
};

// In place: a (symmetric positive definite; only the lower triangle is read)
// becomes L with a = L L^T, lower triangular, zeros above the diagonal.
// kInvalidArgument when a pivot is not > 0 (or not finite), naming it.
Status CholeskyInPlace(double* a, int n);

// out = L^{-1} for lower triangular L with a non-zero diagonal (out is lower
// triangular too). out may not alias l.
void InvertLowerTriangular(const double* l, int n, double* out);

// Shrinks `cov` (d x d, in place) towards mu I, mu = trace / d:
//   cov = (1 - shrinkage) cov + shrinkage mu I + floor I.
// Then whitening = L^{-1} (lower triangular, d x d) for cov = L L^T, so that
// |whitening (x - mean)|^2 is the squared Mahalanobis distance. Errors when
// the result is not positive definite (floor <= 0 and a singular covariance).
Status ShrunkWhitening(std::vector<double>* cov, int d, double shrinkage, double floor,
                       std::vector<double>* whitening);

}  // namespace flawlens::fit
