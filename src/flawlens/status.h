// Status and Result<T>: the only error mechanism of src/ (public API; internal
// code includes it as core/status.h).
//
// src/ is exception-free (Emscripten disables exception catching by default and
// a throw would abort the page). Every fallible function returns a
// [[nodiscard]] Status or Result<T> whose message names the thing that is
// wrong ("conv 'enc2': input has 12 channels, weights expect 16").
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace flawlens {

// Error classes. Tests assert on the code; users read the message.
enum class ErrorCode {
  kOk = 0,
  kInvalidArgument,   // bad call from the user of the API (null buffer, size 0)
  kTruncated,         // a file ends before a structure it announces
  kBadMagic,          // not a flawlens model / not a safetensors file
  kBadVersion,        // format version this build does not read
  kBadHeader,         // header JSON malformed or missing fields
  kBadOffset,         // a tensor's data_offsets out of range / overlapping
  kBadShape,          // negative, zero, oversized or mismatched tensor shape
  kBadDtype,          // unsupported tensor dtype
  kNonFinite,         // NaN / Inf in weights or inputs
  kBadGraph,          // dangling input, cycle, unknown op, bad attribute
  kLimitExceeded,     // a documented limit (see model/FORMAT.md) is exceeded
  kBadImage,          // image bytes cannot be decoded
  kUnsupported,       // valid, but not supported by this backend/build
  kInternal,          // a bug in flawlens
};

const char* ErrorCodeName(ErrorCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status Ok() { return Status(); }

  bool ok() const { return code_ == ErrorCode::kOk; }
  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "bad_shape: tensor 'enc1.weight': ..."
  std::string ToString() const;

 private:
  ErrorCode code_ = ErrorCode::kOk;
  std::string message_;
};

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    assert(!std::get<Status>(v_).ok() && "Result constructed from an OK status");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() { return value(); }

 private:
  std::variant<Status, T> v_;
};

}  // namespace flawlens
