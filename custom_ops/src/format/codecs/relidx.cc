// relidx: Deep Compression relative index with filler zeros (params: bits; sections: codes, values).
#include "format/codecs/codecs.h"

namespace lsc {
namespace {

class RelidxDecoder : public MatrixDecoder {
 public:
  RelidxDecoder(const Blob& blob, int width, uint64_t entries)
      : MatrixDecoder(blob), width_(width), entries_(entries) {}

  size_t num_chunks() const override { return 1; }  // one sequential stream

  Status DecodeChunk(size_t, std::vector<Entry>* out) const override {
    const BitReader codes(blob_.sections[0].data, blob_.sections[0].size);
    const int64_t numel = blob_.numel(), cols = blob_.cols();
    int64_t position = -1;
    for (uint64_t i = 0; i < entries_; ++i) {
      position += static_cast<int64_t>(codes.Read(i * width_, width_)) + 1;
      if (position >= numel) {
        return Fail("relidx: entry position ", position, " is out of range [0, ", numel, ")");
      }
      const uint32_t bits = ValueBits(blob_.sections[1], i);
      if (bits) out->push_back(Entry{position / cols, position % cols, bits});
    }
    return Status();
  }

 private:
  int width_;
  uint64_t entries_;
};

}  // namespace

Status CreateRelidxDecoder(const Blob& blob, std::unique_ptr<MatrixDecoder>* decoder) {
  LSC_RETURN_IF_ERROR(ExpectLayout(blob, 1, 2));
  int64_t width = 0;
  uint64_t entries = 0;
  LSC_RETURN_IF_ERROR(Param(blob, 0, 1, 16, "bits", &width));
  LSC_RETURN_IF_ERROR(SectionCount(blob, 1, blob.itemsize(), "values", &entries));
  const uint64_t expected = (entries * static_cast<uint64_t>(width) + 7) / 8;
  if (blob.sections[0].size != expected) {
    return Fail("relidx: codes has ", blob.sections[0].size, " bytes, expected ", expected, " (", entries,
                " codes of ", width, " bits)");
  }
  if (!PaddingBitsZero(blob.sections[0], entries * width)) {
    return Fail("relidx: codes has non-zero padding bits after the last code");
  }
  decoder->reset(new RelidxDecoder(blob, static_cast<int>(width), entries));
  return Status();
}

}  // namespace lsc
