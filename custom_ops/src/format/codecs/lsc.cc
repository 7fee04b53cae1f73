// lsc: layerwise sparse coding — block bitmask + signed relative index (SRI) codes, in chunks.
// Params: block_rows, block_cols, code_bits, split, chunk_block_rows.
// Sections: block_mask, chunks (u64 [nchunks + 1][2]), codes, values. Spec: lsc_ort/codecs/lsc.py.
#include "format/codecs/codecs.h"

namespace lsc {
namespace {

struct LscParams {
  int64_t br, bc, nbr, nbc;
  int width;
  int64_t split, cbr;
};

class LscDecoder : public MatrixDecoder {
 public:
  LscDecoder(const Blob& blob, const LscParams& p, std::vector<uint64_t> chunk_first_block)
      : MatrixDecoder(blob), p_(p), chunk_first_block_(std::move(chunk_first_block)) {}

  size_t num_chunks() const override { return chunk_first_block_.size() - 1; }

  Status DecodeChunk(size_t chunk, std::vector<Entry>* out) const override {
    // The kept blocks of this chunk, in block order.
    const uint8_t* mask = blob_.sections[0].data;
    const uint64_t per_chunk = static_cast<uint64_t>(p_.cbr * p_.nbc);
    const uint64_t first = chunk * per_chunk;
    const uint64_t last = std::min<uint64_t>(first + per_chunk, static_cast<uint64_t>(p_.nbr * p_.nbc));
    std::vector<uint64_t> kept;
    kept.reserve(chunk_first_block_[chunk + 1] - chunk_first_block_[chunk]);
    for (uint64_t b = first; b < last; ++b) {
      if ((mask[b >> 3] >> (b & 7)) & 1) kept.push_back(b);
    }
    const uint64_t bsize = static_cast<uint64_t>(p_.br * p_.bc);
    const uint8_t* table = blob_.sections[1].data;
    uint64_t value = LoadU64(table + 16 * chunk + 8);
    const uint64_t value_end = LoadU64(table + 16 * (chunk + 1) + 8);
    const Section& values = blob_.sections[3];
    if (p_.width == 0) {  // no coding layer: kept blocks are stored whole
      for (uint64_t block : kept) {
        for (uint64_t offset = 0; offset < bsize; ++offset) {
          const uint32_t bits = ValueBits(values, value++);
          if (bits) LSC_RETURN_IF_ERROR(Emit(block, offset, bits, out));
        }
      }
      return Status();
    }
    const BitReader codes(blob_.sections[2].data, blob_.sections[2].size);
    const uint64_t code_begin = LoadU64(table + 16 * chunk), code_end = LoadU64(table + 16 * (chunk + 1));
    const uint64_t limit = kept.size() * bsize;
    const uint64_t top = uint64_t{1} << p_.width;
    const uint64_t split = static_cast<uint64_t>(p_.split);
    uint64_t next = 0;  // one past the previous non-zero of this chunk's vector
    for (uint64_t i = code_begin; i < code_end; ++i) {
      const uint64_t code = codes.Read(i * p_.width, p_.width);
      if (code >= split) {  // skip code; past the chunk's end, later gap codes fail
        next = std::min(next + (top - code) * split, limit);
        continue;
      }
      const uint64_t position = next + code;
      if (position >= limit) {
        return Fail("lsc: position ", position, " in chunk ", chunk, " is out of range [0, ", limit, ")");
      }
      if (value >= value_end) return Fail("lsc: chunk ", chunk, " has more gap codes than values");
      const uint32_t bits = ValueBits(values, value++);
      LSC_RETURN_IF_ERROR(Emit(kept[position / bsize], position % bsize, bits, out));
      next = position + 1;
    }
    if (value != value_end) return Fail("lsc: chunk ", chunk, " has fewer gap codes than values");
    return Status();
  }

 private:
  // Appends the element at `offset` of kept block `block`; every coded position and every
  // stored non-zero must lie inside the matrix, not in the padding of an edge block.
  Status Emit(uint64_t block, uint64_t offset, uint32_t bits, std::vector<Entry>* out) const {
    const int64_t r = static_cast<int64_t>(block) / p_.nbc * p_.br + static_cast<int64_t>(offset) / p_.bc;
    const int64_t c = static_cast<int64_t>(block) % p_.nbc * p_.bc + static_cast<int64_t>(offset) % p_.bc;
    if (r >= blob_.rows() || c >= blob_.cols()) return Fail("lsc: a non-zero lies in the padding of an edge block");
    if (bits) out->push_back(Entry{r, c, bits});
    return Status();
  }

  LscParams p_;
  std::vector<uint64_t> chunk_first_block_;  // kept blocks before each chunk, then the total
};

}  // namespace

Status CreateLscDecoder(const Blob& blob, std::unique_ptr<MatrixDecoder>* decoder) {
  LSC_RETURN_IF_ERROR(ExpectLayout(blob, 5, 4));
  const int64_t rows = blob.rows(), cols = blob.cols();
  LscParams p{};
  int64_t width = 0;
  LSC_RETURN_IF_ERROR(Param(blob, 0, 1, std::max<int64_t>(rows, 1), "block_rows", &p.br));
  LSC_RETURN_IF_ERROR(Param(blob, 1, 1, std::max<int64_t>(cols, 1), "block_cols", &p.bc));
  LSC_RETURN_IF_ERROR(Param(blob, 2, 0, 16, "code_bits", &width));
  LSC_RETURN_IF_ERROR(Param(blob, 3, width ? 1 : 0, (int64_t{1} << width) - 1, "split", &p.split));
  p.width = static_cast<int>(width);
  p.nbr = (rows + p.br - 1) / p.br;
  p.nbc = (cols + p.bc - 1) / p.bc;
  LSC_RETURN_IF_ERROR(Param(blob, 4, 1, std::max<int64_t>(p.nbr, 1), "chunk_block_rows", &p.cbr));
  // br <= max(rows, 1) and bc <= max(cols, 1), so every count below is at most numel (< 2^62)
  // or, for an empty matrix, 0; they are checked all the same.
  int64_t nblocks_signed = 0, per_chunk_signed = 0;
  LSC_RETURN_IF_ERROR(CheckedMul(p.nbr, p.nbc, &nblocks_signed, "lsc: the block count"));
  LSC_RETURN_IF_ERROR(CheckedMul(p.cbr, p.nbc, &per_chunk_signed, "lsc: the blocks per chunk"));
  const uint64_t nchunks = static_cast<uint64_t>((p.nbr + p.cbr - 1) / p.cbr);
  const uint64_t nblocks = static_cast<uint64_t>(nblocks_signed);
  const uint64_t per_chunk = static_cast<uint64_t>(per_chunk_signed);

  // The chunk table first: its size bounds the number of chunks, and so the work below.
  LSC_RETURN_IF_ERROR(ExpectCount(blob, 1, 8, 2 * (nchunks + 1), "chunks"));
  const Section& mask = blob.sections[0];
  if (mask.size != (nblocks + 7) / 8) {
    return Fail("lsc: block_mask has ", mask.size, " bytes, expected ", (nblocks + 7) / 8, " for ", nblocks, " bits");
  }
  if (!PaddingBitsZero(mask, nblocks)) return Fail("lsc: block_mask has non-zero padding bits");
  std::vector<uint64_t> chunk_first_block{0};
  chunk_first_block.reserve(nchunks + 1);
  for (uint64_t k = 0; k < nchunks; ++k) {
    const uint64_t first = k * per_chunk, last = std::min(first + per_chunk, nblocks);
    chunk_first_block.push_back(chunk_first_block.back() + PopCount(mask.data, first, last));
  }

  const uint8_t* table = blob.sections[1].data;
  if (LoadU64(table) != 0 || LoadU64(table + 8) != 0) return Fail("lsc: chunk table must start at (0, 0)");
  for (uint64_t k = 0; k <= nchunks; ++k) {
    const uint64_t codes = LoadU64(table + 16 * k), values = LoadU64(table + 16 * k + 8);
    if (codes >= (uint64_t{1} << 62) || values >= (uint64_t{1} << 62)) return Fail("lsc: chunk table is not monotone");
    if (k > 0 && (codes < LoadU64(table + 16 * (k - 1)) || values < LoadU64(table + 16 * (k - 1) + 8))) {
      return Fail("lsc: chunk table is not monotone");
    }
  }
  const uint64_t ncodes = LoadU64(table + 16 * nchunks), nvalues = LoadU64(table + 16 * nchunks + 8);
  LSC_RETURN_IF_ERROR(ExpectCount(blob, 3, blob.itemsize(), nvalues, "values"));
  const Section& codes = blob.sections[2];
  if (p.width == 0) {
    if (ncodes != 0 || codes.size != 0) return Fail("lsc: codes present without a coding layer");
    int64_t bsize = 0, stored = 0;
    LSC_RETURN_IF_ERROR(CheckedMul(p.br, p.bc, &bsize, "lsc: the block size"));
    LSC_RETURN_IF_ERROR(CheckedMul(static_cast<int64_t>(chunk_first_block.back()), bsize, &stored,
                                   "lsc: the stored element count"));
    for (uint64_t k = 0; k <= nchunks; ++k) {
      if (LoadU64(table + 16 * k + 8) != chunk_first_block[k] * static_cast<uint64_t>(bsize)) {
        return Fail("lsc: chunk ", k, " value offset does not match the kept blocks");
      }
    }
  } else {
    if (ncodes > codes.size * 8) return Fail("lsc: codes has ", codes.size, " bytes, too few for ", ncodes, " codes");
    const uint64_t expected = (ncodes * static_cast<uint64_t>(p.width) + 7) / 8;  // ncodes < 8 * size
    if (codes.size != expected) {
      return Fail("lsc: codes has ", codes.size, " bytes, expected ", expected, " (", ncodes, " codes of ", p.width,
                  " bits)");
    }
    if (!PaddingBitsZero(codes, ncodes * p.width)) return Fail("lsc: codes has non-zero padding bits after the last code");
  }
  decoder->reset(new LscDecoder(blob, p, std::move(chunk_first_block)));
  return Status();
}

}  // namespace lsc
