// lsc: layerwise sparse coding — block bitmask + signed relative index (SRI) codes, in chunks.
// Params: block_rows, block_cols, code_bits, split, chunk_block_rows.
// Sections: block_mask, chunks (u64 [nchunks + 1][2]), codes, values. Spec: lsc_ort/codecs/lsc.py.
// The position layer (everything but `values`) is LscLayer (lsc_layer.h), shared with f2f.
#include "format/codecs/codecs.h"
#include "format/codecs/lsc_layer.h"

namespace lsc {

Status CheckChunkTable(const Blob& blob, size_t section, uint64_t nchunks, const char* name, const char* what) {
  LSC_RETURN_IF_ERROR(ExpectCount(blob, section, 8, 2 * (nchunks + 1), name));
  const uint8_t* table = blob.sections[section].data;
  const char* codec = CodecName(blob.codec);
  if (LoadU64(table) != 0 || LoadU64(table + 8) != 0) return Fail(codec, ": ", what, " table must start at (0, 0)");
  for (uint64_t k = 0; k <= nchunks; ++k) {
    const uint64_t codes = LoadU64(table + 16 * k), values = LoadU64(table + 16 * k + 8);
    if (codes >= (uint64_t{1} << 62) || values >= (uint64_t{1} << 62)) {
      return Fail(codec, ": ", what, " table is not monotone");
    }
    if (k > 0 && (codes < LoadU64(table + 16 * (k - 1)) || values < LoadU64(table + 16 * (k - 1) + 8))) {
      return Fail(codec, ": ", what, " table is not monotone");
    }
  }
  return Status();
}

Status LscLayer::Create(const Blob& blob, LscLayer* out) {
  const int64_t rows = blob.rows(), cols = blob.cols();
  LscLayer p;
  p.blob_ = &blob;
  int64_t width = 0;
  LSC_RETURN_IF_ERROR(Param(blob, 0, 1, std::max<int64_t>(rows, 1), "block_rows", &p.br_));
  LSC_RETURN_IF_ERROR(Param(blob, 1, 1, std::max<int64_t>(cols, 1), "block_cols", &p.bc_));
  LSC_RETURN_IF_ERROR(Param(blob, 2, 0, 16, "code_bits", &width));
  LSC_RETURN_IF_ERROR(Param(blob, 3, width ? 1 : 0, (int64_t{1} << width) - 1, "split", &p.split_));
  p.width_ = static_cast<int>(width);
  p.nbr_ = (rows + p.br_ - 1) / p.br_;
  p.nbc_ = (cols + p.bc_ - 1) / p.bc_;
  LSC_RETURN_IF_ERROR(Param(blob, 4, 1, std::max<int64_t>(p.nbr_, 1), "chunk_block_rows", &p.cbr_));
  const uint64_t nchunks = static_cast<uint64_t>((p.nbr_ + p.cbr_ - 1) / p.cbr_);
  // br <= max(rows, 1) and bc <= max(cols, 1), so these counts are at most numel (< 2^62) or,
  // for an empty matrix, 0; checked all the same.
  int64_t nblocks_signed = 0, per_chunk_signed = 0, bsize_signed = 0;
  LSC_RETURN_IF_ERROR(CheckedMul(p.nbr_, p.nbc_, &nblocks_signed, "lsc: the block count"));
  LSC_RETURN_IF_ERROR(CheckedMul(p.cbr_, p.nbc_, &per_chunk_signed, "lsc: the blocks per chunk"));
  LSC_RETURN_IF_ERROR(CheckedMul(p.br_, p.bc_, &bsize_signed, "lsc: the block size"));
  const uint64_t nblocks = static_cast<uint64_t>(nblocks_signed);

  // The chunk table first: its size bounds the number of chunks, and so the work below (a
  // matrix without columns declares chunks without any mask bits to pay for them).
  LSC_RETURN_IF_ERROR(CheckChunkTable(blob, 1, nchunks, "chunks", "chunk"));
  const Section& mask = blob.sections[0];
  if (mask.size != (nblocks + 7) / 8) {
    return Fail("lsc: block_mask has ", mask.size, " bytes, expected ", (nblocks + 7) / 8, " for ", nblocks, " bits");
  }
  if (!PaddingBitsZero(mask, nblocks)) return Fail("lsc: block_mask has non-zero padding bits");
  p.chunk_first_block_.assign(1, 0);
  p.chunk_first_block_.reserve(nchunks + 1);
  const uint64_t per_chunk = static_cast<uint64_t>(per_chunk_signed);
  for (uint64_t k = 0; k < nchunks; ++k) {
    const uint64_t first = k * per_chunk, last = std::min(first + per_chunk, nblocks);
    p.chunk_first_block_.push_back(p.chunk_first_block_.back() + PopCount(mask.data, first, last));
  }
  p.table_ = blob.sections[1].data;
  const uint64_t ncodes = LoadU64(p.table_ + 16 * nchunks);
  const Section& codes = blob.sections[2];
  if (p.width_ == 0) {
    if (ncodes != 0 || codes.size != 0) return Fail("lsc: codes present without a coding layer");
    const uint64_t bsize = static_cast<uint64_t>(bsize_signed);
    int64_t stored = 0;  // the values of the kept blocks, stored whole
    LSC_RETURN_IF_ERROR(CheckedMul(static_cast<int64_t>(p.chunk_first_block_.back()), bsize_signed, &stored,
                                   "lsc: the stored element count"));
    for (uint64_t k = 0; k <= nchunks; ++k) {
      if (LoadU64(p.table_ + 16 * k + 8) != p.chunk_first_block_[k] * bsize) {
        return Fail("lsc: chunk ", k, " value offset does not match the kept blocks");
      }
    }
  } else {
    if (ncodes > codes.size * 8) return Fail("lsc: codes has ", codes.size, " bytes, too few for ", ncodes, " codes");
    const uint64_t expected = (ncodes * static_cast<uint64_t>(p.width_) + 7) / 8;
    if (codes.size != expected) {
      return Fail("lsc: codes has ", codes.size, " bytes, expected ", expected, " (", ncodes, " codes of ", p.width_,
                  " bits)");
    }
    if (!PaddingBitsZero(codes, ncodes * p.width_)) return Fail("lsc: codes has non-zero padding bits after the last code");
  }
  *out = std::move(p);
  return Status();
}

namespace {

class LscDecoder : public MatrixDecoder {
 public:
  LscDecoder(const Blob& blob, LscLayer layer) : MatrixDecoder(blob), layer_(std::move(layer)) {}

  size_t num_chunks() const override { return layer_.num_chunks(); }

  Status DecodeChunk(size_t chunk, std::vector<Entry>* out) const override {
    const Section& values = blob_.sections[3];
    const uint64_t first = layer_.SlotBegin(chunk);
    const int64_t rows = blob_.rows(), cols = blob_.cols();
    return layer_.DecodeChunk(chunk, [&](int64_t r, int64_t c, uint64_t slot) {
      const uint32_t bits = ValueBits(values, first + slot);
      if (!bits) return Status();
      // Stored whole, a kept edge block holds its padding too, which must be zero.
      if (r >= rows || c >= cols) return Fail("lsc: a non-zero lies in the padding of an edge block");
      out->push_back(Entry{r, c, bits});
      return Status();
    });
  }

 private:
  LscLayer layer_;
};

}  // namespace

Status CreateLscDecoder(const Blob& blob, std::unique_ptr<MatrixDecoder>* decoder) {
  LSC_RETURN_IF_ERROR(ExpectLayout(blob, 5, 4));
  LscLayer layer;
  LSC_RETURN_IF_ERROR(LscLayer::Create(blob, &layer));
  LSC_RETURN_IF_ERROR(ExpectCount(blob, 3, blob.itemsize(), layer.slots(), "values"));
  decoder->reset(new LscDecoder(blob, std::move(layer)));
  return Status();
}

}  // namespace lsc
