// Execution layouts of a sparse weight W [K, N], built from a blob chunk by chunk (the dense
// matrix is never formed). Kernels compute on these:
//
// * ColumnLists — for every output column n, its non-zeros (k, value) sorted by k. 8 bytes per
//   non-zero. Used by the broadcast kernel (a batch tile of activations per non-zero).
// * WindowedLayout — for small batches: output columns in groups of `lanes`, rows in windows of
//   `window` - 1 held in `window` slots; in each (group, window) the non-zeros are dealt into
//   rounds, one per lane, so one vector permute of the activation window feeds `lanes` columns at
//   once. Padded lanes carry value 0 and read the window's last slot, which is always zero, so a
//   NaN or infinity in an activation never reaches a column through padding. About 10 bytes per
//   non-zero at 90% sparsity.
#pragma once

#include <cstdint>
#include <vector>

#include "common/status.h"
#include "format/decoder.h"
#include "kernels/kernels.h"

namespace lsc {

struct ColumnLists {
  int64_t K = 0, N = 0;
  std::vector<uint64_t> ptr;  // N + 1
  std::vector<uint32_t> row;  // k of each non-zero
  std::vector<float> value;
  ValueType stored = ValueType::kFloat32;  // the blob's value type (value holds them as float)
  float scale = 1.0f;                      // int8 values: value = scale * q
  uint64_t nnz() const { return row.size(); }
  ColumnView view() const { return ColumnView{K, N, ptr.data(), row.data(), value.data()}; }
};

// Builds the column lists of the blob's matrix view [R, C]. With `k_is_row` the weight is the
// matrix itself (K = R, N = C); otherwise its transpose (K = C, N = R). Decodes (and fully
// validates) the blob; fails on anything malformed.
Status BuildColumnLists(const MatrixDecoder& decoder, bool k_is_row, ColumnLists* out);

// Sorts the entries of every column of `lists` by row (columns already sorted are left as they
// are, so lists filled in row order cost one pass).
void SortColumnsByRow(ColumnLists* lists);

struct WindowedLayout {
  int lanes = 16, window = 32;
  int64_t K = 0, N = 0, groups = 0, windows = 0;
  std::vector<uint8_t> rounds;        // groups x windows: rounds of each (group, window)
  std::vector<uint64_t> group_start;  // first round of each group, then the total
  std::vector<uint8_t> offset;        // rounds x lanes: k - window * w
  std::vector<float> value;           // rounds x lanes
  WindowedView view() const {
    return WindowedView{lanes, window, K, N, groups, windows, rounds.data(), group_start.data(), offset.data(),
                        value.data()};
  }
};

// Floats per staged activation row of a windowed layout, and the staging itself: row k of
// window w at slot w * window + k - w * (window - 1), the last slot of every window zero.
int64_t WindowedStride(const WindowedLayout& layout);
void StageWindowedRow(const WindowedLayout& layout, const float* row, float* staged);

// Whether the windowed layout's size and build time are in proportion to the weight's non-zeros
// (never to its declared shape alone) and its worst case fits the memory budget.
bool WindowedLayoutWorthwhile(const ColumnLists& columns, int lanes, int window);
void BuildWindowedLayout(const ColumnLists& columns, int lanes, int window, WindowedLayout* out);

// Converts a stored value bit pattern to float (float32, float16 or scale * int8).
float ValueToFloat(ValueType type, uint32_t bits, float scale);

}  // namespace lsc
