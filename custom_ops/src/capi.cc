// A small C API over the blob reader, used by the Python tests (ctypes) to check that the native
// reader accepts, rejects and decodes exactly what the Python codecs write.
#include <cstdio>
#include <cstring>
#include <exception>

#include "common/checked.h"
#include "common/export.h"
#include "encode/f2f_encoder.h"
#include "format/blob.h"
#include "format/decoder.h"
#include "kernels/kernels.h"
#include "kernels/unified_layout.h"
#include "ops/lsc_conv.h"
#include "format/codecs/mswu.h"

namespace {

int Report(const lsc::Status& status, char* err, size_t err_size) {
  if (status.ok()) return 0;
  if (err != nullptr && err_size > 0) std::snprintf(err, err_size, "%s", status.message().c_str());
  return 1;
}

template <typename Sink>
lsc::Status DecodeBlob(const uint8_t* data, size_t size, Sink&& sink, lsc::Blob* blob) {
  LSC_RETURN_IF_ERROR(lsc::ParseBlob(data, size, blob));
  std::unique_ptr<lsc::MatrixDecoder> decoder;
  LSC_RETURN_IF_ERROR(lsc::CreateDecoder(*blob, &decoder));
  return lsc::DecodeAll(*decoder, sink);
}

}  // namespace

extern "C" {

LSC_EXPORT const char* lsc_version(void) { return LSC_ORT_VERSION; }

// Name of the kernel variant new op instances use now (honours LSC_ORT_ISA).
LSC_EXPORT const char* lsc_kernel_name(void) { return lsc::SelectKernels().name; }

// LSCConv runs so far in this process whose output shared the residual's buffer.
LSC_EXPORT uint64_t lsc_conv_runs_with_residual_in_place(void) { return lsc::ConvRunsWithResidualInPlace(); }

// Fully validates a blob (container, codec layout, every chunk, the non-zero count).
// Returns 0, or 1 with a message in `err`.
LSC_EXPORT int lsc_blob_validate(const uint8_t* data, size_t size, uint64_t* nnz, char* err, size_t err_size) {
  try {
    lsc::Blob blob;
    uint64_t count = 0;
    lsc::Status status = DecodeBlob(data, size, [&](const std::vector<lsc::Entry>& e) { count += e.size(); }, &blob);
    if (status.ok() && nnz != nullptr) *nnz = count;
    return Report(status, err, err_size);
  } catch (const std::exception& e) {
    return Report(lsc::Fail("internal error: ", e.what()), err, err_size);
  }
}

// Decodes a blob into `out` (numel x itemsize bytes of raw bit patterns, C order).
LSC_EXPORT int lsc_blob_decode(const uint8_t* data, size_t size, uint8_t* out, size_t out_size, char* err,
                               size_t err_size) {
  try {
    lsc::Blob blob;
    lsc::Status status = lsc::ParseBlob(data, size, &blob);
    int64_t needed = 0;
    if (status.ok()) {
      status = lsc::CheckedMul(blob.numel(), static_cast<int64_t>(blob.itemsize()), &needed, "the decoded tensor");
    }
    if (status.ok() && static_cast<uint64_t>(out_size) != static_cast<uint64_t>(needed)) {
      status = lsc::Fail("output buffer has ", out_size, " bytes, the tensor needs ", needed);
    }
    if (status.ok()) {
      std::memset(out, 0, out_size);
      const int64_t cols = blob.cols();
      const size_t item = blob.itemsize();
      status = DecodeBlob(data, size, [&](const std::vector<lsc::Entry>& entries) {
        for (const lsc::Entry& e : entries) std::memcpy(out + (e.row * cols + e.col) * item, &e.bits, item);
      }, &blob);
    }
    return Report(status, err, err_size);
  } catch (const std::exception& e) {
    return Report(lsc::Fail("internal error: ", e.what()), err, err_size);
  }
}

// Encodes the values of an f2f blob (see encode/f2f_encoder.h): fills `inputs` and the per-slot
// `misses` masks (bits to patch). Returns 0, or 1 with a message in `err`.
LSC_EXPORT int lsc_f2f_encode(const uint64_t* positions, const uint32_t* values, uint64_t nslots, uint64_t numel,
                              int bits, int n_in, int n_out, int n_s, uint64_t seed, uint64_t segment_blocks,
                              uint32_t planes, int threads, uint8_t* inputs, uint64_t inputs_size, uint32_t* misses,
                              char* err, size_t err_size) {
  try {
    lsc::F2fEncodeRequest request;
    request.positions = positions;
    request.values = values;
    request.nslots = nslots;
    request.numel = numel;
    request.bits = bits;
    request.n_in = n_in;
    request.n_out = n_out;
    request.n_s = n_s;
    request.seed = seed;
    request.segment_blocks = segment_blocks;
    request.planes = planes;
    request.threads = threads;
    return Report(lsc::F2fEncode(request, inputs, inputs_size, misses), err, err_size);
  } catch (const std::exception& e) {
    return Report(lsc::Fail("internal error: ", e.what()), err, err_size);
  }
}

// The execution layout a blob gets (k_is_row as LSCMatMul with transB = 0): out[0] plain
// non-zeros, out[1] signed sums, out[2] unified entries (one multiply each), out[3] unified blocks.
LSC_EXPORT int lsc_layout_stats(const uint8_t* data, size_t size, int k_is_row, uint64_t* out, char* err,
                                size_t err_size) {
  try {
    lsc::Blob blob;
    lsc::Status status = lsc::ParseBlob(data, size, &blob);
    std::unique_ptr<lsc::MatrixDecoder> decoder;
    if (status.ok()) status = lsc::CreateDecoder(blob, &decoder);
    lsc::ColumnLists plain;
    std::unique_ptr<lsc::UnifiedLayout> unified;
    if (status.ok()) {
      status = blob.codec == lsc::CodecId::kMswu
                   ? lsc::BuildMswuLayout(static_cast<const lsc::MswuDecoder&>(*decoder), k_is_row != 0, &plain, &unified)
                   : lsc::BuildColumnLists(*decoder, k_is_row != 0, &plain);
    }
    if (status.ok()) {
      out[0] = plain.nnz();
      out[1] = unified ? static_cast<uint64_t>(unified->count()) : 0;
      out[2] = unified ? unified->columns.nnz() : 0;
      out[3] = unified ? unified->blocks : 0;
    }
    return Report(status, err, err_size);
  } catch (const std::exception& e) {
    return Report(lsc::Fail("internal error: ", e.what()), err, err_size);
  }
}

}  // extern "C"
