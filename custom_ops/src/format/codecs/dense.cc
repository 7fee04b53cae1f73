// dense: every element stored (sections: values).
#include "format/codecs/codecs.h"

namespace lsc {
namespace {

class DenseDecoder : public MatrixDecoder {
 public:
  explicit DenseDecoder(const Blob& blob)
      : MatrixDecoder(blob), rows_per_chunk_(RowsPerChunk(blob.cols())) {}

  size_t num_chunks() const override {
    return static_cast<size_t>((blob_.rows() + rows_per_chunk_ - 1) / rows_per_chunk_);
  }

  Status DecodeChunk(size_t chunk, std::vector<Entry>* out) const override {
    const int64_t cols = blob_.cols();
    if (cols == 0) return Status();  // no elements, however many rows
    const int64_t begin = static_cast<int64_t>(chunk) * rows_per_chunk_;
    const int64_t end = std::min(blob_.rows(), begin + rows_per_chunk_);
    for (int64_t r = begin; r < end; ++r) {
      for (int64_t c = 0; c < cols; ++c) {
        const uint32_t bits = ValueBits(blob_.sections[0], static_cast<uint64_t>(r * cols + c));
        if (bits) out->push_back(Entry{r, c, bits});
      }
    }
    return Status();
  }

 private:
  int64_t rows_per_chunk_;
};

}  // namespace

Status CreateDenseDecoder(const Blob& blob, std::unique_ptr<MatrixDecoder>* decoder) {
  LSC_RETURN_IF_ERROR(ExpectLayout(blob, 0, 1));
  LSC_RETURN_IF_ERROR(ExpectCount(blob, 0, blob.itemsize(), static_cast<uint64_t>(blob.numel()), "values"));
  decoder->reset(new DenseDecoder(blob));
  return Status();
}

}  // namespace lsc
