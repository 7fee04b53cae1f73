// bsr: block sparse rows (params: block_rows, block_cols; sections: indptr, indices, values).
#include "format/codecs/codecs.h"

namespace lsc {
namespace {

class BsrDecoder : public MatrixDecoder {
 public:
  BsrDecoder(const Blob& blob, int64_t br, int64_t bc)
      : MatrixDecoder(blob), br_(br), bc_(bc), block_rows_per_chunk_(RowsPerChunk(blob.cols() * br)) {}

  size_t num_chunks() const override {
    const int64_t nbr = (blob_.rows() + br_ - 1) / br_;
    return static_cast<size_t>((nbr + block_rows_per_chunk_ - 1) / block_rows_per_chunk_);
  }

  Status DecodeChunk(size_t chunk, std::vector<Entry>* out) const override {
    const Section& indptr = blob_.sections[0];
    const Section& indices = blob_.sections[1];
    const int64_t rows = blob_.rows(), cols = blob_.cols();
    const int64_t nbr = (rows + br_ - 1) / br_, nbc = (cols + bc_ - 1) / bc_;
    const int64_t begin = static_cast<int64_t>(chunk) * block_rows_per_chunk_;
    const int64_t end = std::min(nbr, begin + block_rows_per_chunk_);
    for (int64_t bi = begin; bi < end; ++bi) {
      const int64_t lo = LoadI32(indptr.data + 4 * bi), hi = LoadI32(indptr.data + 4 * (bi + 1));
      int64_t previous = -1;
      for (int64_t k = lo; k < hi; ++k) {
        const int64_t bj = LoadI32(indices.data + 4 * k);
        if (bj < 0 || bj >= nbc) {
          return Fail("bsr: indices: index ", bj, " at position ", k, " is out of range [0, ", nbc, ")");
        }
        if (bj <= previous) return Fail("bsr: indices: indices are not strictly increasing within block row ", bi);
        previous = bj;
        for (int64_t i = 0; i < br_; ++i) {
          for (int64_t j = 0; j < bc_; ++j) {
            const uint32_t bits = ValueBits(blob_.sections[2], static_cast<uint64_t>((k * br_ + i) * bc_ + j));
            if (!bits) continue;
            const int64_t r = bi * br_ + i, c = bj * bc_ + j;
            if (r >= rows || c >= cols) return Fail("bsr: a non-zero value lies in the padding of an edge block");
            out->push_back(Entry{r, c, bits});
          }
        }
      }
    }
    return Status();
  }

 private:
  int64_t br_, bc_, block_rows_per_chunk_;
};

}  // namespace

Status CreateBsrDecoder(const Blob& blob, std::unique_ptr<MatrixDecoder>* decoder) {
  LSC_RETURN_IF_ERROR(ExpectLayout(blob, 2, 3));
  const int64_t rows = blob.rows(), cols = blob.cols();
  int64_t br = 0, bc = 0;
  LSC_RETURN_IF_ERROR(Param(blob, 0, 1, std::max<int64_t>(rows, 1), "block_rows", &br));
  LSC_RETURN_IF_ERROR(Param(blob, 1, 1, std::max<int64_t>(cols, 1), "block_cols", &bc));
  const uint64_t nbr = static_cast<uint64_t>((rows + br - 1) / br);
  uint64_t nindices = 0;
  LSC_RETURN_IF_ERROR(ExpectCount(blob, 0, 4, nbr + 1, "indptr"));
  LSC_RETURN_IF_ERROR(SectionCount(blob, 1, 4, "indices", &nindices));
  LSC_RETURN_IF_ERROR(CheckIndptr(blob, blob.sections[0], nbr, nindices, "indices"));
  int64_t block_size = 0, nvalues = 0;
  LSC_RETURN_IF_ERROR(CheckedMul(br, bc, &block_size, "bsr: the block size"));
  LSC_RETURN_IF_ERROR(CheckedMul(static_cast<int64_t>(nindices), block_size, &nvalues, "bsr: the value count"));
  LSC_RETURN_IF_ERROR(ExpectCount(blob, 2, blob.itemsize(), static_cast<uint64_t>(nvalues), "values"));
  decoder->reset(new BsrDecoder(blob, br, bc));
  return Status();
}

}  // namespace lsc
