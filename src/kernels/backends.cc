#include "kernels/backends.h"

namespace flawlens {

Result<std::vector<std::unique_ptr<Backend>>> MakeBackendChain(BackendKind kind, int threads) {
  std::vector<BackendKind> chain;
  switch (kind) {
    case BackendKind::kAuto:
      if (HaveXnnpack()) chain.push_back(BackendKind::kXnnpack);
      chain.push_back(BackendKind::kSimd);
      chain.push_back(BackendKind::kReference);
      break;
    case BackendKind::kXnnpack:
      if (!HaveXnnpack())
        return MakeError(ErrorCode::kUnsupported, "executor: this build has no XNNPACK backend");
      chain = {BackendKind::kXnnpack, BackendKind::kSimd, BackendKind::kReference};
      break;
    case BackendKind::kSimd:
      chain = {BackendKind::kSimd, BackendKind::kReference};
      break;
    case BackendKind::kReference:
      chain = {BackendKind::kReference};
      break;
    default:
      return MakeError(ErrorCode::kInvalidArgument, "executor: unknown backend kind %d",
                       static_cast<int>(kind));
  }
  std::vector<std::unique_ptr<Backend>> backends;
  for (BackendKind k : chain) {
    std::unique_ptr<Backend> backend;
    switch (k) {
      case BackendKind::kXnnpack: backend = MakeXnnpackBackend(threads); break;
      case BackendKind::kSimd: backend = MakeSimdBackend(); break;
      case BackendKind::kReference: backend = MakeRefBackend(); break;
      default: break;
    }
    if (backend == nullptr)
      return MakeError(ErrorCode::kUnsupported, "executor: backend '%s' is not available",
                       BackendKindName(k));
    backends.push_back(std::move(backend));
  }
  return backends;
}

Result<std::unique_ptr<Executor>> CreateExecutor(const Graph& graph,
                                                 const ExecutorOptions& options) {
  FLAWLENS_ASSIGN_OR_RETURN(auto backends, MakeBackendChain(options.backend, options.threads));
  return Executor::Create(graph, std::move(backends), options);
}

}  // namespace flawlens
