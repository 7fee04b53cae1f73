// The tiled layout: column lists split into K-blocks, each non-zero as an activation row offset
// (16 bits wide where every offset fits, else 32) and a value, for the batch and convolution
// kernels (SpmmTiledFn, views.h).
//
// Rows of a K-block are chosen so that the activation rows one block reads fit in L1 together;
// the kernel sweeps all output columns of a block before the next block, keeping partial sums in
// the output tile. Offsets are element offsets from the tile's base pointer: k * lanes for a
// transposed MatMul tile, the offset of tap (c, i, j) in the padded phase planes of a
// convolution (see ops/lsc_conv.cc).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "common/status.h"
#include "kernels/layouts.h"
#include "kernels/views.h"

namespace lsc {

struct TiledLayout {
  int64_t N = 0, blocks = 0, chunk = 1;
  std::vector<uint64_t> chunk_work;  // non-zeros before each chunk, then the total
  std::vector<uint64_t> start;       // blocks * N + 1
  std::vector<int32_t> column;       // blocks * N
  // The non-zeros, block-major, then in processing order, then by row: values and element
  // offsets, in offset16 when every offset is below 2^16 (offset32 then stays empty), else in
  // offset32.
  std::vector<float> value;
  std::vector<uint16_t> offset16;
  std::vector<int32_t> offset32;
  std::vector<int64_t> block_begin;  // blocks + 1: the rows of each K-block, 0, ..., K
  TiledView view() const { return blocks_view(0, blocks, false, false); }
  // The K-blocks [b_begin, b_end) (see TiledView for the flags).
  TiledView blocks_view(int64_t b_begin, int64_t b_end, bool accumulate, bool partial) const {
    return TiledView{N,
                     b_end - b_begin,
                     chunk,
                     start.data() + b_begin * N,
                     column.data() + b_begin * N,
                     value.data(),
                     offset16.empty() ? nullptr : offset16.data(),
                     offset32.empty() ? nullptr : offset32.data(),
                     accumulate,
                     partial};
  }
  uint64_t bytes() const {
    return start.size() * sizeof(uint64_t) + column.size() * 4 + value.size() * 4 + offset16.size() * 2 +
           offset32.size() * 4;
  }
  // Position boundaries of up to `tasks` runs of whole chunks with about equal non-zeros.
  std::vector<int64_t> TaskBounds(int64_t tasks) const;
};

// Builds the tiled layout of `columns` whose row k reads activations at element offset
// offsets[k] (each in [0, 2^29)), with K-blocks [block_begin[b], block_begin[b + 1]) (ascending,
// from 0 to K) and chunks of `chunk` columns. Fails when an offset does not fit or the layout
// would not fit in memory.
Status BuildTiledLayout(const ColumnLists& columns, const int64_t* offsets, const std::vector<int64_t>& block_begin,
                        int64_t chunk, TiledLayout* out);


// Columns per chunk so that a chunk's output tile of `lanes` floats per column takes about 16 KiB.
inline int64_t TiledChunk(int64_t lanes) { return std::max<int64_t>(1, 16384 / (4 * std::max<int64_t>(1, lanes))); }

// K-blocks of whole units of `unit` rows (e.g. the kH * kW taps of one input channel), about
// `rows_per_block` rows each: the boundaries 0, ..., K.
std::vector<int64_t> UnitBlocks(int64_t K, int64_t unit, int64_t rows_per_block);

// Splits columns [0, N) into `parts` contiguous ranges of about equal work (non-zeros plus a
// per-column cost), so threads finish together: the boundaries 0, ..., N (parts + 1 values,
// ranges may be empty).
std::vector<int64_t> BalancedColumns(const ColumnLists& columns, int64_t parts);

}  // namespace lsc
