// Status and Result<T> are part of the public API (flawlens/status.h). The
// helpers that make and propagate them (MakeError, FLAWLENS_RETURN_IF_ERROR,
// FLAWLENS_ASSIGN_OR_RETURN) are for the implementation only and live here, so
// the public headers export no macros. src/ includes this header rather than
// flawlens/status.h so internal code has one include style ("core/...").
#pragma once

#include <utility>

#include "flawlens/status.h"

namespace flawlens {

#define FLAWLENS_CONCAT_INNER(a, b) a##b
#define FLAWLENS_CONCAT(a, b) FLAWLENS_CONCAT_INNER(a, b)

// Propagate a non-OK Status.
#define FLAWLENS_RETURN_IF_ERROR(expr)          \
  do {                                          \
    ::flawlens::Status _st = (expr);            \
    if (!_st.ok()) return _st;                  \
  } while (0)

// lhs = value of a Result, or return its Status.
#define FLAWLENS_ASSIGN_OR_RETURN(lhs, expr)                                  \
  auto FLAWLENS_CONCAT(_res_, __LINE__) = (expr);                             \
  if (!FLAWLENS_CONCAT(_res_, __LINE__).ok())                                 \
    return FLAWLENS_CONCAT(_res_, __LINE__).status();                         \
  lhs = std::move(FLAWLENS_CONCAT(_res_, __LINE__)).value()

Status MakeError(ErrorCode code, const char* fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

}  // namespace flawlens
