// mswu: micro-structured weight unification (params: block_rows, block_cols, free_coding;
// sections: block_mask, unified_mask, magnitudes, signs, free_mask, free_values).
// Spec: lsc_ort/codecs/mswu.py and docs/blob-format.md.
//
// Besides the generic MatrixDecoder interface (every non-zero as an Entry), the decoder hands
// out unified blocks whole, so that kernels can compute each with one multiply.
#pragma once

#include <cstdint>
#include <vector>

#include "format/decoder.h"

namespace lsc {

struct MswuGeometry {
  int64_t rows = 0, cols = 0;  // the matrix view
  int64_t br = 1, bc = 1;      // block shape
  int64_t nbr = 0, nbc = 0;    // block grid
  uint64_t nblocks = 0, bsize = 1;
  int free_coding = 0;
  uint64_t blocks_per_chunk = 1;
};

// A unified block: every element inside the matrix is +-magnitude.
struct UnifiedBlock {
  uint64_t block;       // row-major index in the block grid
  uint32_t magnitude;   // bit pattern, top bit clear
  uint64_t sign_bit;    // its bsize sign bits are [sign_bit, sign_bit + bsize) of the signs section
};

class MswuDecoder : public MatrixDecoder {
 public:
  // Created by CreateMswuDecoder (format/codecs/codecs.h), which validates the layout.
  MswuDecoder(const Blob& blob, const MswuGeometry& geometry, std::vector<uint64_t> chunk_starts);

  size_t num_chunks() const override;
  Status DecodeChunk(size_t chunk, std::vector<Entry>* out) const override;

  // The blocks of chunk `chunk`: unified blocks whole, the non-zeros of free blocks as entries.
  // Validates exactly what DecodeChunk validates.
  Status DecodeChunkBlocks(size_t chunk, std::vector<UnifiedBlock>* unified, std::vector<Entry>* free) const;

  const MswuGeometry& geometry() const { return g_; }
  // Sign bit `bit` of the signs section (1 = negative); bit < 8 * section size.
  bool SignBit(uint64_t bit) const { return (blob_.sections[3].data[bit >> 3] >> (bit & 7)) & 1; }
  // Element bit pattern of a unified element of `magnitude` with sign `negative`.
  uint32_t Compose(uint32_t magnitude, bool negative) const;
  // Rows and columns of block `block` that lie inside the matrix.
  int64_t ValidRows(uint64_t block) const;
  int64_t ValidCols(uint64_t block) const;

 private:
  MswuGeometry g_;
  // Per chunk (and one past the last): kept, unified and free blocks before it, and the index of
  // its first free value.
  std::vector<uint64_t> starts_;  // [num_chunks + 1][4]
};

}  // namespace lsc
