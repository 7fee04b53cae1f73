// The execution layout of an mswu weight (format/codecs/mswu.h), built once from its blob.
//
// Free non-zeros go into ordinary column lists (kernels/layouts.h) and run on the existing
// kernels. A unified block along the reduction axis becomes, for each of its output columns,
// one entry (signed sum, magnitude): the signed sum adds the block's inputs with their signs,
// the entry scales it with one multiply. Blocks with the same inputs and signs share their
// signed sum across output columns (the block's overall sign is folded into the magnitude, so a
// block and its negation share too). Blocks one input tall are ordinary non-zeros.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "common/status.h"
#include "format/codecs/mswu.h"
#include "kernels/layouts.h"
#include "kernels/unified_views.h"

namespace lsc {

struct UnifiedLayout {
  int64_t K = 0, N = 0;  // the weight [K, N] (K counts every group once EmbedUnifiedGroups ran)
  std::vector<uint32_t> first, length;
  std::vector<uint64_t> signs;  // the signed sums
  ColumnLists columns;          // rows = signed sums: (sum, magnitude) per output column, sorted by sum
  uint64_t blocks = 0;          // unified blocks the layout computes

  int64_t count() const { return static_cast<int64_t>(first.size()); }
  SignedSumView sums() const { return SignedSumView{count(), first.data(), length.data(), signs.data()}; }
};

// Decodes and fully validates an mswu blob (as BuildColumnLists does for every codec). The free
// non-zeros go to `plain`; `unified` receives the unified part, or stays null when the blocks
// are one input tall (then every non-zero is in `plain`).
Status BuildMswuLayout(const MswuDecoder& decoder, bool k_is_row, ColumnLists* plain,
                       std::unique_ptr<UnifiedLayout>* unified);

// Every non-zero of the weight as an ordinary column list: the free non-zeros of `free` and each
// unified block's weights, value * (-1 if its sign bit is set), merged and sorted by row. The
// values are the stored weights, bit for bit.
Status ExpandUnified(const ColumnLists& free, const UnifiedLayout& unified, ColumnLists* out);

// Grouped convolution: output column n belongs to group n / (N / groups) and reads input rows
// g * K + k (as PackedWeight::EmbedGroups does for the column lists).
void EmbedUnifiedGroups(int64_t groups, UnifiedLayout* unified);

}  // namespace lsc
