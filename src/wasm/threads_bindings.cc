// Embind additions of the threaded module only (flawlens-core-mt): whether
// threads can run here (SharedArrayBuffer and the worker pool exist). How
// many a detector or teacher uses is passed when it is made (Detector.load's
// second argument, the teacher's "threads" option), never set process-wide.
//
//   const m = await createFlawlens();   // flawlens-core-mt.mjs
//   m.threadsAvailable();               // true in a cross-origin isolated page
#include <emscripten/bind.h>

#include "core/thread_pool.h"

namespace {

bool ThreadsAvailable() { return flawlens::ThreadPool::ThreadsAvailable(); }

}  // namespace

EMSCRIPTEN_BINDINGS(flawlens_threads) {
  emscripten::function("threadsAvailable", &ThreadsAvailable);
}
