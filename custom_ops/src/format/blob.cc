#include "format/blob.h"

#include <cmath>
#include <cstring>

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

int64_t Blob::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

int64_t Blob::rows() const {
  if (shape.size() < 2) return 1;
  return shape[0];
}

int64_t Blob::cols() const {
  if (shape.empty()) return 1;
  if (shape.size() == 1) return shape[0];
  int64_t n = 1;
  for (size_t i = 1; i < shape.size(); ++i) n *= shape[i];
  return n;
}

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
  uint64_t numel = 1;
  bool overflow = false;
  for (int i = 0; i < ndim; ++i) {
    const uint64_t d = Load<uint64_t>(data + kFixedHeader + 8 * i);
    if (d >= (1ull << 62)) overflow = true;
    if (d != 0 && numel > ((1ull << 62) - 1) / d) overflow = true;
    if (!overflow) numel *= d;
    out.shape.push_back(static_cast<int64_t>(d));
  }
  if (overflow) return Fail("shape has too many elements");
  // A zero dimension makes numel 0 even after an overflowing product of the others.
  for (int64_t d : out.shape) if (d == 0) numel = 0;
  if (nnz > numel) return Fail("nnz ", nnz, " exceeds the element count ", numel);
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
