#include "format/decoder.h"

#include "format/codecs/codecs.h"

namespace lsc {

Status CreateDecoder(const Blob& blob, std::unique_ptr<MatrixDecoder>* decoder) {
  // One line per codec.
  switch (blob.codec) {
    case CodecId::kDense: return CreateDenseDecoder(blob, decoder);
    case CodecId::kCsr: return CreateCsrDecoder(blob, decoder);
    case CodecId::kRelidx: return CreateRelidxDecoder(blob, decoder);
    case CodecId::kBitmap: return CreateBitmapDecoder(blob, decoder);
    case CodecId::kBsr: return CreateBsrDecoder(blob, decoder);
    case CodecId::kLsc: return CreateLscDecoder(blob, decoder);
    case CodecId::kF2f: return CreateF2fDecoder(blob, decoder);
    case CodecId::kMswu: return CreateMswuDecoder(blob, decoder);
  }
  return Fail("unknown codec id ", int(blob.codec));
}

Status SectionCount(const Blob& blob, size_t index, size_t element_size, const char* name, uint64_t* count) {
  const uint64_t size = blob.sections[index].size;
  if (size % element_size) {
    return Fail(CodecName(blob.codec), ": ", name, " section has ", size, " bytes, not a multiple of ",
                element_size);
  }
  *count = size / element_size;
  return Status();
}

Status ExpectCount(const Blob& blob, size_t index, size_t element_size, uint64_t expected, const char* name) {
  uint64_t count = 0;
  LSC_RETURN_IF_ERROR(SectionCount(blob, index, element_size, name, &count));
  if (count != expected) {
    return Fail(CodecName(blob.codec), ": ", name, " section has ", count, " elements, expected ", expected);
  }
  return Status();
}

Status ExpectLayout(const Blob& blob, size_t nparams, size_t nsections) {
  if (blob.params.size() != nparams) {
    return Fail(CodecName(blob.codec), ": header has ", blob.params.size(), " params, expected ", nparams);
  }
  if (blob.sections.size() != nsections) {
    return Fail(CodecName(blob.codec), ": blob has ", blob.sections.size(), " sections, expected ", nsections);
  }
  return Status();
}

Status Param(const Blob& blob, size_t index, int64_t low, int64_t high, const char* name, int64_t* value) {
  const int64_t v = blob.params[index];
  if (v < low || v > high) {
    return Fail(CodecName(blob.codec), ": param ", name, "=", v, " is out of range [", low, ", ", high, "]");
  }
  *value = v;
  return Status();
}

Status CheckIndptr(const Blob& blob, const Section& indptr, uint64_t rows, uint64_t nindices, const char* what) {
  const int64_t first = LoadI32(indptr.data);
  const int64_t last = LoadI32(indptr.data + 4 * rows);
  if (first != 0 || last < 0 || static_cast<uint64_t>(last) != nindices) {
    return Fail(CodecName(blob.codec), ": ", what, ": index pointer runs from ", first, " to ", last,
                ", expected 0 to ", nindices);
  }
  for (uint64_t r = 0; r < rows; ++r) {
    if (LoadI32(indptr.data + 4 * (r + 1)) < LoadI32(indptr.data + 4 * r)) {
      return Fail(CodecName(blob.codec), ": ", what, ": index pointer is not monotone at row ", r);
    }
  }
  return Status();
}

bool PaddingBitsZero(const Section& section, uint64_t count) {
  const uint64_t total = section.size * 8;
  for (uint64_t bit = count; bit < total; ++bit) {
    if ((section.data[bit >> 3] >> (bit & 7)) & 1) return false;
  }
  return true;
}

uint64_t PopCount(const uint8_t* bits, uint64_t begin, uint64_t end) {
  uint64_t count = 0;
  while (begin < end && (begin & 63)) {
    count += (bits[begin >> 3] >> (begin & 7)) & 1;
    ++begin;
  }
  while (begin + 64 <= end) {
    count += static_cast<uint64_t>(__builtin_popcountll(LoadU64(bits + (begin >> 3))));
    begin += 64;
  }
  while (begin < end) {
    count += (bits[begin >> 3] >> (begin & 7)) & 1;
    ++begin;
  }
  return count;
}

}  // namespace lsc
