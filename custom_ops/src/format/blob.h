// The lsc-ort blob container, format version 1 (spec: lsc_ort/format.py, docs/blob-format.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/status.h"

namespace lsc {

enum class ValueType : uint8_t { kFloat32 = 1, kFloat16 = 2, kInt8 = 3 };

enum class CodecId : uint8_t { kDense = 0, kCsr = 1, kRelidx = 2, kBitmap = 3, kBsr = 4, kLsc = 5, kF2f = 6, kMswu = 7 };

struct Section {
  const uint8_t* data = nullptr;
  uint64_t size = 0;
};

// A parsed, container-validated blob. Views point into the caller's buffer, which must outlive it.
struct Blob {
  CodecId codec = CodecId::kDense;
  ValueType dtype = ValueType::kFloat32;
  std::vector<int64_t> shape;
  std::vector<int64_t> params;
  std::vector<Section> sections;
  uint64_t nnz = 0;
  float scale = 1.0f;
  uint64_t total_size = 0;

  // Element count and the 2-D matrix view [shape[0], prod(shape[1:])] ([1, n] for 1-D, [1, 1]
  // for 0-D), set by ParseBlob. All three are below 2^62: ParseBlob rejects a shape whose
  // non-zero dims multiply to 2^62 or more, even when another dim is 0.
  int64_t numel() const { return numel_; }
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  size_t itemsize() const { return dtype == ValueType::kFloat32 ? 4 : dtype == ValueType::kFloat16 ? 2 : 1; }

  int64_t numel_ = 1, rows_ = 1, cols_ = 1;
};

const char* CodecName(CodecId codec);

// Parses and validates the container: magic, version, size, CRC, header fields, section table.
Status ParseBlob(const uint8_t* data, size_t size, Blob* blob);

}  // namespace lsc
