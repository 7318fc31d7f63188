#include "nn/backend.h"

namespace flawlens {

const char* BackendKindName(BackendKind kind) {
  switch (kind) {
    case BackendKind::kAuto: return "auto";
    case BackendKind::kReference: return "ref";
    case BackendKind::kSimd: return "simd";
    case BackendKind::kXnnpack: return "xnnpack";
  }
  return "unknown";
}

}  // namespace flawlens
