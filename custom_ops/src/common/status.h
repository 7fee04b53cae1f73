// Error handling for lsc-ort's native code: functions return Status; nothing throws across the
// onnxruntime C boundary.
#pragma once

#include <cstdint>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace lsc {

class Status {
 public:
  Status() = default;
  static Status Error(std::string message) { return Status(std::move(message)); }
  bool ok() const { return !failed_; }
  const std::string& message() const { return message_; }

 private:
  explicit Status(std::string message) : failed_(true), message_(std::move(message)) {}
  bool failed_ = false;
  std::string message_;
};

template <typename... Args>
std::string StrCat(Args&&... args) {
  std::ostringstream out;
  (out << ... << std::forward<Args>(args));
  return out.str();
}

template <typename... Args>
Status Fail(Args&&... args) {
  return Status::Error(StrCat(std::forward<Args>(args)...));
}

// "[2, 3]" style rendering of a shape for messages.
inline std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

}  // namespace lsc

#define LSC_RETURN_IF_ERROR(expr)        \
  do {                                   \
    ::lsc::Status _lsc_status = (expr);  \
    if (!_lsc_status.ok()) return _lsc_status; \
  } while (0)
