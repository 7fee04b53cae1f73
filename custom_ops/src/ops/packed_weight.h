// A weight blob decoded once (at session creation when it is a constant) into the execution
// layouts the kernels run on. The dense matrix is never formed.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "common/status.h"
#include "kernels/kernels.h"
#include "kernels/layouts.h"
#include "kernels/sliced_layout.h"
#include "kernels/tiled_layout.h"
#include "kernels/unified_layout.h"

namespace lsc {

class PackedWeight {
 public:
  // Parses, validates and decodes `blob`. The weight is the blob's matrix view (k_is_row) or its
  // transpose; `shape` receives the blob's logical shape.
  static Status Create(const uint8_t* blob, size_t size, bool k_is_row, std::shared_ptr<PackedWeight>* out);

  const std::vector<int64_t>& shape() const { return shape_; }
  // Size in bytes of the blob it was decoded from.
  uint64_t blob_size() const { return blob_size_; }
  int64_t K() const { return columns_.K; }
  int64_t N() const { return columns_.N; }
  const ColumnLists& columns() const { return columns_; }
  // Makes a grouped convolution's weight block-diagonal: the rows of output channel n's group g
  // (of `groups`) move to g * K + k, so that one product covers every group. Call before use.
  void EmbedGroups(int64_t groups);
  // The windowed layout for `kernels` (built on first use; thread-safe).
  const WindowedLayout& windowed(const KernelSet& kernels) const;
  // mswu blobs: the unified blocks, one multiply each (kernels/unified_layout.h); null otherwise.
  const UnifiedLayout* unified() const { return unified_.get(); }
  // mswu blobs: the same weight with its unified blocks as plain non-zeros (no unified part),
  // for batches, where the tiled and windowed kernels run them faster than the unified kernels
  // (benchmarks/bench_mswu.py); built on first use, thread-safe.
  Status plain(const PackedWeight** out) const;
  // The tiled layout of a MatMul weight for blocks of transposed activations whose rows are
  // `stride` floats apart (row k of K-block b at offset (k - block_begin[b]) * stride), and the
  // sliced layout (with windowed slices when `windowed`); built on first use, thread-safe; they
  // fail only when they would not fit in memory.
  Status tiled(int64_t stride, const TiledLayout** layout) const;
  Status sliced(const SlicedLayout** layout, bool windowed = false) const;

 private:
  std::vector<int64_t> shape_;
  uint64_t blob_size_ = 0;
  ColumnLists columns_;
  std::shared_ptr<UnifiedLayout> unified_;
  mutable std::once_flag windowed_once_;
  mutable WindowedLayout windowed_;
  struct Tiled {
    int64_t stride;
    TiledLayout layout;
    Status status;
  };
  mutable std::mutex tiled_mutex_;
  mutable std::vector<std::unique_ptr<Tiled>> tiled_;  // one per tile stride in use
  mutable std::once_flag sliced_once_[2];  // gathered, windowed slices
  mutable SlicedLayout sliced_[2];
  mutable Status sliced_status_[2];
  mutable std::once_flag plain_once_;
  mutable std::unique_ptr<PackedWeight> plain_;
  mutable Status plain_status_;
};

}  // namespace lsc
