// Gaussian density of feature vectors for the density branches of
// `flawlens train` (trainer.cc).
#pragma once

#include <torch/torch.h>

namespace flawlens::train {

// Running mean and covariance of feature vectors -> whitening (W, b) such that
// |W x + b|^2 is the squared Mahalanobis distance (covariance regularised by
// 1 % of its mean variance).
struct GaussianFit {
  explicit GaussianFit(int64_t c)
      : sum(torch::zeros({c}, torch::kFloat64)), outer(torch::zeros({c, c}, torch::kFloat64)) {}
  // `valid` (optional, N x 1 x H x W bool): only these cells count.
  void Add(const torch::Tensor& nchw, const torch::Tensor& valid = {}) {
    torch::Tensor f = nchw.permute({0, 2, 3, 1}).reshape({-1, sum.size(0)}).to(torch::kFloat64);
    if (valid.defined()) f = f.index({valid.reshape({-1})});
    sum += f.sum(0);
    outer += f.t().mm(f);
    count += double(f.size(0));
  }
  void Whiten(torch::Tensor* w_out, torch::Tensor* b_out) const {
    torch::Tensor mu = sum / count;
    torch::Tensor cov = outer / count - torch::outer(mu, mu);
    double reg = 0.01 * cov.diagonal().mean().item<double>() + 1e-6;
    cov = cov + reg * torch::eye(sum.size(0), torch::kFloat64);
    auto [evals, evecs] = torch::linalg::eigh(cov, "L");
    torch::Tensor w = evecs.mm(torch::diag(evals.clamp_min(1e-9).rsqrt())).mm(evecs.t());
    w_out->copy_(w.to(torch::kFloat32));
    b_out->copy_((-w.mv(mu)).to(torch::kFloat32));
  }
  torch::Tensor sum, outer;
  double count = 0;
};

}  // namespace flawlens::train
