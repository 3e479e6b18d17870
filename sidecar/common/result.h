#pragma once

// Result<T> is the error channel between modules: a value or an Error with a stable
// machine-readable code (the same words the HTTP layer puts in problem+json) and a
// human-readable message. Exceptions thrown by libraries are caught at the module edge
// and turned into an Error; they never cross a module boundary.

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace sidecar {

struct Error {
  std::string code;     // stable, snake_case, e.g. "storage_unavailable"
  std::string message;  // for humans; never holds a code, key or token
  std::string field;    // the input it is about ("phone", "code.length"), when there is one
  std::int64_t retry_after_ms = 0;  // for refusals by a limit: when trying again can succeed

  // Returns a copy whose message is prefixed with `context` ("opening database: ...").
  [[nodiscard]] Error WithContext(const std::string& context) const {
    return Error{code, context + ": " + message, field, retry_after_ms};
  }
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::move(value)) {}      // NOLINT: implicit by design
  Result(Error error) : state_(std::move(error)) {}  // NOLINT: implicit by design

  bool ok() const { return std::holds_alternative<T>(state_); }
  explicit operator bool() const { return ok(); }

  // REQUIRES: ok().
  const T& value() const& { return std::get<T>(state_); }
  T& value() & { return std::get<T>(state_); }
  T&& value() && { return std::get<T>(std::move(state_)); }
  const T& operator*() const& { return value(); }
  T& operator*() & { return value(); }
  const T* operator->() const { return &value(); }
  T* operator->() { return &value(); }

  // REQUIRES: !ok().
  const Error& error() const { return std::get<Error>(state_); }

 private:
  std::variant<T, Error> state_;
};

// Status is a Result that carries no value.
struct Ok {};
using Status = Result<Ok>;

inline Status OkStatus() {
  return Ok{};
}

inline Error MakeError(std::string code, std::string message, std::string field = "") {
  return Error{std::move(code), std::move(message), std::move(field), 0};
}

}  // namespace sidecar
