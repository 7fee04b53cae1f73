#include "ops/packed_weight.h"

#include "format/blob.h"
#include "format/codecs/mswu.h"
#include "format/decoder.h"

namespace lsc {

Status PackedWeight::Create(const uint8_t* blob, size_t size, bool k_is_row, std::shared_ptr<PackedWeight>* out) {
  Blob parsed;
  LSC_RETURN_IF_ERROR(ParseBlob(blob, size, &parsed));
  std::unique_ptr<MatrixDecoder> decoder;
  LSC_RETURN_IF_ERROR(CreateDecoder(parsed, &decoder));
  auto weight = std::make_shared<PackedWeight>();
  weight->shape_ = parsed.shape;
  weight->blob_size_ = parsed.total_size;
  if (parsed.codec == CodecId::kMswu) {
    std::unique_ptr<UnifiedLayout> unified;
    LSC_RETURN_IF_ERROR(BuildMswuLayout(static_cast<const MswuDecoder&>(*decoder), k_is_row, &weight->columns_,
                                        &unified));
    weight->unified_ = std::move(unified);
  } else {
    LSC_RETURN_IF_ERROR(BuildColumnLists(*decoder, k_is_row, &weight->columns_));
  }
  *out = std::move(weight);
  return Status();
}

void PackedWeight::EmbedGroups(int64_t groups) {
  if (groups <= 1) return;
  const int64_t per_group = columns_.N / groups;
  for (int64_t n = 0; n < columns_.N; ++n) {
    const uint32_t shift = static_cast<uint32_t>(n / per_group * columns_.K);
    for (uint64_t i = columns_.ptr[n]; i < columns_.ptr[n + 1]; ++i) columns_.row[i] += shift;
  }
  columns_.K *= groups;
  if (unified_) EmbedUnifiedGroups(groups, unified_.get());
}

Status PackedWeight::tiled(int64_t stride, const TiledLayout** layout) const {
  std::lock_guard<std::mutex> lock(tiled_mutex_);
  for (const auto& t : tiled_) {
    if (t->stride == stride) {
      *layout = &t->layout;
      return t->status;
    }
  }
  auto t = std::make_unique<Tiled>();
  t->stride = stride;
  // K-blocks whose activation rows take about 48 KiB, an L1's worth on Xeon cores (48 KiB L1,
  // 2 MiB L2): the op transposes one block of activations at a time and sweeps every column on it,
  // so each row offset is relative to its block's first row. Chunks of as many bytes of partial
  // sums are the unit of work of a thread.
  constexpr int64_t kBlockBytes = 49152;
  const std::vector<int64_t> blocks = UnitBlocks(columns_.K, 1, kBlockBytes / (4 * stride));
  std::vector<int64_t> offsets(static_cast<size_t>(columns_.K));
  for (size_t b = 0; b + 1 < blocks.size(); ++b) {
    for (int64_t k = blocks[b]; k < blocks[b + 1]; ++k) offsets[static_cast<size_t>(k)] = (k - blocks[b]) * stride;
  }
  t->status = BuildTiledLayout(columns_, offsets.data(), blocks, kBlockBytes / (4 * stride), &t->layout);
  *layout = &t->layout;
  tiled_.push_back(std::move(t));
  return tiled_.back()->status;
}

Status PackedWeight::plain(const PackedWeight** out) const {
  if (!unified_) {
    *out = this;
    return Status();
  }
  std::call_once(plain_once_, [&] {
    auto weight = std::make_unique<PackedWeight>();
    weight->shape_ = shape_;
    weight->blob_size_ = blob_size_;
    plain_status_ = ExpandUnified(columns_, *unified_, &weight->columns_);
    if (plain_status_.ok()) plain_ = std::move(weight);
  });
  *out = plain_.get();
  return plain_status_;
}

Status PackedWeight::sliced(const SlicedLayout** layout, bool windowed) const {
  const int i = windowed ? 1 : 0;
  std::call_once(sliced_once_[i], [&] { sliced_status_[i] = BuildSlicedLayout(columns_, &sliced_[i], windowed); });
  *layout = &sliced_[i];
  return sliced_status_[i];
}

const WindowedLayout& PackedWeight::windowed(const KernelSet& kernels) const {
  std::call_once(windowed_once_, [&] { BuildWindowedLayout(columns_, kernels.lanes, kernels.window, &windowed_); });
  return windowed_;
}

}  // namespace lsc
