// Errors as values: Result<T> holds either a T or an Error. No exceptions cross layer,
// thread or vdev boundaries (design guide §3.8). QVM_TRY propagates an error to the caller.
#pragma once

#include <string>
#include <type_traits>
#include <utility>
#include <variant>

namespace qvm {

// What went wrong, as text for the user, plus an errno value when a system call failed.
struct Error {
  std::string message;
  int sys_errno = 0;

  static Error from_errno(std::string what, int err);  // "what: strerror(err)"
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const& { return std::get<1>(v_); }
  Error&& error() && { return std::get<1>(std::move(v_)); }

 private:
  std::variant<T, Error> v_;
};

// Result<void>: success carries nothing.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : err_(std::move(error)), failed_(true) {}  // NOLINT

  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  void value() const {}
  const Error& error() const& { return err_; }
  Error&& error() && { return std::move(err_); }

 private:
  Error err_;
  bool failed_ = false;
};

using Status = Result<void>;

inline Error make_error(std::string message) {
  return Error{std::move(message), 0};
}

}  // namespace qvm

// QVM_TRY(expr): evaluate a Result; on error return it from the enclosing function, otherwise
// yield the value. Uses a GNU statement expression (gcc and clang).
#define QVM_TRY(expr)                            \
  ({                                             \
    auto qvm_try_result_ = (expr);               \
    if (!qvm_try_result_.ok()) {                 \
      return std::move(qvm_try_result_).error(); \
    }                                            \
    std::move(qvm_try_result_).value();          \
  })
