// Status and Result<T>: errors as values.
//
// A Status carries a code chosen by what the caller should do about it, and a
// message for people. Result<T> holds either a T or a non-OK Status. Both are
// plain values: copyable, movable, and safe to use from any thread as long as a
// single object is not written concurrently.
//
// Codes map to HTTP statuses and JSON-RPC errors in one place (http_status_for).
#pragma once

#include <cassert>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace memgate {

enum class Code {
  kOk = 0,
  kInvalidArgument,    // the input is wrong; retrying the same call will not help
  kNotFound,           // the thing asked for does not exist
  kAlreadyExists,      // it exists and the call wanted it not to
  kFailedPrecondition, // the system is not in a state where the call makes sense
  kUnavailable,        // try again later (Redis down, module still loading)
  kAborted,            // lost a race (the lock was taken over); redo from the start
  kResourceExhausted,  // a memory gate or a limit said no
  kDeadlineExceeded,   // a timeout ran out
  kCancelled,          // the caller gave up
  kInternal,           // a bug or a broken invariant
};

// Returns the lower-case name of a code ("unavailable"), used in logs and JSON.
std::string_view code_name(Code code);

// Returns the HTTP status a code becomes at the edge (400, 404, 503, ...).
int http_status_for(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

  // "unavailable: redis is not connected"
  std::string to_string() const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
inline Status NotFound(std::string m) { return {Code::kNotFound, std::move(m)}; }
inline Status Unavailable(std::string m) { return {Code::kUnavailable, std::move(m)}; }
inline Status Aborted(std::string m) { return {Code::kAborted, std::move(m)}; }
inline Status ResourceExhausted(std::string m) { return {Code::kResourceExhausted, std::move(m)}; }
inline Status DeadlineExceeded(std::string m) { return {Code::kDeadlineExceeded, std::move(m)}; }
inline Status FailedPrecondition(std::string m) { return {Code::kFailedPrecondition, std::move(m)}; }
inline Status Cancelled(std::string m) { return {Code::kCancelled, std::move(m)}; }
inline Status Internal(std::string m) { return {Code::kInternal, std::move(m)}; }

// Either a value or an error. Construct from a T or from a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit on purpose
  Result(Status status) : v_(std::move(status)) {  // NOLINT
    assert(!std::get<Status>(v_).ok() && "Result built from an OK status");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return ok(); }

  // The error; an OK status when the result holds a value.
  Status status() const { return ok() ? Status::Ok() : std::get<Status>(v_); }

  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  T value_or(T fallback) const { return ok() ? std::get<T>(v_) : std::move(fallback); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace memgate
