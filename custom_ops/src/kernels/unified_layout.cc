#include "kernels/unified_layout.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <tuple>

#include "common/memory.h"

namespace lsc {
namespace {

struct Group {
  uint64_t column;
  uint32_t first, length;
  uint64_t signs;
  float value;
  uint32_t sum = 0;  // index of its signed sum, once numbered
  auto key() const { return std::tie(first, length, signs); }
};

// Numbers the distinct (first, length, signs) in increasing order and builds the column lists
// of `groups`: per column, entries sorted by sum.
void Number(std::vector<Group>* groups, UnifiedLayout* out) {
  std::sort(groups->begin(), groups->end(), [](const Group& a, const Group& b) { return a.key() < b.key(); });
  out->first.clear();
  out->length.clear();
  out->signs.clear();
  for (size_t i = 0; i < groups->size(); ++i) {
    Group& g = (*groups)[i];
    if (i == 0 || g.key() != (*groups)[i - 1].key()) {
      out->first.push_back(g.first);
      out->length.push_back(g.length);
      out->signs.push_back(g.signs);
    }
    g.sum = static_cast<uint32_t>(out->first.size() - 1);
  }
  ColumnLists& lists = out->columns;
  lists.K = out->count();
  lists.N = out->N;
  lists.ptr.assign(static_cast<size_t>(out->N) + 1, 0);
  for (const Group& g : *groups) ++lists.ptr[g.column + 1];
  std::partial_sum(lists.ptr.begin(), lists.ptr.end(), lists.ptr.begin());
  lists.row.resize(groups->size());
  lists.value.resize(groups->size());
  std::vector<uint64_t> at(lists.ptr.begin(), lists.ptr.end() - 1);
  for (const Group& g : *groups) {  // groups are sorted by sum: a stable fill keeps columns sorted
    const uint64_t i = at[g.column]++;
    lists.row[i] = g.sum;
    lists.value[i] = g.value;
  }
}

}  // namespace

Status BuildMswuLayout(const MswuDecoder& decoder, bool k_is_row, ColumnLists* plain,
                       std::unique_ptr<UnifiedLayout>* unified) {
  const MswuGeometry& geo = decoder.geometry();
  const int64_t reduction_extent = k_is_row ? geo.br : geo.bc;
  if (reduction_extent == 1) return BuildColumnLists(decoder, k_is_row, plain);  // also validates
  const Blob& blob = decoder.blob();
  LSC_RETURN_IF_ERROR(DecodeAll(decoder, [](const std::vector<Entry>&) {}));  // full validation first

  auto layout = std::make_unique<UnifiedLayout>();
  layout->K = k_is_row ? geo.rows : geo.cols;
  layout->N = k_is_row ? geo.cols : geo.rows;
  if (layout->K > 0xFFFFFFFFll) return Fail("weight has ", layout->K, " rows; at most 2^32 - 1 are supported");
  if (layout->N >= (int64_t{1} << 40)) return Fail("weight has ", layout->N, " columns; at most 2^40 are supported");
  // The column indices cost 8 bytes per column whether or not the column holds data.
  LSC_RETURN_IF_ERROR(CheckDeclaredExtent(layout->N, blob.total_size, "the weight's number of output columns"));
  // Every free non-zero and every group is a decoded non-zero (nnz, checked by DecodeAll). Alive
  // at the peak: four index arrays (the two column lists and their cursors), 32 bytes per free
  // entry (decoded and laid out), and 56 per group (the group, its entry, its signed sum).
  LSC_RETURN_IF_ERROR(CheckAllocation(32 * static_cast<uint64_t>(layout->N + 1) +
                                          (sizeof(Group) + 24) * static_cast<uint64_t>(blob.nnz),
                                      "the execution layout of this weight"));
  std::vector<Entry> free, chunk_free;
  std::vector<UnifiedBlock> blocks;
  std::vector<Group> groups;
  for (size_t c = 0; c < decoder.num_chunks(); ++c) {
    blocks.clear();
    chunk_free.clear();
    LSC_RETURN_IF_ERROR(decoder.DecodeChunkBlocks(c, &blocks, &chunk_free));
    free.insert(free.end(), chunk_free.begin(), chunk_free.end());
    for (const UnifiedBlock& u : blocks) {
      const float magnitude = ValueToFloat(blob.dtype, u.magnitude, blob.scale);
      const int64_t r0 = static_cast<int64_t>(u.block / geo.nbc) * geo.br;
      const int64_t c0 = static_cast<int64_t>(u.block % geo.nbc) * geo.bc;
      const int64_t rows = decoder.ValidRows(u.block), cols = decoder.ValidCols(u.block);
      if (magnitude == 0.0f || !std::isfinite(magnitude)) {
        // +-0, +-inf and NaN go element by element, as stored weights do: (-0) * inf is NaN,
        // and inf * (x0 - x1) is not inf * x0 - inf * x1.
        for (int64_t i = 0; i < rows; ++i) {
          for (int64_t j = 0; j < cols; ++j) {
            const uint32_t bits = decoder.Compose(u.magnitude, decoder.SignBit(u.sign_bit + static_cast<uint64_t>(i * geo.bc + j)));
            if (bits) free.push_back(Entry{r0 + i, c0 + j, bits});
          }
        }
        continue;
      }
      const int64_t k0 = k_is_row ? r0 : c0, n0 = k_is_row ? c0 : r0;
      const int64_t klen = k_is_row ? rows : cols, nlen = k_is_row ? cols : rows;
      ++layout->blocks;
      for (int64_t j = 0; j < nlen; ++j) {
        for (int64_t p = 0; p < klen; p += kMaxSignedSumLength) {
          const int64_t length = std::min<int64_t>(kMaxSignedSumLength, klen - p);
          uint64_t signs = 0;
          for (int64_t i = 0; i < length; ++i) {
            const int64_t offset = k_is_row ? (p + i) * geo.bc + j : j * geo.bc + p + i;
            if (decoder.SignBit(u.sign_bit + static_cast<uint64_t>(offset))) signs |= uint64_t{1} << i;
          }
          float value = magnitude;
          if (signs & 1) {  // fold the first sign into the magnitude: w and -w share one sum
            signs = ~signs & (length == 64 ? ~uint64_t{0} : (uint64_t{1} << length) - 1);
            value = -magnitude;
          }
          groups.push_back(Group{static_cast<uint64_t>(n0 + j), static_cast<uint32_t>(k0 + p),
                                 static_cast<uint32_t>(length), signs, value});
        }
      }
    }
  }
  // The free non-zeros, as BuildColumnLists lays out every codec's (chunks arrive in block order,
  // so every column is sorted by k).
  ColumnLists lists;
  lists.K = layout->K;
  lists.N = layout->N;
  lists.ptr.assign(static_cast<size_t>(lists.N) + 1, 0);
  for (const Entry& e : free) ++lists.ptr[static_cast<size_t>(k_is_row ? e.col : e.row) + 1];
  std::partial_sum(lists.ptr.begin(), lists.ptr.end(), lists.ptr.begin());
  lists.row.resize(free.size());
  lists.value.resize(free.size());
  std::vector<uint64_t> at(lists.ptr.begin(), lists.ptr.end() - 1);
  for (const Entry& e : free) {
    const uint64_t i = at[static_cast<size_t>(k_is_row ? e.col : e.row)]++;
    lists.row[i] = static_cast<uint32_t>(k_is_row ? e.row : e.col);
    lists.value[i] = ValueToFloat(blob.dtype, e.bits, blob.scale);
  }
  // Unified blocks taken element by element were appended after their chunk's free blocks.
  SortColumnsByRow(&lists);
  if (groups.size() >= 0xFFFFFFFFull) return Fail("weight has ", groups.size(), " unified groups; at most 2^32 - 2 are supported");
  Number(&groups, layout.get());
  *plain = std::move(lists);
  *unified = std::move(layout);
  return Status();
}

Status ExpandUnified(const ColumnLists& free, const UnifiedLayout& unified, ColumnLists* out) {
  const ColumnLists& sums = unified.columns;
  ColumnLists lists;
  lists.K = free.K;
  lists.N = free.N;
  lists.stored = free.stored;
  lists.scale = free.scale;
  lists.ptr.assign(static_cast<size_t>(lists.N) + 1, 0);  // as large as free.ptr, which exists already
  for (int64_t n = 0; n < lists.N; ++n) {
    uint64_t count = free.ptr[n + 1] - free.ptr[n];
    for (uint64_t i = sums.ptr[n]; i < sums.ptr[n + 1]; ++i) count += unified.length[sums.row[i]];
    lists.ptr[static_cast<size_t>(n) + 1] = lists.ptr[static_cast<size_t>(n)] + count;
  }
  const uint64_t total = lists.ptr.back();
  LSC_RETURN_IF_ERROR(CheckAllocation(8 * static_cast<uint64_t>(lists.N + 1) + 16 * total,
                                      "the plain column lists of this mswu weight"));
  lists.row.resize(total);
  lists.value.resize(total);
  for (int64_t n = 0; n < lists.N; ++n) {
    uint64_t at = lists.ptr[n];
    for (uint64_t i = free.ptr[n]; i < free.ptr[n + 1]; ++i, ++at) {
      lists.row[at] = free.row[i];
      lists.value[at] = free.value[i];
    }
    for (uint64_t i = sums.ptr[n]; i < sums.ptr[n + 1]; ++i) {
      const uint32_t s = sums.row[i];
      for (uint32_t j = 0; j < unified.length[s]; ++j, ++at) {
        lists.row[at] = unified.first[s] + j;
        lists.value[at] = (unified.signs[s] >> j & 1) ? -sums.value[i] : sums.value[i];
      }
    }
  }
  SortColumnsByRow(&lists);
  *out = std::move(lists);
  return Status();
}

void EmbedUnifiedGroups(int64_t groups, UnifiedLayout* unified) {
  if (groups <= 1 || unified->N == 0) return;
  const int64_t per_group = unified->N / groups;
  const ColumnLists& lists = unified->columns;
  std::vector<Group> entries;
  entries.reserve(lists.nnz());
  for (int64_t n = 0; n < lists.N; ++n) {
    const uint32_t shift = static_cast<uint32_t>(n / per_group * unified->K);
    for (uint64_t i = lists.ptr[n]; i < lists.ptr[n + 1]; ++i) {
      const uint32_t s = lists.row[i];
      entries.push_back(Group{static_cast<uint64_t>(n), unified->first[s] + shift, unified->length[s],
                              unified->signs[s], lists.value[i]});
    }
  }
  unified->K *= groups;
  Number(&entries, unified);
}

}  // namespace lsc
