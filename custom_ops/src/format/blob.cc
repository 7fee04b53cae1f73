#include "format/blob.h"

#include <cmath>
#include <cstring>

#include "common/checked.h"
#include "format/crc32.h"

namespace lsc {
namespace {

constexpr char kMagic[4] = {'L', 'S', 'C', 'B'};
constexpr uint16_t kVersion = 1;
constexpr size_t kFixedHeader = 40;
constexpr size_t kCrcStart = 20;
constexpr uint64_t kAlignment = 64;
constexpr int kMaxNdim = 8;

static_assert(sizeof(float) == 4, "float must be IEEE binary32");

template <typename T>
T Load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

bool LittleEndianHost() {
  const uint16_t probe = 1;
  uint8_t first;
  std::memcpy(&first, &probe, 1);
  return first == 1;
}

}  // namespace

const char* CodecName(CodecId codec) {
  switch (codec) {
    case CodecId::kDense: return "dense";
    case CodecId::kCsr: return "csr";
    case CodecId::kRelidx: return "relidx";
    case CodecId::kBitmap: return "bitmap";
    case CodecId::kBsr: return "bsr";
    case CodecId::kLsc: return "lsc";
    case CodecId::kF2f: return "f2f";
    case CodecId::kMswu: return "mswu";
  }
  return "unknown";
}

Status ParseBlob(const uint8_t* data, size_t size, Blob* blob) {
  if (!LittleEndianHost()) return Fail("lsc-ort blobs are read on little-endian hosts only");
  if (data == nullptr || size < kFixedHeader) {
    return Fail("blob is truncated: ", size, " bytes, shorter than the ", kFixedHeader, "-byte header");
  }
  if (std::memcmp(data, kMagic, 4) != 0) return Fail("bad magic: not an lsc-ort blob");
  const uint16_t version = Load<uint16_t>(data + 4);
  if (version != kVersion) {
    return Fail("unsupported blob format version ", version, "; this build reads version ", kVersion);
  }
  const uint8_t codec = data[6];
  const uint8_t dtype = data[7];
  const uint64_t total = Load<uint64_t>(data + 8);
  if (total != size) {
    return Fail("blob is ", size < total ? "truncated" : "has trailing bytes", ": header declares ", total,
                " bytes, got ", size);
  }
  const uint32_t stored_crc = Load<uint32_t>(data + 16);
  const uint32_t crc = Crc32(data + kCrcStart, size - kCrcStart);
  if (crc != stored_crc) return Fail("checksum mismatch: the blob is corrupted");
  if (dtype < 1 || dtype > 3) return Fail("unknown value dtype code ", int(dtype));
  if (std::strcmp(CodecName(static_cast<CodecId>(codec)), "unknown") == 0) return Fail("unknown codec id ", int(codec));
  const int ndim = data[20], nparams = data[21], nsections = data[22];
  const uint8_t flags = data[23];
  const uint64_t nnz = Load<uint64_t>(data + 24);
  const float scale = Load<float>(data + 32);
  const uint32_t reserved = Load<uint32_t>(data + 36);
  if (ndim > kMaxNdim) return Fail("ndim ", ndim, " exceeds the maximum ", kMaxNdim);
  if (flags != 0 || reserved != 0) return Fail("reserved header fields must be 0");
  const uint64_t table_start = kFixedHeader + 8ull * ndim + 8ull * nparams;
  const uint64_t header_end = table_start + 16ull * nsections;
  if (header_end > size) return Fail("header and section table need ", header_end, " bytes, blob has ", size);

  Blob out;
  out.codec = static_cast<CodecId>(codec);
  out.dtype = static_cast<ValueType>(dtype);
  out.total_size = total;
  out.nnz = nnz;
  out.scale = scale;
  // The product of the non-zero dims, in bytes, must be below 2^62: then the element count and
  // both sides of the matrix view are, whatever dim is 0 (and numpy can hold the shape).
  int64_t nonzero_bytes = static_cast<int64_t>(out.itemsize());
  for (int i = 0; i < ndim; ++i) {
    const uint64_t d = Load<uint64_t>(data + kFixedHeader + 8 * i);
    if (d >= static_cast<uint64_t>(kMaxExtent) ||
        (d != 0 && !MulExtent(nonzero_bytes, static_cast<int64_t>(d), &nonzero_bytes))) {
      return Fail("shape has too many elements: its non-zero dims times the item size must be below 2^62");
    }
    out.shape.push_back(static_cast<int64_t>(d));
  }
  int64_t numel = 1, cols = 1;
  for (size_t i = 0; i < out.shape.size(); ++i) {
    numel *= out.shape[i];
    if (i > 0 || out.shape.size() == 1) cols *= out.shape[i];
  }
  out.numel_ = numel;
  out.rows_ = out.shape.size() < 2 ? 1 : out.shape[0];
  out.cols_ = cols;
  if (nnz > static_cast<uint64_t>(numel)) return Fail("nnz ", nnz, " exceeds the element count ", numel);
  for (int i = 0; i < nparams; ++i) {
    out.params.push_back(Load<int64_t>(data + kFixedHeader + 8ull * ndim + 8ull * i));
  }
  if (out.dtype == ValueType::kInt8) {
    if (!std::isfinite(scale) || scale == 0.0f) return Fail("int8 scale must be finite and non-zero");
  } else if (scale != 1.0f) {
    return Fail("scale must be 1.0 for float values, got ", scale);
  }
  uint64_t previous_end = header_end;
  for (int i = 0; i < nsections; ++i) {
    const uint64_t off = Load<uint64_t>(data + table_start + 16ull * i);
    const uint64_t len = Load<uint64_t>(data + table_start + 16ull * i + 8);
    if (off % kAlignment) return Fail("section ", i, " offset ", off, " is not ", kAlignment, "-byte aligned");
    if (off < previous_end) return Fail("section ", i, " offset ", off, " overlaps the header or previous section");
    if (len > size || off > size - len) return Fail("section ", i, " runs past the blob end ", size);
    out.sections.push_back(Section{data + off, len});
    previous_end = off + len;
  }
  if (previous_end != size) return Fail("blob has ", size - previous_end, " unaccounted bytes after the last section");
  *blob = std::move(out);
  return Status();
}

}  // namespace lsc
