// mswu: micro-structured weight unification — pruned / unified / free blocks.
// Params: block_rows, block_cols, free_coding. Sections: block_mask, unified_mask, magnitudes,
// signs, free_mask, free_values. Spec: lsc_ort/codecs/mswu.py.
#include "format/codecs/mswu.h"

#include <algorithm>

#include "format/codecs/codecs.h"

namespace lsc {
namespace {

enum SectionIndex { kBlockMask, kUnifiedMask, kMagnitudes, kSigns, kFreeMask, kFreeValues };
enum Start { kKept, kUnified, kFree, kFreeValue, kStarts };

// Blocks per chunk: about 64 Ki elements, and at least 64 blocks, so the chunk table stays
// small next to the block mask.
constexpr uint64_t kChunkElements = uint64_t{1} << 16;
constexpr uint64_t kMinChunkBlocks = 64;

// The checked product of two counts (common/checked.h): false at 2^62 or more.
bool Mul(uint64_t a, uint64_t b, uint64_t* out) {
  int64_t product = 0;
  if (a >= static_cast<uint64_t>(kMaxExtent) || b >= static_cast<uint64_t>(kMaxExtent) ||
      !MulExtent(static_cast<int64_t>(a), static_cast<int64_t>(b), &product)) {
    return false;
  }
  *out = static_cast<uint64_t>(product);
  return true;
}

// Bytes of a packed stream of `bits` bits, without overflow.
uint64_t PackedBytes(uint64_t bits) { return bits / 8 + (bits % 8 != 0); }

Status ExpectBits(const Blob& blob, size_t index, uint64_t bits, const char* name) {
  const uint64_t expected = PackedBytes(bits);
  const Section& section = blob.sections[index];
  if (section.size != expected) {
    return Fail("mswu: ", name, " has ", section.size, " bytes, expected ", expected, " for ", bits, " bits");
  }
  if (!PaddingBitsZero(section, bits)) return Fail("mswu: ", name, " has non-zero padding bits after bit ", bits);
  return Status();
}

}  // namespace

MswuDecoder::MswuDecoder(const Blob& blob, const MswuGeometry& geometry, std::vector<uint64_t> chunk_starts)
    : MatrixDecoder(blob), g_(geometry), starts_(std::move(chunk_starts)) {}

size_t MswuDecoder::num_chunks() const { return starts_.size() / kStarts - 1; }

int64_t MswuDecoder::ValidRows(uint64_t block) const {
  return std::min<int64_t>(g_.br, g_.rows - static_cast<int64_t>(block / g_.nbc) * g_.br);
}

int64_t MswuDecoder::ValidCols(uint64_t block) const {
  return std::min<int64_t>(g_.bc, g_.cols - static_cast<int64_t>(block % g_.nbc) * g_.bc);
}

uint32_t MswuDecoder::Compose(uint32_t magnitude, bool negative) const {
  if (!negative) return magnitude;
  switch (blob_.dtype) {
    case ValueType::kFloat32: return magnitude | 0x80000000u;
    case ValueType::kFloat16: return magnitude | 0x8000u;
    case ValueType::kInt8: return static_cast<uint32_t>(-static_cast<int32_t>(magnitude)) & 0xFFu;
  }
  return magnitude;
}

Status MswuDecoder::DecodeChunkBlocks(size_t chunk, std::vector<UnifiedBlock>* unified,
                                      std::vector<Entry>* free) const {
  const uint64_t* start = starts_.data() + kStarts * chunk;
  uint64_t kept = start[kKept], unified_index = start[kUnified], free_index = start[kFree];
  uint64_t value = start[kFreeValue];
  const uint64_t value_end = start[kStarts + kFreeValue];
  const uint64_t first = chunk * g_.blocks_per_chunk;
  const uint64_t last = std::min(g_.nblocks, first + g_.blocks_per_chunk);
  const uint8_t* block_mask = blob_.sections[kBlockMask].data;
  const uint8_t* unified_mask = blob_.sections[kUnifiedMask].data;
  const uint8_t* free_mask = blob_.sections[kFreeMask].data;
  const Section& magnitudes = blob_.sections[kMagnitudes];
  const Section& values = blob_.sections[kFreeValues];
  const uint32_t top = blob_.dtype == ValueType::kFloat32 ? 0x80000000u : blob_.dtype == ValueType::kFloat16 ? 0x8000u : 0x80u;
  const int64_t bc = g_.bc;
  for (uint64_t b = first; b < last; ++b) {
    if (!((block_mask[b >> 3] >> (b & 7)) & 1)) continue;  // pruned
    const bool is_unified = (unified_mask[kept >> 3] >> (kept & 7)) & 1;
    ++kept;
    const int64_t valid_rows = ValidRows(b), valid_cols = ValidCols(b);
    const bool edge = valid_rows < g_.br || valid_cols < bc;
    if (is_unified) {
      const uint32_t magnitude = ValueBits(magnitudes, unified_index);
      if (magnitude & top) return Fail("mswu: the magnitude of unified block ", b, " has its top (sign) bit set");
      const uint64_t sign_bit = unified_index * g_.bsize;
      if (edge) {
        for (uint64_t offset = 0; offset < g_.bsize; ++offset) {
          const int64_t i = static_cast<int64_t>(offset) / bc, j = static_cast<int64_t>(offset) % bc;
          if ((i >= valid_rows || j >= valid_cols) && SignBit(sign_bit + offset)) {
            return Fail("mswu: signs has a bit set outside the matrix (edge block ", b, ")");
          }
        }
      }
      unified->push_back(UnifiedBlock{b, magnitude, sign_bit});
      ++unified_index;
      continue;
    }
    const int64_t r0 = static_cast<int64_t>(b / g_.nbc) * g_.br, c0 = static_cast<int64_t>(b % g_.nbc) * bc;
    const uint64_t base = free_index * g_.bsize;
    ++free_index;
    for (uint64_t offset = 0; offset < g_.bsize; ++offset) {
      const int64_t i = static_cast<int64_t>(offset) / bc, j = static_cast<int64_t>(offset) % bc;
      const bool inside = i < valid_rows && j < valid_cols;
      uint32_t bits = 0;
      if (g_.free_coding == 0) {
        bits = ValueBits(values, base + offset);
        if (bits && !inside) return Fail("mswu: a free value lies outside the matrix (edge block ", b, ")");
      } else {
        const uint64_t bit = base + offset;
        if (!((free_mask[bit >> 3] >> (bit & 7)) & 1)) continue;
        if (!inside) return Fail("mswu: free_mask has a bit set outside the matrix (edge block ", b, ")");
        if (value >= value_end) return Fail("mswu: chunk ", chunk, " marks more free non-zeros than it has values");
        bits = ValueBits(values, value++);
      }
      if (bits) free->push_back(Entry{r0 + i, c0 + j, bits});
    }
  }
  return Status();
}

Status MswuDecoder::DecodeChunk(size_t chunk, std::vector<Entry>* out) const {
  std::vector<UnifiedBlock> unified;
  std::vector<Entry> free;
  LSC_RETURN_IF_ERROR(DecodeChunkBlocks(chunk, &unified, &free));
  // Emit in block order (free entries are already in block order; merge the unified blocks in).
  size_t next_free = 0;
  for (const UnifiedBlock& u : unified) {
    const int64_t r0 = static_cast<int64_t>(u.block / g_.nbc) * g_.br;
    const int64_t c0 = static_cast<int64_t>(u.block % g_.nbc) * g_.bc;
    while (next_free < free.size() &&
           static_cast<uint64_t>(free[next_free].row / g_.br * g_.nbc + free[next_free].col / g_.bc) < u.block) {
      out->push_back(free[next_free++]);
    }
    const int64_t valid_rows = ValidRows(u.block), valid_cols = ValidCols(u.block);
    for (int64_t i = 0; i < valid_rows; ++i) {
      for (int64_t j = 0; j < valid_cols; ++j) {
        const uint32_t bits = Compose(u.magnitude, SignBit(u.sign_bit + static_cast<uint64_t>(i * g_.bc + j)));
        if (bits) out->push_back(Entry{r0 + i, c0 + j, bits});
      }
    }
  }
  out->insert(out->end(), free.begin() + static_cast<std::ptrdiff_t>(next_free), free.end());
  return Status();
}

Status CreateMswuDecoder(const Blob& blob, std::unique_ptr<MatrixDecoder>* decoder) {
  LSC_RETURN_IF_ERROR(ExpectLayout(blob, 3, 6));
  MswuGeometry g;
  g.rows = blob.rows();
  g.cols = blob.cols();
  int64_t coding = 0;
  LSC_RETURN_IF_ERROR(Param(blob, 0, 1, std::max<int64_t>(g.rows, 1), "block_rows", &g.br));
  LSC_RETURN_IF_ERROR(Param(blob, 1, 1, std::max<int64_t>(g.cols, 1), "block_cols", &g.bc));
  LSC_RETURN_IF_ERROR(Param(blob, 2, 0, 1, "free_coding", &coding));
  g.free_coding = static_cast<int>(coding);
  g.nbr = (g.rows + g.br - 1) / g.br;
  g.nbc = (g.cols + g.bc - 1) / g.bc;
  // nbr <= rows and nbc <= cols, so neither product can pass numel < 2^62.
  if (!Mul(static_cast<uint64_t>(g.nbr), static_cast<uint64_t>(g.nbc), &g.nblocks) ||
      !Mul(static_cast<uint64_t>(g.br), static_cast<uint64_t>(g.bc), &g.bsize)) {
    return Fail("mswu: the block grid overflows");
  }
  g.blocks_per_chunk = std::max(kMinChunkBlocks, (kChunkElements + g.bsize - 1) / g.bsize);

  LSC_RETURN_IF_ERROR(ExpectBits(blob, kBlockMask, g.nblocks, "block_mask"));
  const uint64_t nkept = PopCount(blob.sections[kBlockMask].data, 0, g.nblocks);
  LSC_RETURN_IF_ERROR(ExpectBits(blob, kUnifiedMask, nkept, "unified_mask"));
  const uint64_t nunified = PopCount(blob.sections[kUnifiedMask].data, 0, nkept);
  const uint64_t nfree = nkept - nunified;
  LSC_RETURN_IF_ERROR(ExpectCount(blob, kMagnitudes, blob.itemsize(), nunified, "magnitudes"));
  uint64_t sign_bits = 0, free_elements = 0;
  if (!Mul(nunified, g.bsize, &sign_bits) || !Mul(nfree, g.bsize, &free_elements)) {
    return Fail("mswu: ", nkept, " blocks of ", g.br, "x", g.bc, " overflow the element count");
  }
  LSC_RETURN_IF_ERROR(ExpectBits(blob, kSigns, sign_bits, "signs"));
  uint64_t nvalues = free_elements;
  if (g.free_coding == 0) {
    if (blob.sections[kFreeMask].size != 0) return Fail("mswu: free_mask must be empty when free_coding is 0");
  } else {
    LSC_RETURN_IF_ERROR(ExpectBits(blob, kFreeMask, free_elements, "free_mask"));
    nvalues = PopCount(blob.sections[kFreeMask].data, 0, free_elements);
  }
  LSC_RETURN_IF_ERROR(ExpectCount(blob, kFreeValues, blob.itemsize(), nvalues, "free_values"));

  // Where each chunk starts in every stream: O(bits / 64) with popcounts.
  const uint64_t nchunks = (g.nblocks + g.blocks_per_chunk - 1) / g.blocks_per_chunk;
  std::vector<uint64_t> starts;
  starts.reserve(kStarts * (nchunks + 1));
  uint64_t kept = 0, unified = 0, free_value = 0;
  for (uint64_t c = 0; c <= nchunks; ++c) {
    starts.insert(starts.end(), {kept, unified, kept - unified, free_value});
    if (c == nchunks) break;
    const uint64_t first = c * g.blocks_per_chunk, last = std::min(g.nblocks, first + g.blocks_per_chunk);
    const uint64_t kept_in = PopCount(blob.sections[kBlockMask].data, first, last);
    const uint64_t unified_in = PopCount(blob.sections[kUnifiedMask].data, kept, kept + kept_in);
    const uint64_t free_in = kept_in - unified_in, free_before = kept - unified;
    free_value += g.free_coding == 0 ? free_in * g.bsize
                                     : PopCount(blob.sections[kFreeMask].data, free_before * g.bsize,
                                                (free_before + free_in) * g.bsize);
    kept += kept_in;
    unified += unified_in;
  }
  decoder->reset(new MswuDecoder(blob, g, std::move(starts)));
  return Status();
}

}  // namespace lsc
