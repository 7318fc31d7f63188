// Small dense linear algebra in double for fitting Gaussian densities
// (src/fit/): Cholesky factorisation, the inverse of a triangular factor and
// a shrunk covariance's whitening matrix. No external library: the same
// code runs natively and in the page (wasm). Matrices are row-major n x n.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"

namespace flawlens::fit {

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
