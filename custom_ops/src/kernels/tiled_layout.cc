#include "kernels/tiled_layout.h"

#include <algorithm>

#include "common/memory.h"

namespace lsc {

Status BuildTiledLayout(const ColumnLists& columns, const int64_t* offsets, const std::vector<int64_t>& block_begin,
                        TiledLayout* out) {
  const int64_t N = columns.N, blocks = static_cast<int64_t>(block_begin.size()) - 1;
  if (blocks < 1 || block_begin.front() != 0 || block_begin.back() != columns.K) {
    return Fail("internal error: K-blocks do not cover the ", columns.K, " rows");
  }
  LSC_RETURN_IF_ERROR(CheckAllocation(8 * (static_cast<uint64_t>(blocks) * static_cast<uint64_t>(N) + 1) +
                                          sizeof(TiledEntry) * columns.nnz(),
                                      "the tiled layout of this weight"));
  for (int64_t k = 0; k < columns.K; ++k) {
    if (offsets[k] < 0 || offsets[k] > 0x7FFFFFFFll) {
      return Fail("activation offset ", offsets[k], " of weight row ", k, " does not fit 31 bits");
    }
  }
  TiledLayout layout;
  layout.N = N;
  layout.blocks = blocks;
  layout.start.assign(static_cast<size_t>(blocks * N) + 1, 0);
  // Pass 1: entries per (block, column).
  for (int64_t n = 0; n < N; ++n) {
    int64_t b = 0;
    for (uint64_t i = columns.ptr[n]; i < columns.ptr[n + 1]; ++i) {
      while (columns.row[i] >= block_begin[b + 1]) ++b;
      ++layout.start[static_cast<size_t>(b * N + n) + 1];
    }
  }
  for (size_t i = 1; i < layout.start.size(); ++i) layout.start[i] += layout.start[i - 1];
  layout.entry.resize(columns.nnz());
  // Pass 2: fill, each (block, column) in row order.
  std::vector<uint64_t> cursor(layout.start.begin(), layout.start.end() - 1);
  for (int64_t n = 0; n < N; ++n) {
    int64_t b = 0;
    for (uint64_t i = columns.ptr[n]; i < columns.ptr[n + 1]; ++i) {
      const uint32_t k = columns.row[i];
      while (k >= block_begin[b + 1]) ++b;
      layout.entry[cursor[static_cast<size_t>(b * N + n)]++] =
          TiledEntry{static_cast<int32_t>(offsets[k]), columns.value[i]};
    }
  }
  *out = std::move(layout);
  return Status();
}

std::vector<int64_t> UnitBlocks(int64_t K, int64_t unit, int64_t rows_per_block) {
  unit = std::max<int64_t>(1, unit);
  const int64_t units = (K + unit - 1) / unit;
  const int64_t per_block = std::max<int64_t>(1, rows_per_block / unit);
  const int64_t blocks = std::max<int64_t>(1, (units + per_block - 1) / per_block);
  std::vector<int64_t> begin;
  for (int64_t b = 0; b < blocks; ++b) begin.push_back(std::min(K, units * b / blocks * unit));
  begin.push_back(K);
  return begin;
}

std::vector<int64_t> BalancedColumns(const ColumnLists& columns, int64_t parts) {
  const int64_t N = columns.N;
  parts = std::max<int64_t>(1, parts);
  constexpr uint64_t kColumnCost = 4;  // loading and storing a column's outputs, in non-zeros
  const uint64_t total = columns.nnz() + kColumnCost * static_cast<uint64_t>(N);
  std::vector<int64_t> bounds = {0};
  int64_t n = 0;
  for (int64_t p = 1; p < parts; ++p) {
    const uint64_t target = total / static_cast<uint64_t>(parts) * static_cast<uint64_t>(p);
    while (n < N && columns.ptr[n] + kColumnCost * static_cast<uint64_t>(n) < target) ++n;
    bounds.push_back(n);
  }
  bounds.push_back(N);
  return bounds;
}

}  // namespace lsc
