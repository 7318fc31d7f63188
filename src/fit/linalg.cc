#include "fit/linalg.h"

#include <cmath>

namespace flawlens::fit {

Status CholeskyInPlace(double* a, int n) {
  for (int j = 0; j < n; ++j) {
    double diag = a[size_t(j) * n + j];
    for (int k = 0; k < j; ++k) diag -= a[size_t(j) * n + k] * a[size_t(j) * n + k];
    if (!(diag > 0) || !std::isfinite(diag)) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "Cholesky: the matrix is not positive definite (pivot %d of %d is %g)", j, n,
                       diag);
    }
    const double ljj = std::sqrt(diag);
    a[size_t(j) * n + j] = ljj;
    for (int i = j + 1; i < n; ++i) {
      double v = a[size_t(i) * n + j];
      for (int k = 0; k < j; ++k) v -= a[size_t(i) * n + k] * a[size_t(j) * n + k];
      a[size_t(i) * n + j] = v / ljj;
    }
    for (int k = j + 1; k < n; ++k) a[size_t(j) * n + k] = 0.0;
  }
  return Status::Ok();
}

void InvertLowerTriangular(const double* l, int n, double* out) {
  for (size_t i = 0; i < size_t(n) * n; ++i) out[i] = 0.0;
  // Column j of L^{-1}: forward substitution of L x = e_j.
  for (int j = 0; j < n; ++j) {
    out[size_t(j) * n + j] = 1.0 / l[size_t(j) * n + j];
    for (int i = j + 1; i < n; ++i) {
      double v = 0;
      for (int k = j; k < i; ++k) v -= l[size_t(i) * n + k] * out[size_t(k) * n + j];
      out[size_t(i) * n + j] = v / l[size_t(i) * n + i];
    }
  }
}

Status ShrunkWhitening(std::vector<double>* cov, int d, double shrinkage, double floor,
                       std::vector<double>* whitening) {
  double trace = 0;
  for (int i = 0; i < d; ++i) trace += (*cov)[size_t(i) * d + i];
  const double mu = trace / d;
  for (int i = 0; i < d; ++i) {
    for (int j = 0; j < d; ++j) (*cov)[size_t(i) * d + j] *= (1.0 - shrinkage);
    (*cov)[size_t(i) * d + i] += shrinkage * mu + floor;
  }
  FLAWLENS_RETURN_IF_ERROR(CholeskyInPlace(cov->data(), d));
  whitening->assign(size_t(d) * d, 0.0);
  InvertLowerTriangular(cov->data(), d, whitening->data());
  return Status::Ok();
}

}  // namespace flawlens::fit
