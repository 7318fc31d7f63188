#include "core/status.h"

#include <cstdarg>
#include <cstdio>

namespace flawlens {

const char* ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk: return "ok";
    case ErrorCode::kInvalidArgument: return "invalid_argument";
    case ErrorCode::kTruncated: return "truncated";
    case ErrorCode::kBadMagic: return "bad_magic";
    case ErrorCode::kBadVersion: return "bad_version";
    case ErrorCode::kBadHeader: return "bad_header";
    case ErrorCode::kBadOffset: return "bad_offset";
    case ErrorCode::kBadShape: return "bad_shape";
    case ErrorCode::kBadDtype: return "bad_dtype";
    case ErrorCode::kNonFinite: return "non_finite";
    case ErrorCode::kBadGraph: return "bad_graph";
    case ErrorCode::kLimitExceeded: return "limit_exceeded";
    case ErrorCode::kBadImage: return "bad_image";
    case ErrorCode::kUnsupported: return "unsupported";
    case ErrorCode::kInternal: return "internal";
  }
  return "unknown";
}

std::string Status::ToString() const {
  if (ok()) return "ok";
  return std::string(ErrorCodeName(code_)) + ": " + message_;
}

Status MakeError(ErrorCode code, const char* fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return Status(code, buf);
}

}  // namespace flawlens
