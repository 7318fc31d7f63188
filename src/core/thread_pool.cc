#include "core/thread_pool.h"

#include <chrono>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace flawlens {

namespace {

inline void CpuRelax() {
#if defined(__SSE2__)
  _mm_pause();
#endif
}

// Emscripten without -pthread links pthread stubs whose pthread_create fails;
// never try it there.
#if defined(__EMSCRIPTEN__) && !defined(__EMSCRIPTEN_PTHREADS__)
constexpr bool kHaveThreads = false;
#else
constexpr bool kHaveThreads = true;
#endif

// How long a thread spins before it sleeps: long enough to catch the next op
// of the same network run (microseconds away when the machine is idle),
// short enough not to take CPU from the thread it waits for when cores are
// oversubscribed: on the 2-core machine at a load average of 8-9, two
// threads ran the default model 1.38-1.39x slower than one when spinning for
// 20,000 pause instructions, 1.10-1.16x with 50 us (native simd backend).
constexpr auto kSpinTime = std::chrono::microseconds(50);
constexpr int kSpinCheckEvery = 32;  // iterations between clock reads

// Spins until `done()` or kSpinTime has passed; returns done().
template <class Done>
bool SpinUntil(Done done) {
  const auto end = std::chrono::steady_clock::now() + kSpinTime;
  for (int i = 1;; ++i) {
    if (done()) return true;
    if (i % kSpinCheckEvery == 0 && std::chrono::steady_clock::now() >= end) return done();
    CpuRelax();
  }
}

}  // namespace

bool ThreadPool::ThreadsAvailable() { return kHaveThreads; }

Result<std::unique_ptr<ThreadPool>> ThreadPool::Create(int threads) {
  if (threads < 1 || threads > kMaxThreads)
    return MakeError(ErrorCode::kInvalidArgument, "thread pool: %d threads (allowed 1..%d)",
                     threads, kMaxThreads);
  std::unique_ptr<ThreadPool> pool(new ThreadPool());
  pool->workers_.reserve(kMaxThreads - 1);
  pool->worker_args_.reserve(kMaxThreads - 1);
  FLAWLENS_RETURN_IF_ERROR(pool->Grow(threads));
  return pool;
}

int ThreadPool::threads() const { return num_workers_.load(std::memory_order_acquire) + 1; }

Status ThreadPool::Grow(int threads) {
  if (threads < 1 || threads > kMaxThreads)
    return MakeError(ErrorCode::kInvalidArgument, "thread pool: %d threads (allowed 1..%d)",
                     threads, kMaxThreads);
  if (threads > 1 && !kHaveThreads)
    return MakeError(ErrorCode::kUnsupported,
                     "thread pool: this build has no threads (the -pthread wasm module has)");
  std::lock_guard<std::mutex> run_lock(run_mu_);
  while (static_cast<int>(workers_.size()) + 1 < threads) {
    const int index = static_cast<int>(workers_.size());
    worker_args_.push_back(WorkerArg{this, index});  // capacity reserved: no reallocation
    pthread_t thread;
    const int err = pthread_create(&thread, nullptr, &ThreadPool::WorkerMain, &worker_args_.back());
    if (err != 0) {
      worker_args_.pop_back();
      return MakeError(ErrorCode::kInternal, "thread pool: cannot start thread %d of %d: %s",
                       index + 1, threads - 1, std::strerror(err));
    }
    workers_.push_back(thread);
    num_workers_.store(static_cast<int>(workers_.size()), std::memory_order_release);
  }
  return Status::Ok();
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    ++generation_;
    published_generation_.store(generation_, std::memory_order_release);
  }
  wake_cv_.notify_all();
  for (pthread_t t : workers_) pthread_join(t, nullptr);
}

void* ThreadPool::WorkerMain(void* arg) {
  const WorkerArg* a = static_cast<const WorkerArg*>(arg);
  a->pool->WorkerLoop(a->index);
  return nullptr;
}

void ThreadPool::RunTasks(TaskFn fn, void* context, int tasks) {
  for (;;) {
    const int t = next_task_.fetch_add(1, std::memory_order_relaxed);
    if (t >= tasks) return;
    fn(context, t);
    remaining_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::WorkerLoop(int index) {
  uint64_t seen = 0;
  for (;;) {
    SpinUntil([&] { return published_generation_.load(std::memory_order_acquire) != seen; });
    TaskFn fn;
    void* context;
    int tasks;
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      // Joined under the lock, so the job cannot change until this worker
      // leaves it; a job already drained, or too small to need this worker,
      // is not joined at all.
      if (index + 1 >= tasks_ || next_task_.load(std::memory_order_relaxed) >= tasks_) continue;
      ++active_;
      active_atomic_.store(active_, std::memory_order_relaxed);
      fn = fn_;
      context = context_;
      tasks = tasks_;
    }
    RunTasks(fn, context, tasks);
    bool last;
    {
      std::lock_guard<std::mutex> lock(mu_);
      --active_;
      active_atomic_.store(active_, std::memory_order_release);
      last = active_ == 0;
    }
    if (last) done_cv_.notify_one();
  }
}

void ThreadPool::Run(int tasks, TaskFn fn, void* context) {
  if (tasks <= 0) return;
  std::unique_lock<std::mutex> run_lock(run_mu_, std::try_to_lock);
  if (num_workers_.load(std::memory_order_acquire) == 0 || tasks == 1 || !run_lock.owns_lock()) {
    for (int t = 0; t < tasks; ++t) fn(context, t);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    fn_ = fn;
    context_ = context;
    tasks_ = tasks;
    next_task_.store(0, std::memory_order_relaxed);
    remaining_.store(tasks, std::memory_order_relaxed);
    ++generation_;
    published_generation_.store(generation_, std::memory_order_release);
  }
  wake_cv_.notify_all();
  RunTasks(fn, context, tasks);
  // Every task claimed; wait until they are finished and every worker that
  // joined has left (so the next job may overwrite fn_/context_).
  SpinUntil([&] {
    return remaining_.load(std::memory_order_acquire) == 0 &&
           active_atomic_.load(std::memory_order_acquire) == 0;
  });
  std::unique_lock<std::mutex> lock(mu_);
  done_cv_.wait(lock, [&] {
    return active_ == 0 && remaining_.load(std::memory_order_acquire) == 0;
  });
}

Result<std::shared_ptr<ThreadPool>> SharedThreadPool(int threads) {
  if (threads <= 1 || !kHaveThreads) return std::shared_ptr<ThreadPool>();
  static std::mutex mu;
  // Never freed: workers are not joined during static destruction either.
  static std::shared_ptr<ThreadPool>* shared = new std::shared_ptr<ThreadPool>();
  std::lock_guard<std::mutex> lock(mu);
  if (*shared == nullptr) {
    FLAWLENS_ASSIGN_OR_RETURN(std::unique_ptr<ThreadPool> pool, ThreadPool::Create(threads));
    *shared = std::shared_ptr<ThreadPool>(std::move(pool));
    return *shared;
  }
  // A pool that could not grow all the way still runs every task (the
  // caller takes what no worker does).
  Status grown = (*shared)->Grow(threads);
  if (!grown.ok() && (*shared)->threads() < 2) return grown;
  return *shared;
}

}  // namespace flawlens
