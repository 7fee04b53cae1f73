// relidx: Deep Compression relative index with filler zeros (params: bits; sections: codes, values).
#include "format/codecs/codecs.h"

namespace lsc {
namespace {

// Entries per chunk. The stream is sequential; CreateRelidxDecoder walks it once and records
// the position before each chunk, so chunks decode independently and stay small.
constexpr uint64_t kEntriesPerChunk = uint64_t{1} << 16;

class RelidxDecoder : public MatrixDecoder {
 public:
  RelidxDecoder(const Blob& blob, int width, uint64_t entries, std::vector<int64_t> chunk_start)
      : MatrixDecoder(blob), width_(width), entries_(entries), chunk_start_(std::move(chunk_start)) {}

  size_t num_chunks() const override { return chunk_start_.size(); }

  Status DecodeChunk(size_t chunk, std::vector<Entry>* out) const override {
    const BitReader codes(blob_.sections[0].data, blob_.sections[0].size);
    const int64_t cols = blob_.cols();
    const uint64_t first = chunk * kEntriesPerChunk, last = std::min(entries_, first + kEntriesPerChunk);
    int64_t position = chunk_start_[chunk];
    for (uint64_t i = first; i < last; ++i) {
      position += static_cast<int64_t>(codes.Read(i * width_, width_)) + 1;  // checked by the factory
      const uint32_t bits = ValueBits(blob_.sections[1], i);
      if (bits) out->push_back(Entry{position / cols, position % cols, bits});
    }
    return Status();
  }

 private:
  int width_;
  uint64_t entries_;
  std::vector<int64_t> chunk_start_;  // position before the first entry of each chunk
};

}  // namespace

Status CreateRelidxDecoder(const Blob& blob, std::unique_ptr<MatrixDecoder>* decoder) {
  LSC_RETURN_IF_ERROR(ExpectLayout(blob, 1, 2));
  int64_t width = 0;
  uint64_t entries = 0;
  LSC_RETURN_IF_ERROR(Param(blob, 0, 1, 16, "bits", &width));
  LSC_RETURN_IF_ERROR(SectionCount(blob, 1, blob.itemsize(), "values", &entries));
  int64_t code_bits = 0;
  LSC_RETURN_IF_ERROR(CheckedMul(static_cast<int64_t>(entries), width, &code_bits, "relidx: codes"));
  const uint64_t expected = (static_cast<uint64_t>(code_bits) + 7) / 8;
  if (blob.sections[0].size != expected) {
    return Fail("relidx: codes has ", blob.sections[0].size, " bytes, expected ", expected, " (", entries,
                " codes of ", width, " bits)");
  }
  if (!PaddingBitsZero(blob.sections[0], static_cast<uint64_t>(code_bits))) {
    return Fail("relidx: codes has non-zero padding bits after the last code");
  }
  // One pass over the stream: every position must lie inside the tensor.
  const BitReader codes(blob.sections[0].data, blob.sections[0].size);
  const int64_t numel = blob.numel();
  std::vector<int64_t> chunk_start;
  int64_t position = -1;
  for (uint64_t i = 0; i < entries; ++i) {
    if (i % kEntriesPerChunk == 0) chunk_start.push_back(position);
    position += static_cast<int64_t>(codes.Read(i * width, static_cast<int>(width))) + 1;
    if (position >= numel) return Fail("relidx: entry position ", position, " is out of range [0, ", numel, ")");
  }
  decoder->reset(new RelidxDecoder(blob, static_cast<int>(width), entries, std::move(chunk_start)));
  return Status();
}

}  // namespace lsc
