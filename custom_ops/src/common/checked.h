// Checked arithmetic for every size, count and offset derived from a blob or an attribute.
//
// A model file is untrusted: a blob header or a Conv attribute can hold any 64-bit value, and an
// unchecked product wraps to a plausible small number that later indexes far outside a buffer.
// All such arithmetic goes through these helpers. Values are non-negative extents that stay
// below kMaxExtent (2^62), so any sum or product of two checked extents fits in int64 and
// `a + b` of two of them never overflows.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <vector>

#include "common/status.h"

namespace lsc {

// Every checked extent (element count, byte count, offset, dimension) is below this.
constexpr int64_t kMaxExtent = int64_t{1} << 62;

// Whether a (non-negative) value is a valid extent.
constexpr bool IsExtent(int64_t value) { return value >= 0 && value < kMaxExtent; }

// a * b for extents; false when an operand is not an extent or the product reaches kMaxExtent.
inline bool MulExtent(int64_t a, int64_t b, int64_t* out) {
  int64_t product = 0;
  if (!IsExtent(a) || !IsExtent(b) || __builtin_mul_overflow(a, b, &product) || product >= kMaxExtent) return false;
  *out = product;
  return true;
}

// a + b for extents; false when an operand is not an extent or the sum reaches kMaxExtent.
inline bool AddExtent(int64_t a, int64_t b, int64_t* out) {
  if (!IsExtent(a) || !IsExtent(b) || a + b >= kMaxExtent) return false;
  *out = a + b;
  return true;
}

// The Status-returning forms name `what` in the error: "<what> is too large (a * b)".
inline Status CheckedMul(int64_t a, int64_t b, int64_t* out, const char* what) {
  if (!MulExtent(a, b, out)) return Fail(what, " is too large: ", a, " * ", b, " is not below 2^62");
  return Status();
}

inline Status CheckedAdd(int64_t a, int64_t b, int64_t* out, const char* what) {
  if (!AddExtent(a, b, out)) return Fail(what, " is too large: ", a, " + ", b, " is not below 2^62");
  return Status();
}

// The product of `factors` (each an extent), e.g. a shape's element count or a buffer's size.
template <typename Range>
Status CheckedProduct(const Range& factors, int64_t* out, const char* what) {
  int64_t product = 1;
  for (int64_t factor : factors) {
    if (!IsExtent(factor)) return Fail(what, ": factor ", factor, " is not in [0, 2^62)");
    if (!MulExtent(product, factor, &product)) return Fail(what, " is too large: the product is not below 2^62");
  }
  *out = product;
  return Status();
}

inline Status CheckedProduct(std::initializer_list<int64_t> factors, int64_t* out, const char* what) {
  return CheckedProduct<std::initializer_list<int64_t>>(factors, out, what);
}

}  // namespace lsc
