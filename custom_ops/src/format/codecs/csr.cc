// csr: int32 row pointers and column indices of the matrix view (sections: indptr, indices, values).
#include "format/codecs/codecs.h"

namespace lsc {
namespace {

class CsrDecoder : public MatrixDecoder {
 public:
  explicit CsrDecoder(const Blob& blob) : MatrixDecoder(blob), rows_per_chunk_(RowsPerChunk(blob.cols())) {}

  size_t num_chunks() const override {
    return static_cast<size_t>((blob_.rows() + rows_per_chunk_ - 1) / rows_per_chunk_);
  }

  Status DecodeChunk(size_t chunk, std::vector<Entry>* out) const override {
    const Section& indptr = blob_.sections[0];
    const Section& indices = blob_.sections[1];
    const int64_t cols = blob_.cols();
    const int64_t begin = static_cast<int64_t>(chunk) * rows_per_chunk_;
    const int64_t end = std::min(blob_.rows(), begin + rows_per_chunk_);
    for (int64_t r = begin; r < end; ++r) {
      const int64_t lo = LoadI32(indptr.data + 4 * r), hi = LoadI32(indptr.data + 4 * (r + 1));
      int64_t previous = -1;
      for (int64_t i = lo; i < hi; ++i) {
        const int64_t c = LoadI32(indices.data + 4 * i);
        if (c < 0 || c >= cols) {
          return Fail("csr: indices: index ", c, " at position ", i, " is out of range [0, ", cols, ")");
        }
        if (c <= previous) return Fail("csr: indices: indices are not strictly increasing within row ", r);
        previous = c;
        const uint32_t bits = ValueBits(blob_.sections[2], static_cast<uint64_t>(i));
        if (bits) out->push_back(Entry{r, c, bits});
      }
    }
    return Status();
  }

 private:
  int64_t rows_per_chunk_;
};

}  // namespace

Status CreateCsrDecoder(const Blob& blob, std::unique_ptr<MatrixDecoder>* decoder) {
  LSC_RETURN_IF_ERROR(ExpectLayout(blob, 0, 3));
  const uint64_t rows = static_cast<uint64_t>(blob.rows());
  uint64_t nindices = 0;
  LSC_RETURN_IF_ERROR(ExpectCount(blob, 0, 4, rows + 1, "indptr"));
  LSC_RETURN_IF_ERROR(SectionCount(blob, 1, 4, "indices", &nindices));
  LSC_RETURN_IF_ERROR(ExpectCount(blob, 2, blob.itemsize(), nindices, "values"));
  LSC_RETURN_IF_ERROR(CheckIndptr(blob, blob.sections[0], rows, nindices, "indices"));
  decoder->reset(new CsrDecoder(blob));
  return Status();
}

}  // namespace lsc
