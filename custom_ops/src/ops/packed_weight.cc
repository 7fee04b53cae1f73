#include "ops/packed_weight.h"

#include "format/blob.h"
#include "format/decoder.h"

namespace lsc {

Status PackedWeight::Create(const uint8_t* blob, size_t size, bool k_is_row, std::shared_ptr<PackedWeight>* out) {
  Blob parsed;
  LSC_RETURN_IF_ERROR(ParseBlob(blob, size, &parsed));
  std::unique_ptr<MatrixDecoder> decoder;
  LSC_RETURN_IF_ERROR(CreateDecoder(parsed, &decoder));
  auto weight = std::make_shared<PackedWeight>();
  weight->shape_ = parsed.shape;
  LSC_RETURN_IF_ERROR(BuildColumnLists(*decoder, k_is_row, &weight->columns_));
  *out = std::move(weight);
  return Status();
}

const WindowedLayout& PackedWeight::windowed(const KernelSet& kernels) const {
  std::call_once(windowed_once_, [&] { BuildWindowedLayout(columns_, kernels.lanes, kernels.window, &windowed_); });
  return windowed_;
}

}  // namespace lsc
