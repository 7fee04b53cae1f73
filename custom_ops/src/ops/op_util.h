// Helpers shared by the op kernels: errors naming the node, attributes, the constant weight
// input, and onnxruntime's intra-op thread pool.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/status.h"
#include "onnxruntime_cxx_api.h"
#include "ops/packed_weight.h"

namespace lsc {

// "[LSCMatMul] node 'fc1': <message>" as an onnxruntime status.
OrtStatusPtr MakeStatus(const std::string& op, const std::string& node, const std::string& message);

std::string NodeName(const Ort::ConstKernelInfo& info);

// "[2, 3]" style rendering of a shape for messages.
std::string ShapeString(const std::vector<int64_t>& shape);

// Attributes with their ONNX defaults when absent.
float AttributeOr(const Ort::ConstKernelInfo& info, const char* name, float fallback);
int64_t AttributeOr(const Ort::ConstKernelInfo& info, const char* name, int64_t fallback);
std::string AttributeOr(const Ort::ConstKernelInfo& info, const char* name, const std::string& fallback);
std::vector<int64_t> AttributeOr(const Ort::ConstKernelInfo& info, const char* name,
                                 const std::vector<int64_t>& fallback);

// Reads the weight blob when input `index` is a constant initializer (else leaves `weight` null).
Status LoadConstantWeight(const Ort::ConstKernelInfo& info, size_t index, bool k_is_row,
                          std::shared_ptr<PackedWeight>* weight);
// Reads the weight blob from a run-time input.
Status LoadWeight(const Ort::ConstValue& value, bool k_is_row, std::shared_ptr<PackedWeight>* weight);

// Number of contiguous batches ParallelFor splits work into: enough for every core and some
// balance, few enough to keep the pool's per-task overhead small.
size_t ParallelBatches(size_t total);

// Runs fn(i) for i in [0, total) on onnxruntime's intra-op pool, whose size is the session's
// intra_op_num_threads. fn must not throw.
template <typename Fn>
Status ParallelFor(OrtKernelContext* context, size_t total, Fn&& fn) {
  if (total == 0) return Status();
  if (total == 1) {
    fn(size_t{0});
    return Status();
  }
  auto trampoline = [](void* data, size_t i) { (*static_cast<Fn*>(data))(i); };
  OrtStatus* status =
      Ort::GetApi().KernelContext_ParallelFor(context, trampoline, total, ParallelBatches(total), &fn);
  if (status != nullptr) {
    std::string message = Ort::GetApi().GetErrorMessage(status);
    Ort::GetApi().ReleaseStatus(status);
    return Fail("thread pool: ", message);
  }
  return Status();
}

// A grow-only, 64-byte-aligned buffer per thread and slot, reused across runs.
void* ThreadScratchBytes(size_t slot, size_t bytes);
template <typename T = float>
T* ThreadScratch(size_t slot, size_t count) {
  return static_cast<T*>(ThreadScratchBytes(slot, count * sizeof(T)));
}

// float16 <-> float32 conversion of whole buffers.
void HalfToFloat(const Ort::Float16_t* in, float* out, size_t count);
void FloatToHalf(const float* in, Ort::Float16_t* out, size_t count);

}  // namespace lsc
