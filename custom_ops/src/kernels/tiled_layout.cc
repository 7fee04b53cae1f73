#include "kernels/tiled_layout.h"

#include <algorithm>

#include "common/memory.h"

namespace lsc {

Status BuildTiledLayout(const ColumnLists& columns, const int64_t* offsets, const std::vector<int64_t>& block_begin,
                        int64_t chunk, TiledLayout* out) {
  const int64_t N = columns.N, blocks = static_cast<int64_t>(block_begin.size()) - 1;
  if (blocks < 1 || block_begin.front() != 0 || block_begin.back() != columns.K) {
    return Fail("internal error: K-blocks do not cover the ", columns.K, " rows");
  }
  if (N < 0 || static_cast<uint64_t>(blocks) > (uint64_t{1} << 40) / (static_cast<uint64_t>(N) + 1)) {
    return Fail("the tiled layout of ", blocks, " K-blocks x ", N, " columns would be too large");
  }
  const uint64_t cells = static_cast<uint64_t>(blocks) * static_cast<uint64_t>(N);
  LSC_RETURN_IF_ERROR(CheckAllocation(24 * cells + 8 + 8 * columns.nnz(), "the tiled layout of this weight"));
  bool narrow = true;  // every offset fits in 16 bits
  for (int64_t k = 0; k < columns.K; ++k) {
    if (offsets[k] < 0 || offsets[k] > 0x1FFFFFFFll) {
      return Fail("activation offset ", offsets[k], " of weight row ", k, " is beyond 2^29 elements");
    }
    narrow = narrow && offsets[k] <= 0xFFFF;
  }
  TiledLayout layout;
  layout.N = N;
  layout.blocks = blocks;
  layout.chunk = std::max<int64_t>(1, chunk);
  layout.block_begin = block_begin;
  for (int64_t n = 0; n < N; n += layout.chunk) layout.chunk_work.push_back(columns.ptr[n]);
  layout.chunk_work.push_back(columns.nnz());
  // Entries per (block, column).
  std::vector<uint32_t> count(static_cast<size_t>(cells), 0);
  for (int64_t n = 0; n < N; ++n) {
    int64_t b = 0;
    for (uint64_t i = columns.ptr[n]; i < columns.ptr[n + 1]; ++i) {
      while (columns.row[i] >= block_begin[b + 1]) ++b;
      ++count[static_cast<size_t>(b * N + n)];
    }
  }
  // Processing order: within each block and chunk, columns by decreasing count, so the kernel's
  // loop trip counts repeat.
  layout.column.resize(static_cast<size_t>(cells));
  for (int64_t b = 0; b < blocks; ++b) {
    int32_t* order = layout.column.data() + b * N;
    for (int64_t n = 0; n < N; ++n) order[n] = static_cast<int32_t>(n);
    const uint32_t* c = count.data() + b * N;
    for (int64_t c0 = 0; c0 < N; c0 += layout.chunk) {
      std::stable_sort(order + c0, order + std::min(N, c0 + layout.chunk),
                       [&](int32_t x, int32_t y) { return c[x] > c[y]; });
    }
  }
  layout.start.assign(static_cast<size_t>(cells) + 1, 0);
  std::vector<uint64_t> first(static_cast<size_t>(cells));  // next entry of (block, column)
  for (int64_t b = 0; b < blocks; ++b) {
    for (int64_t i = 0; i < N; ++i) {
      const size_t at = static_cast<size_t>(b * N + i);
      const int32_t n = layout.column[at];
      first[static_cast<size_t>(b * N + n)] = layout.start[at];
      layout.start[at + 1] = layout.start[at] + count[static_cast<size_t>(b * N + n)];
    }
  }
  layout.value.resize(columns.nnz());
  if (narrow) {
    layout.offset16.resize(columns.nnz());
  } else {
    layout.offset32.resize(columns.nnz());
  }
  for (int64_t n = 0; n < N; ++n) {
    int64_t b = 0;
    for (uint64_t i = columns.ptr[n]; i < columns.ptr[n + 1]; ++i) {
      const uint32_t k = columns.row[i];
      while (k >= block_begin[b + 1]) ++b;
      const uint64_t at = first[static_cast<size_t>(b * N + n)]++;
      layout.value[at] = columns.value[i];
      if (narrow) {
        layout.offset16[at] = static_cast<uint16_t>(offsets[k]);
      } else {
        layout.offset32[at] = static_cast<int32_t>(offsets[k]);
      }
    }
  }
  *out = std::move(layout);
  return Status();
}

std::vector<int64_t> TiledLayout::TaskBounds(int64_t tasks) const {
  const int64_t chunks = static_cast<int64_t>(chunk_work.size()) - 1;
  tasks = std::max<int64_t>(1, std::min(tasks, chunks));
  std::vector<int64_t> bounds = {0};
  int64_t c = 0;
  for (int64_t t = 1; t < tasks; ++t) {
    const uint64_t target = chunk_work.back() / static_cast<uint64_t>(tasks) * static_cast<uint64_t>(t);
    while (c < chunks && chunk_work[static_cast<size_t>(c)] < target) ++c;
    bounds.push_back(std::min(N, c * chunk));
  }
  bounds.push_back(N);
  return bounds;
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
