// A fixed pool of worker threads for fork-join loops: Run(n, fn, ctx) calls
// fn(ctx, 0..n-1) once each, spread over the calling thread and the workers,
// and returns when all calls have returned. Tasks are claimed one at a time
// (an atomic counter), so a worker that is late or descheduled never holds
// the others up: the caller takes whatever is left.
//
// Workers are created once (Create) and live until the pool is destroyed;
// Run() neither allocates nor creates threads. Between jobs a worker spins
// briefly (the next op of a network follows within microseconds), then
// sleeps on a condition variable.
//
// Builds without threads (Emscripten without -pthread) have no workers:
// ThreadsAvailable() is false and Run() runs every task on the caller.
#pragma once

#include <pthread.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "core/status.h"

namespace flawlens {

class ThreadPool {
 public:
  using TaskFn = void (*)(void* context, int task);

  // `threads` counts the caller: threads - 1 workers are started.
  // kInvalidArgument outside [1, kMaxThreads]; kUnsupported when the build
  // has no threads and threads > 1; kInternal when the OS refuses a thread.
  static Result<std::unique_ptr<ThreadPool>> Create(int threads);
  ~ThreadPool();

  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int threads() const;

  // Starts more workers so that threads() >= `threads` (waits for a running
  // job to finish first). Workers are never stopped before the pool is
  // destroyed, so a pool shared by executors only ever grows.
  Status Grow(int threads);

  // Calls fn(context, t) for every t in [0, tasks) and returns when all are
  // done; at most tasks - 1 workers help. One job at a time: a second caller while a job runs (another
  // executor on another thread) runs its tasks on itself instead of waiting.
  void Run(int tasks, TaskFn fn, void* context);

  static constexpr int kMaxThreads = 64;
  static bool ThreadsAvailable();

 private:
  ThreadPool() = default;
  struct WorkerArg {
    ThreadPool* pool;
    int index;  // 0-based; worker i helps only jobs of more than i + 1 tasks
  };
  static void* WorkerMain(void* arg);
  void WorkerLoop(int index);
  // Claims and runs tasks of the current job until none is left.
  void RunTasks(TaskFn fn, void* context, int tasks);

  std::mutex mu_;
  std::condition_variable wake_cv_;  // workers: a new job or stop
  std::condition_variable done_cv_;  // caller: the last worker left the job
  // The current job; written by Run() under mu_ while no worker is active.
  TaskFn fn_ = nullptr;
  void* context_ = nullptr;
  int tasks_ = 0;
  uint64_t generation_ = 0;  // guarded by mu_
  int active_ = 0;           // workers inside the job, guarded by mu_
  bool stop_ = false;        // guarded by mu_
  // Mirrors of the above for spinning without the lock.
  std::atomic<uint64_t> published_generation_{0};
  std::atomic<int> next_task_{0};
  std::atomic<int> remaining_{0};
  std::atomic<int> active_atomic_{0};

  std::mutex run_mu_;  // one job at a time; held while growing
  std::vector<pthread_t> workers_;      // guarded by run_mu_ once running
  std::vector<WorkerArg> worker_args_;  // reserved up front: addresses stay put
  std::atomic<int> num_workers_{0};
};

// One pool per process, shared by every executor: created on first use with
// `threads` threads and grown in place when an executor asks for more; never
// destroyed (in the threaded wasm module a worker that has not started yet
// cannot be joined from a blocked main thread). nullptr when threads <= 1 or
// the build has no threads. Threads are created here, never per frame.
Result<std::shared_ptr<ThreadPool>> SharedThreadPool(int threads);

}  // namespace flawlens
