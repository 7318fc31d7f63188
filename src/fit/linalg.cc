#include "fit/linalg.h"

#include <cmath>

namespace flawlens::fit {

MomentAccumulator::MomentAccumulator(int dim)
    : dim_(dim),
      origin_(size_t(dim), 0.0),
      sum_(size_t(dim), 0.0),
      outer_(PackedSize(dim), 0.0),
      norm2x_(size_t(dim), 0.0) {}

void MomentAccumulator::Add(const float* x) {
  const int d = dim_;
  if (count_ == 0) {
    for (int i = 0; i < d; ++i) origin_[size_t(i)] = x[i];
  }
  // y = x - origin, in a small stack buffer when it fits.
  double stack[256];
  std::vector<double> heap;
  double* y = stack;
  if (d > 256) {
    heap.resize(size_t(d));
    y = heap.data();
  }
  double n2 = 0;
  for (int i = 0; i < d; ++i) {
    y[i] = double(x[i]) - origin_[size_t(i)];
    n2 += y[i] * y[i];
  }
  double* o = outer_.data();
  for (int i = 0; i < d; ++i) {
    const double yi = y[i];
    sum_[size_t(i)] += yi;
    norm2x_[size_t(i)] += n2 * yi;
    for (int j = i; j < d; ++j) *o++ += yi * y[j];
  }
  norm2_ += n2;
  norm4_ += n2 * n2;
  count_ += 1;
}

void MomentAccumulator::MeanCovariance(std::vector<double>* mean, std::vector<double>* cov) const {
  const int d = dim_;
  const double n = count_ > 0 ? count_ : 1;
  mean->assign(size_t(d), 0.0);
  cov->assign(size_t(d) * size_t(d), 0.0);
  std::vector<double> m(static_cast<size_t>(d));
  for (int i = 0; i < d; ++i) m[size_t(i)] = sum_[size_t(i)] / n;
  const double* o = outer_.data();
  for (int i = 0; i < d; ++i) {
    for (int j = i; j < d; ++j) {
      const double c = *o++ / n - m[size_t(i)] * m[size_t(j)];
      (*cov)[size_t(i) * d + j] = c;
      (*cov)[size_t(j) * d + i] = c;
    }
    (*mean)[size_t(i)] = m[size_t(i)] + origin_[size_t(i)];
  }
}

double MomentAccumulator::LedoitWolfShrinkage() const {
  if (count_ < 2) return 0.0;
  const int d = dim_;
  const double n = count_;
  std::vector<double> mean, s;
  MeanCovariance(&mean, &s);
  std::vector<double> m(static_cast<size_t>(d));
  for (int i = 0; i < d; ++i) m[size_t(i)] = sum_[size_t(i)] / n;  // mean of the shifted vectors
  // sum_k |y_k - m|^4 from the moments of y (|y - m|^2 = a - 2b + c with
  // a = |y|^2, b = y.m, c = |m|^2):
  //   norm4 - 4 m.norm2x + 4 m^T outer m + 2 c norm2 - 3 n c^2.
  double c = 0, m_v = 0, m_o_m = 0;
  for (int i = 0; i < d; ++i) {
    c += m[size_t(i)] * m[size_t(i)];
    m_v += m[size_t(i)] * norm2x_[size_t(i)];
  }
  const double* o = outer_.data();
  for (int i = 0; i < d; ++i) {
    for (int j = i; j < d; ++j) {
      const double t = *o++ * m[size_t(i)] * m[size_t(j)];
      m_o_m += i == j ? t : 2 * t;
    }
  }
  const double z4 = norm4_ - 4 * m_v + 4 * m_o_m + 2 * c * norm2_ - 3 * n * c * c;
  double frob2 = 0, trace = 0;
  for (int i = 0; i < d; ++i) {
    trace += s[size_t(i) * d + i];
    for (int j = 0; j < d; ++j) frob2 += s[size_t(i) * d + j] * s[size_t(i) * d + j];
  }
  const double p = d;
  const double mu = trace / p;
  double beta = (z4 / n - frob2) / (p * n);
  const double delta = (frob2 - 2 * mu * trace + p * mu * mu) / p;
  if (!(delta > 0)) return 0.0;
  if (beta > delta) beta = delta;
  if (!(beta > 0)) return 0.0;
  return beta / delta;
}

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
