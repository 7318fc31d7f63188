// The backends this build has, and the executor made with the usual chain of
// them. nn/ defines the Backend contract and the Executor; the backends live
// here, above nn/, so that nn/ depends on no kernel.
//
//   auto exec = CreateExecutor(graph, {.backend = BackendKind::kAuto});
#pragma once

#include <memory>
#include <vector>

#include "core/status.h"
#include "nn/backend.h"
#include "nn/executor.h"

namespace flawlens {

std::unique_ptr<Backend> MakeRefBackend();
std::unique_ptr<Backend> MakeSimdBackend();
// nullptr when the build has no XNNPACK (wasm). threads <= 1: no threadpool.
std::unique_ptr<Backend> MakeXnnpackBackend(int threads);
bool HaveXnnpack();

// The backends to try for each node, most preferred first: kAuto is XNNPACK
// (when built in), then our SIMD kernels, then the reference kernels, which
// implement every op. `threads` is XNNPACK's threadpool size.
Result<std::vector<std::unique_ptr<Backend>>> MakeBackendChain(BackendKind kind, int threads);

// MakeBackendChain(options.backend, options.threads), then Executor::Create.
Result<std::unique_ptr<Executor>> CreateExecutor(const Graph& graph,
                                                 const ExecutorOptions& options = {});

}  // namespace flawlens
