// Embind additions of the threaded module only (flawlens-core-mt): how many
// threads the executors of models loaded afterwards split their ops over.
//
//   const m = await createFlawlens();   // flawlens-core-mt.mjs
//   m.setThreads(2);                    // then Detector.load(...)
//   m.threads();                        // 2
#include <algorithm>

#include <emscripten/bind.h>

#include "core/thread_pool.h"
#include "nn/executor.h"

namespace {

// Clamped to [1, 64]; returns the count now in force. Takes effect at the next
// Detector.load(): an executor plans its bands once.
int SetThreads(int threads) {
  flawlens::SetThreadsOverride(std::max(1, threads));
  return flawlens::ThreadsOverride();
}

int Threads() { return std::max(1, flawlens::ThreadsOverride()); }

bool ThreadsAvailable() { return flawlens::ThreadPool::ThreadsAvailable(); }

}  // namespace

EMSCRIPTEN_BINDINGS(flawlens_threads) {
  emscripten::function("setThreads", &SetThreads);
  emscripten::function("threads", &Threads);
  emscripten::function("threadsAvailable", &ThreadsAvailable);
}
