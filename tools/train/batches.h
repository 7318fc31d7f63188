// Training batches of `flawlens train --from-scratch`: random crops of the
// training images (flips, gain and bias), synthetic anomalies painted on a
// fraction of them (synth_anomaly.h) with their masks at map resolution,
// made on a separate thread a few batches ahead of the training loop.
#pragma once

#include <torch/torch.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "image/preprocess.h"
#include "train/synth_anomaly.h"
#include "train/trainer.h"

namespace flawlens::train::scratch {

struct Batch {
  torch::Tensor x, y;  // inputs N x C x h x w; anomaly masks N x 1 x h/4 x w/4
};

class BatchMaker {
 public:
  BatchMaker(const std::vector<FloatImage>* images, const PreprocessConfig* cfg,
             const TrainOptions* opt, int crop_h, int crop_w, uint32_t seed);
  Batch Make();

 private:
  FloatImage RandomCrop(const FloatImage& src);

  const std::vector<FloatImage>* images_;
  const PreprocessConfig* cfg_;
  const TrainOptions* opt_;
  int crop_h_, crop_w_;
  std::mt19937 rng_;
  PreprocessScratch scratch_;
};

// Runs a BatchMaker on its own thread, up to three batches ahead.
class BatchQueue {
 public:
  explicit BatchQueue(BatchMaker* maker);
  ~BatchQueue();
  Batch Pop();

 private:
  BatchMaker* maker_;
  std::thread worker_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Batch> queue_;
  bool stop_ = false;
};

}  // namespace flawlens::train::scratch
