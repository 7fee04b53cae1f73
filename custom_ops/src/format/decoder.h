// Decoding a blob's matrix view chunk by chunk, never as a whole dense matrix.
//
// Every codec implements MatrixDecoder: CreateDecoder() checks the codec's params and section
// sizes (cheap), and DecodeChunk() yields the non-zeros of one independently decodable chunk of
// rows, validating everything it reads (indices, positions, padding). A blob whose chunks all
// decode and whose non-zero count matches its header is valid; lsc_ort's Python decoder
// accepts exactly the same blobs.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "common/checked.h"
#include "common/status.h"
#include "format/blob.h"

namespace lsc {

// One non-zero of the matrix view: its position and raw value bit pattern (zero-extended).
struct Entry {
  int64_t row;
  int64_t col;
  uint32_t bits;
};

class MatrixDecoder {
 public:
  explicit MatrixDecoder(const Blob& blob) : blob_(blob) {}
  virtual ~MatrixDecoder() = default;
  MatrixDecoder(const MatrixDecoder&) = delete;
  MatrixDecoder& operator=(const MatrixDecoder&) = delete;

  // Number of chunks; chunks may be decoded concurrently.
  virtual size_t num_chunks() const = 0;
  // Appends the non-zeros (non-zero bit patterns) of chunk `chunk` to `out`.
  virtual Status DecodeChunk(size_t chunk, std::vector<Entry>* out) const = 0;

  const Blob& blob() const { return blob_; }

 protected:
  // Raw bit pattern of value `index` of a values section.
  uint32_t ValueBits(const Section& values, uint64_t index) const {
    switch (blob_.dtype) {
      case ValueType::kFloat32: {
        uint32_t v;
        std::memcpy(&v, values.data + 4 * index, 4);
        return v;
      }
      case ValueType::kFloat16: {
        uint16_t v;
        std::memcpy(&v, values.data + 2 * index, 2);
        return v;
      }
      case ValueType::kInt8:
        return values.data[index];
    }
    return 0;
  }

  const Blob& blob_;
};

// Checks the codec-level layout of `blob` and creates its decoder. `blob` must outlive it.
Status CreateDecoder(const Blob& blob, std::unique_ptr<MatrixDecoder>* decoder);

// Decodes every chunk (serially) and checks the non-zero count; calls `sink(entries)` per chunk
// when given.
template <typename Sink>
Status DecodeAll(const MatrixDecoder& decoder, Sink&& sink) {
  std::vector<Entry> entries;
  uint64_t nnz = 0;
  for (size_t c = 0; c < decoder.num_chunks(); ++c) {
    entries.clear();
    LSC_RETURN_IF_ERROR(decoder.DecodeChunk(c, &entries));
    nnz += entries.size();
    if (nnz > decoder.blob().nnz) {  // fail before the sink sees more than the header declares
      return Fail(CodecName(decoder.blob().codec), ": decoded more than the ", decoder.blob().nnz,
                  " non-zeros the header declares");
    }
    sink(entries);
  }
  if (nnz != decoder.blob().nnz) {
    return Fail(CodecName(decoder.blob().codec), ": decoded ", nnz, " non-zeros, header declares ",
                decoder.blob().nnz);
  }
  return Status();
}

// ---- helpers shared by the codec decoders -------------------------------------------------

// Number of elements of `section` for an element size, failing if it is not a whole number.
Status SectionCount(const Blob& blob, size_t index, size_t element_size, const char* name, uint64_t* count);
Status ExpectCount(const Blob& blob, size_t index, size_t element_size, uint64_t expected, const char* name);
// Checks the number of params and sections.
Status ExpectLayout(const Blob& blob, size_t nparams, size_t nsections);
// Param `index`, checked to lie in [low, high].
Status Param(const Blob& blob, size_t index, int64_t low, int64_t high, const char* name, int64_t* value);
// Validates a CSR-style (indptr, indices) pair of int32 arrays with `rows` rows and indices < limit.
Status CheckIndptr(const Blob& blob, const Section& indptr, uint64_t rows, uint64_t nindices, const char* what);

inline int32_t LoadI32(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

inline uint64_t LoadU64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

// Reads `width`-bit codes (1..16) packed LSB first.
class BitReader {
 public:
  BitReader(const uint8_t* data, uint64_t size) : data_(data), size_(size) {}
  uint32_t Read(uint64_t bit, int width) const {
    const uint64_t byte = bit >> 3;
    uint32_t window = 0;
    const uint64_t avail = size_ - byte;  // callers guarantee the code lies inside the data
    std::memcpy(&window, data_ + byte, avail >= 4 ? 4 : avail);
    return (window >> (bit & 7)) & ((1u << width) - 1);
  }

 private:
  const uint8_t* data_;
  uint64_t size_;
};

// Whether bits [count, 8 * size) of a packed bit stream are all zero.
bool PaddingBitsZero(const Section& section, uint64_t count);
// Number of set bits in [begin, end) of a packed bit mask.
uint64_t PopCount(const uint8_t* bits, uint64_t begin, uint64_t end);

// Rows of the matrix view per chunk for codecs that chunk by rows: about 64 Ki elements. A matrix
// without columns is one chunk however many rows it declares (rows are below 2^62, so
// `rows + RowsPerChunk(cols) - 1` does not overflow).
inline int64_t RowsPerChunk(int64_t cols) {
  if (cols <= 0) return kMaxExtent;
  const int64_t per = (int64_t{1} << 16) / cols;
  return per > 0 ? per : 1;
}

}  // namespace lsc
