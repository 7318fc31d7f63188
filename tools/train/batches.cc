// Training batches of the from-scratch trainer (batches.h).
#include "train/batches.h"

#include <algorithm>
#include <cmath>

#include "train/trainer_run.h"

namespace flawlens::train::scratch {
namespace {

// FloatImage (0..255) -> uint8 Image -> the model's preprocessing.
torch::Tensor NormaliseSample(const FloatImage& img, const PreprocessConfig& model_cfg,
                              PreprocessScratch* scratch) {
  std::vector<uint8_t> px(img.data.size());
  for (size_t i = 0; i < px.size(); ++i)
    px[i] = static_cast<uint8_t>(std::clamp(std::lround(img.data[i]), 0L, 255L));
  ImageView view{px.data(), img.w, img.h, img.c == 1 ? PixelFormat::kGray8 : PixelFormat::kRGB8,
                 0};
  PreprocessConfig cfg = model_cfg;
  cfg.resize_w = img.w;
  cfg.resize_h = img.h;
  cfg.crop = RectI{};
  std::vector<float> out(size_t(img.h) * img.w * cfg.channels);
  RectF covered;
  Status st = Preprocess(view, cfg, RectF{}, out.data(), scratch, &covered);
  if (!st.ok()) return torch::zeros({cfg.channels, img.h, img.w});
  return HwcToTensor(out, img.h, img.w, cfg.channels);
}

}  // namespace

BatchMaker::BatchMaker(const std::vector<FloatImage>* images, const PreprocessConfig* cfg,
                       const TrainOptions* opt, int crop_h, int crop_w, uint32_t seed)
    : images_(images), cfg_(cfg), opt_(opt), crop_h_(crop_h), crop_w_(crop_w), rng_(seed) {}

Batch BatchMaker::Make() {
  int n = opt_->batch;
  torch::Tensor x = torch::empty({n, cfg_->channels, crop_h_, crop_w_});
  torch::Tensor y = torch::empty({n, 1, crop_h_ / 4, crop_w_ / 4});
  for (int i = 0; i < n; ++i) {
    const FloatImage& src = (*images_)[std::uniform_int_distribution<int>(
        0, int(images_->size()) - 1)(rng_)];
    FloatImage img = RandomCrop(src);
    std::vector<float> mask(size_t(img.h) * img.w, 0.0f);
    if (std::uniform_real_distribution<float>(0, 1)(rng_) < opt_->anomaly_prob) {
      PaintAnomalies(&img, &mask, *images_, opt_->synth, &rng_);
    }
    x[i] = NormaliseSample(img, *cfg_, &scratch_);
    torch::Tensor m = torch::from_blob(mask.data(), {1, 1, img.h, img.w}, torch::kFloat32);
    y[i] = torch::avg_pool2d(m, 4)[0];
  }
  return {x, y};
}

FloatImage BatchMaker::RandomCrop(const FloatImage& src) {
  int ch = std::min(crop_h_, src.h), cw = std::min(crop_w_, src.w);
  int y0 = std::uniform_int_distribution<int>(0, src.h - ch)(rng_);
  int x0 = std::uniform_int_distribution<int>(0, src.w - cw)(rng_);
  bool fx = opt_->flips && (rng_() & 1), fy = opt_->flips && (rng_() & 1);
  float gain = std::uniform_real_distribution<float>(0.8f, 1.2f)(rng_);
  float bias = std::uniform_real_distribution<float>(-12.f, 12.f)(rng_);
  FloatImage out;
  out.h = crop_h_;
  out.w = crop_w_;
  out.c = src.c;
  out.data.assign(size_t(out.h) * out.w * out.c, 0.0f);
  // A source smaller than the crop is mirrored (as the detector pads it).
  for (int y = 0; y < crop_h_; ++y) {
    int sy = MirrorIndex(y, ch);
    sy = fy ? y0 + ch - 1 - sy : y0 + sy;
    for (int x = 0; x < crop_w_; ++x) {
      int sx = MirrorIndex(x, cw);
      sx = fx ? x0 + cw - 1 - sx : x0 + sx;
      for (int c = 0; c < src.c; ++c)
        out.at(y, x, c) = std::clamp(src.at(sy, sx, c) * gain + bias, 0.0f, 255.0f);
    }
  }
  return out;
}

BatchQueue::BatchQueue(BatchMaker* maker) : maker_(maker) {
  worker_ = std::thread([this] {
    while (!stop_) {
      Batch b = maker_->Make();
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stop_ || queue_.size() < 3; });
      if (stop_) break;
      queue_.push_back(std::move(b));
      cv_.notify_all();
    }
  });
}

BatchQueue::~BatchQueue() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  worker_.join();
}

Batch BatchQueue::Pop() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return !queue_.empty(); });
  Batch b = std::move(queue_.front());
  queue_.pop_front();
  cv_.notify_all();
  return b;
}

}  // namespace flawlens::train::scratch
