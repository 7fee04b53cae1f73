// The position layer of lsc: block bitmask + signed relative index (SRI) codes, in chunks. It
// says which elements of the matrix view are stored ("slots"), and is shared by the codecs that
// store those elements' values differently: lsc keeps them raw, f2f codes them with an XOR
// network. Spec: lsc_ort/codecs/lsc.py and docs/blob-format.md.
//
// The layer's params are the codec's first five: block_rows, block_cols, code_bits, split,
// chunk_block_rows; its sections the codec's first three: block_mask, chunks (u64
// [nchunks + 1][2]: code index, slot index), codes.
#pragma once

#include <algorithm>
#include <vector>

#include "format/decoder.h"

namespace lsc {

// Walks the SRI codes [begin, end) of one independently decodable stream (a chunk) and calls
// visit(position) for each gap code, positions counted from the stream start. Fails when a
// position reaches `limit`. `what` names the stream in messages ("lsc", "f2f: patches").
template <typename Visit>
Status ReadSriStream(const BitReader& codes, int width, uint64_t split, uint64_t begin, uint64_t end,
                     uint64_t limit, const char* what, size_t chunk, Visit&& visit) {
  const uint64_t top = uint64_t{1} << width;
  uint64_t next = 0;  // one past the previous position of this stream
  for (uint64_t i = begin; i < end; ++i) {
    const uint64_t code = codes.Read(i * static_cast<uint64_t>(width), width);
    if (code >= split) {  // skip code: (top - code) * split <= 2^32
      // Clamped at `limit` (never overflows): any later gap code is out of range either way.
      next = std::min(next + (top - code) * split, limit);
      continue;
    }
    const uint64_t position = next + code;
    if (position >= limit) {
      return Fail(what, ": position ", position, " in chunk ", chunk, " is out of range [0, ", limit, ")");
    }
    LSC_RETURN_IF_ERROR(visit(position));
    next = position + 1;
  }
  return Status();
}

// Checks a chunk table (section `name`, u64 [nchunks + 1][2]) in place: starts at (0, 0),
// monotone, every entry below 2^62. Messages call it "<what> table".
Status CheckChunkTable(const Blob& blob, size_t section, uint64_t nchunks, const char* name, const char* what);

class LscLayer {
 public:
  // Reads and checks the layer's params and sections (the codec's first five params and first
  // three sections). The codec checks the number of params and sections first, and its own
  // storage of the slots' values after.
  static Status Create(const Blob& blob, LscLayer* out);

  size_t num_chunks() const { return chunk_first_block_.size() - 1; }
  // Total slots, and the first slot of chunk k (from the chunk table; k == num_chunks() gives
  // the total).
  uint64_t slots() const { return SlotBegin(num_chunks()); }
  uint64_t SlotBegin(size_t k) const { return LoadU64(table_ + 16 * k + 8); }
  // Rows of the matrix view covered by chunk k: [RowBegin(k), RowEnd(k)).
  int64_t RowBegin(size_t k) const { return static_cast<int64_t>(k) * cbr_ * br_; }
  int64_t RowEnd(size_t k) const { return std::min(blob_->rows(), RowBegin(k) + cbr_ * br_); }
  // Without a coding layer (code_bits 0) every element of every kept block is a slot, edge
  // padding included; otherwise the coded positions are, and none lies in padding.
  bool whole_blocks() const { return width_ == 0; }
  int64_t block_rows() const { return br_; }

  // Calls emit(row, col, slot) for every slot of chunk k in slot order (block order, row-major
  // within a block); `slot` counts from the chunk's first slot. Validates every position.
  template <typename Emit>
  Status DecodeChunk(size_t k, Emit&& emit) const {
    const uint8_t* mask = blob_->sections[0].data;
    const uint64_t per_chunk = static_cast<uint64_t>(cbr_) * static_cast<uint64_t>(nbc_);
    const uint64_t first = k * per_chunk;
    const uint64_t last = std::min<uint64_t>(first + per_chunk, static_cast<uint64_t>(nbr_) * static_cast<uint64_t>(nbc_));
    std::vector<uint64_t> kept;
    kept.reserve(chunk_first_block_[k + 1] - chunk_first_block_[k]);
    for (uint64_t b = first; b < last; ++b) {
      if ((mask[b >> 3] >> (b & 7)) & 1) kept.push_back(b);
    }
    const uint64_t bsize = static_cast<uint64_t>(br_) * static_cast<uint64_t>(bc_);
    const uint64_t slot_begin = SlotBegin(k), slot_end = SlotBegin(k + 1);
    if (width_ == 0) {
      uint64_t slot = 0;
      for (uint64_t block : kept) {
        for (uint64_t offset = 0; offset < bsize; ++offset) {
          LSC_RETURN_IF_ERROR(emit(Row(block, offset), Col(block, offset), slot++));
        }
      }
      return Status();
    }
    const BitReader codes(blob_->sections[2].data, blob_->sections[2].size);
    const uint64_t code_begin = LoadU64(table_ + 16 * k), code_end = LoadU64(table_ + 16 * (k + 1));
    uint64_t slot = 0;
    const uint64_t nslots = slot_end - slot_begin;
    LSC_RETURN_IF_ERROR(ReadSriStream(codes, width_, static_cast<uint64_t>(split_), code_begin, code_end,
                                      kept.size() * bsize, "lsc", k, [&](uint64_t position) {
      if (slot >= nslots) return Fail("lsc: chunk ", k, " has more gap codes than values");
      const uint64_t block = kept[position / bsize], offset = position % bsize;
      const int64_t r = Row(block, offset), c = Col(block, offset);
      if (r >= blob_->rows() || c >= blob_->cols()) return Fail("lsc: a non-zero lies in the padding of an edge block");
      return emit(r, c, slot++);
    }));
    if (slot != nslots) return Fail("lsc: chunk ", k, " has fewer gap codes than values");
    return Status();
  }

 private:
  int64_t Row(uint64_t block, uint64_t offset) const {
    return static_cast<int64_t>(block) / nbc_ * br_ + static_cast<int64_t>(offset) / bc_;
  }
  int64_t Col(uint64_t block, uint64_t offset) const {
    return static_cast<int64_t>(block) % nbc_ * bc_ + static_cast<int64_t>(offset) % bc_;
  }

  const Blob* blob_ = nullptr;
  int64_t br_ = 1, bc_ = 1, nbr_ = 0, nbc_ = 0, split_ = 0, cbr_ = 1;
  int width_ = 0;
  const uint8_t* table_ = nullptr;
  std::vector<uint64_t> chunk_first_block_;  // kept blocks before each chunk, then the total
};

}  // namespace lsc
