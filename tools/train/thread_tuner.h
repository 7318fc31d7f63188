// `flawlens train --threads 0`: LibTorch's thread count chosen while training.
//
// On an idle 2-core machine a second LibTorch thread makes a training step
// ~1.5x faster; when another process loads a core, OpenMP's barriers make it
// 3-4x slower (docs/METHOD.md, "Reference runs of the default"). So every
// `every` seconds the tuner times `steps` steps with the current count, then
// `steps` with the other one (1 or `max_threads`), and keeps the other one
// only if it was faster by 5 %.
#pragma once

#include <functional>
#include <utility>

namespace flawlens::train {

class ThreadTuner {
 public:
  // `set_threads` applies a thread count (torch::set_num_threads; tests
  // record it). The first trial starts a third of `every` into training.
  ThreadTuner(int max_threads, double every, int steps, std::function<void(int)> set_threads)
      : max_(max_threads), every_(every), steps_(steps), next_(every / 3),
        set_(std::move(set_threads)) {
    set_(cur_);
  }

  int threads() const { return cur_; }

  // After each step: `dt` = that step's own duration in seconds (without
  // validation passes), `t` = the training clock. Returns true when the
  // thread count changed.
  bool OnStep(double dt, double t) {
    if (max_ < 2) return false;
    switch (phase_) {
      case kIdle:
        if (t >= next_) {
          phase_ = kBase;
          n_ = 0;
          sum_ = 0;
        }
        return false;
      case kBase:
        sum_ += dt;
        if (++n_ < steps_) return false;
        base_ = sum_ / n_;
        set_(Other());
        phase_ = kTry;
        n_ = 0;
        sum_ = 0;
        return false;
      case kTry: {
        sum_ += dt;
        if (++n_ < steps_) return false;
        const bool better = sum_ / n_ < 0.95 * base_;
        if (better) cur_ = Other();
        set_(cur_);
        phase_ = kIdle;
        next_ = t + every_;
        return better;
      }
    }
    return false;
  }

 private:
  int Other() const { return cur_ == 1 ? max_ : 1; }

  enum Phase { kIdle, kBase, kTry };
  const int max_;
  const double every_;
  const int steps_;
  double next_;
  std::function<void(int)> set_;
  int cur_ = 1;
  Phase phase_ = kIdle;
  int n_ = 0;
  double sum_ = 0, base_ = 0;
};

}  // namespace flawlens::train
