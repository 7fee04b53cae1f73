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

const WindowedLayout& PackedWeight::windowed(const KernelSet& kernels) const {
  std::call_once(windowed_once_, [&] { BuildWindowedLayout(columns_, kernels.lanes, kernels.window, &windowed_); });
  return windowed_;
}

}  // namespace lsc
