// bitmap: one bit per element, then the non-zero values (sections: mask, values).
#include "format/codecs/codecs.h"

namespace lsc {
namespace {

class BitmapDecoder : public MatrixDecoder {
 public:
  BitmapDecoder(const Blob& blob, std::vector<uint64_t> chunk_values)
      : MatrixDecoder(blob), rows_per_chunk_(RowsPerChunk(blob.cols())), chunk_values_(std::move(chunk_values)) {}

  size_t num_chunks() const override { return chunk_values_.size() - 1; }

  Status DecodeChunk(size_t chunk, std::vector<Entry>* out) const override {
    const uint8_t* mask = blob_.sections[0].data;
    const int64_t cols = blob_.cols();
    const int64_t begin = static_cast<int64_t>(chunk) * rows_per_chunk_ * cols;
    const int64_t end = std::min(blob_.numel(), begin + rows_per_chunk_ * cols);
    uint64_t value = chunk_values_[chunk];
    for (int64_t i = begin; i < end; ++i) {
      if ((mask[i >> 3] >> (i & 7)) & 1) {
        const uint32_t bits = ValueBits(blob_.sections[1], value++);
        if (bits) out->push_back(Entry{i / cols, i % cols, bits});
      }
    }
    return Status();
  }

 private:
  int64_t rows_per_chunk_;
  std::vector<uint64_t> chunk_values_;  // index of the first value of each chunk, then the total
};

}  // namespace

Status CreateBitmapDecoder(const Blob& blob, std::unique_ptr<MatrixDecoder>* decoder) {
  LSC_RETURN_IF_ERROR(ExpectLayout(blob, 0, 2));
  const uint64_t numel = static_cast<uint64_t>(blob.numel());
  if (blob.sections[0].size != (numel + 7) / 8) {
    return Fail("bitmap: mask has ", blob.sections[0].size, " bytes, expected ", (numel + 7) / 8, " for ", numel,
                " bits");
  }
  if (!PaddingBitsZero(blob.sections[0], numel)) return Fail("bitmap: mask has non-zero padding bits");
  const uint64_t step = static_cast<uint64_t>(RowsPerChunk(blob.cols()) * blob.cols());
  std::vector<uint64_t> chunk_values{0};
  for (uint64_t begin = 0; begin < numel; begin += step) {
    chunk_values.push_back(chunk_values.back() + PopCount(blob.sections[0].data, begin, std::min(numel, begin + step)));
  }
  LSC_RETURN_IF_ERROR(ExpectCount(blob, 1, blob.itemsize(), chunk_values.back(), "values"));
  decoder->reset(new BitmapDecoder(blob, std::move(chunk_values)));
  return Status();
}

}  // namespace lsc
