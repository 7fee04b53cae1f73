// The sliced layout for one or two activation rows (SpmvSlicedFn, views.h), built to stream at
// memory speed: about 5 bytes per float32 non-zero (3 for float16), close to the blob itself.
//
// Output columns are sorted by their number of non-zeros and dealt kSlicedLanes at a time into
// groups, so the columns of a group have nearly equal counts. Round r of a group holds the r-th
// non-zero of each of its columns: the step from the previous row of that column (8 bits, or 16
// when 8 would need many escapes) and the value at the blob's own width (float32, float16, or
// int8 with one scale). A step too long for its width is split by escape entries of value zero;
// a column with fewer non-zeros is padded with zero values. Every lane's row index stays a row of
// the matrix (padding repeats the last row, an empty lane stays at row 0), so a gather of x may
// read any lane, and the kernel masks the multiply-add of every zero-valued lane: a NaN or
// infinity in x reaches only the outputs of its stored non-zeros.
//
// Windowed slices (for CPUs whose gathers are slow) deal the same sorted groups into rounds of
// one window of kSlicedWindow rows each: a round's window starts at the lowest next row of its
// lanes (no further than K - kSlicedWindow), and every lane whose next row lies in the window
// takes it, with its offset in the window; the others idle with value zero. A window advance
// longer than 16 bits is split by empty rounds. About 70% of the lanes carry a non-zero at 90%
// sparsity (against 49% in the fixed windows of the windowed layout). Idle lanes store no value
// (the kernel expands a round's values by its mask of taken lanes), so a float32 non-zero takes
// 5.6 bytes, and a round costs two loads and one permute per row instead of a gather.
#pragma once

#include <cstdint>
#include <vector>

#include "common/memory.h"
#include "common/status.h"
#include "kernels/layouts.h"
#include "kernels/views.h"

namespace lsc {

struct SlicedLayout {
  int64_t K = 0, N = 0, groups = 0;
  int32_t step_bytes = 1;
  SlicedValue value_type = SlicedValue::kFloat32;
  float scale = 1.0f;
  std::vector<uint64_t> group_start;  // groups + 1
  std::vector<int32_t> column;        // groups x kSlicedLanes
  // rounds x kSlicedLanes x step_bytes, and x value width: the streams, on huge pages
  std::vector<uint8_t, StreamedAllocator<uint8_t>> step, value;
  std::vector<uint16_t, StreamedAllocator<uint16_t>> window;  // windowed slices: rounds; else empty
  std::vector<uint64_t> value_start;                          // windowed slices: groups + 1
  bool windowed = false;
  uint64_t rounds() const { return group_start.empty() ? 0 : group_start.back(); }
  uint64_t bytes() const {
    return (group_start.size() + value_start.size()) * 8 + column.size() * 4 + step.size() + value.size() +
           2 * window.size();
  }
  SlicedView view() const {
    return SlicedView{K,
                      N,
                      groups,
                      step_bytes,
                      value_type,
                      scale,
                      group_start.data(),
                      column.data(),
                      step.data(),
                      value.data(),
                      windowed ? window.data() : nullptr,
                      windowed ? value_start.data() : nullptr};
  }
};

// Builds the sliced layout of `columns` (values at the width of columns.stored), with windowed
// slices when `windowed`. Fails when the layout would not fit in memory.
Status BuildSlicedLayout(const ColumnLists& columns, SlicedLayout* out, bool windowed = false);

}  // namespace lsc
