// Helpers shared by the op kernels: errors naming the node, attributes, the constant weight
// input, and onnxruntime's intra-op thread pool.
#pragma once

#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <type_traits>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/status.h"
#include "kernels/views.h"
#include "onnxruntime_cxx_api.h"
#include "ops/packed_weight.h"

namespace lsc {

// "[LSCMatMul] node 'fc1': <message>" as an onnxruntime status.
OrtStatusPtr MakeStatus(const std::string& op, const std::string& node, const std::string& message);

std::string NodeName(const Ort::ConstKernelInfo& info);

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

// Per-thread scratch buffers (ThreadScratch below) are kept for reuse up to this size; larger
// ones are released when the scope that used them ends: the Compute call (GuardedCompute) or
// the ParallelFor batch. A large batch or image leaves no memory behind.
constexpr size_t kKeepScratchBytes = size_t{16} << 20;

// Marks the scratch a thread uses from its construction on; its destructor releases the buffers
// above kKeepScratchBytes used in the scope (and in scopes nested in it).
class ScratchScope {
 public:
  ScratchScope();
  ~ScratchScope();
  ScratchScope(const ScratchScope&) = delete;
  ScratchScope& operator=(const ScratchScope&) = delete;
};

// A 64-byte-aligned buffer per thread and slot (contents undefined), reused across calls. Throws
// std::length_error naming the size when it exceeds the memory budget (common/memory.h).
void* ThreadScratchBytes(size_t slot, size_t bytes);
template <typename T = float>
T* ThreadScratch(size_t slot, size_t count) {
  if (count > SIZE_MAX / sizeof(T)) throw std::length_error("scratch buffer size overflows");
  return static_cast<T*>(ThreadScratchBytes(slot, count * sizeof(T)));
}

// Runs fn(i) for i in [0, total) on onnxruntime's intra-op pool, whose size is the session's
// intra_op_num_threads, in ParallelBatches(total) contiguous batches. An exception thrown by fn
// stops its batch and becomes the returned Status.
template <typename Fn>
Status ParallelFor(OrtKernelContext* context, size_t total, Fn&& fn) {
  if (total == 0) return Status();
  if (total == 1) {
    fn(size_t{0});
    return Status();
  }
  struct Shared {
    Shared(std::remove_reference_t<Fn>* f, size_t n, size_t b) : fn(f), total(n), batches(b) {}
    std::remove_reference_t<Fn>* fn;
    size_t total, batches;
    std::atomic<bool> failed{false};
    std::mutex mutex;
    std::string error;
  } shared(&fn, total, ParallelBatches(total));
  auto trampoline = [](void* data, size_t batch) {
    Shared& s = *static_cast<Shared*>(data);
    const size_t begin = batch * s.total / s.batches, end = (batch + 1) * s.total / s.batches;
    ScratchScope scope;
    try {
      for (size_t i = begin; i < end && !s.failed.load(std::memory_order_relaxed); ++i) (*s.fn)(i);
    } catch (const std::exception& e) {
      std::lock_guard<std::mutex> lock(s.mutex);
      if (!s.failed.exchange(true)) s.error = e.what();
    } catch (...) {
      std::lock_guard<std::mutex> lock(s.mutex);
      if (!s.failed.exchange(true)) s.error = "unknown exception";
    }
  };
  OrtStatus* status =
      Ort::GetApi().KernelContext_ParallelFor(context, trampoline, shared.batches, shared.batches, &shared);
  if (status != nullptr) {
    std::string message = Ort::GetApi().GetErrorMessage(status);
    Ort::GetApi().ReleaseStatus(status);
    return Fail("thread pool: ", message);
  }
  if (shared.failed) return Fail(shared.error);
  return Status();
}

// Reads optional input `index` (a bias of `length` floats, float32 or float16); `*bias` stays null
// when the input is absent. `buffer` keeps converted float16 values alive.
Status ReadBias(Ort::KernelContext& context, size_t index, int64_t length, const char* name,
                std::vector<float>* buffer, const float** bias);

// The optional float input `index`, float32 or float16 (widened into the thread's scratch slot
// `scratch`), and its shape; null (and the shape untouched) when absent.
Status ReadFloatInput(Ort::KernelContext& context, size_t index, size_t scratch, const float** data,
                      std::vector<int64_t>* shape);

// The optional residual input `index` (Z) as ReadFloatInput reads it, of exactly Y's shape.
Status ReadResidual(Ort::KernelContext& context, size_t index, const std::vector<int64_t>& y_shape, size_t scratch,
                    const float** residual);

// ONNX multidirectional broadcasting: the shape `a` and `b` broadcast to, or false when a pair of
// dims differs and neither is 1.
bool BroadcastShapes(const std::vector<int64_t>& a, const std::vector<int64_t>& b, std::vector<int64_t>* out);

// out[i] = relu(from[i] + residual[i]) for i < count, the residual and ReLU optional (NaN stays
// NaN); a copy when there is neither. `out` may be `from`.
void StoreResidualAndRelu(const float* from, const float* residual, bool relu, float* out, int64_t count);

// The ops' last pass when the product could not apply it: y[i] = activation(y[i] + residual[i])
// for i < count, the residual optional, the activation ReLU (NaN stays NaN) or, when `gelu` is
// given, Gelu.
void AddResidualAndActivate(const float* residual, bool relu, GeluFn gelu, float* y, int64_t count);

// Runs a kernel's Compute, turning its Status or any exception into an onnxruntime status that
// names the op and node.
template <typename Kernel>
OrtStatusPtr GuardedCompute(Kernel& kernel, OrtKernelContext* context) {
  try {
    ScratchScope scope;
    Status status = kernel.Compute(context);
    return status.ok() ? nullptr : MakeStatus(Kernel::kOpName, kernel.node(), status.message());
  } catch (const std::exception& e) {
    return MakeStatus(Kernel::kOpName, kernel.node(), e.what());
  }
}

// Creates and initializes a kernel instance for CreateKernelV2, turning a failed Init() or any
// exception into an onnxruntime status that names the op and node.
template <typename Kernel>
OrtStatusPtr CreateGuardedKernel(const OrtKernelInfo* info, void** kernel) {
  std::unique_ptr<Kernel> instance;
  try {
    instance = std::make_unique<Kernel>(info);
    Status status = instance->Init(info);
    if (!status.ok()) return MakeStatus(Kernel::kOpName, instance->node(), status.message());
  } catch (const std::exception& e) {
    return MakeStatus(Kernel::kOpName, instance ? instance->node() : "?", e.what());
  }
  *kernel = instance.release();
  return nullptr;
}

// The custom-op definition shared by the lsc-ort ops: inputs (activations, uint8 weight blob,
// then optional ones: bias, and for LSCConv a residual), one output, all of the element type
// given at registration. The kernel class provides kOpName, kInputCount, a constructor from
// OrtKernelInfo, Init() and Compute().
template <typename Kernel>
class LscOp : public Ort::CustomOpBase<LscOp<Kernel>, Kernel, true> {
 public:
  explicit LscOp(ONNXTensorElementDataType type) : type_(type) {
    if constexpr (Kernel::kInplaceInput >= 0) {
      OrtCustomOp::GetMayInplace = &MayInplace;
      OrtCustomOp::ReleaseMayInplace = &ReleaseMayInplace;
    }
  }

  OrtStatusPtr CreateKernelV2(const OrtApi&, const OrtKernelInfo* info, void** kernel) const {
    return CreateGuardedKernel<Kernel>(info, kernel);
  }
  const char* GetName() const { return Kernel::kOpName; }
  size_t GetInputTypeCount() const { return Kernel::kInputCount; }
  ONNXTensorElementDataType GetInputType(size_t index) const {
    return index == 1 ? ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8 : type_;
  }
  OrtCustomOpInputOutputCharacteristic GetInputCharacteristic(size_t index) const {
    return index >= 2 ? INPUT_OUTPUT_OPTIONAL : INPUT_OUTPUT_REQUIRED;
  }
  size_t GetOutputTypeCount() const { return 1; }
  ONNXTensorElementDataType GetOutputType(size_t) const { return type_; }

 private:
  // Output 0 may take the buffer of input Kernel::kInplaceInput (the residual Z) when nothing
  // reads Z afterwards: onnxruntime's planner decides, the kernel then sees Y == Z. The pair
  // lives in static storage (nothing to allocate, nothing to throw), so releasing it is a no-op.
  static size_t ORT_API_CALL MayInplace(int** input_index, int** output_index) {
    static int input[1] = {static_cast<int>(Kernel::kInplaceInput)};
    static int output[1] = {0};
    *input_index = input;
    *output_index = output;
    return 1;
  }
  static void ORT_API_CALL ReleaseMayInplace(int*, int*) {}

  ONNXTensorElementDataType type_;
};

// float16 <-> float32 conversion of whole buffers.
void HalfToFloat(const Ort::Float16_t* in, float* out, size_t count);
void FloatToHalf(const float* in, Ort::Float16_t* out, size_t count);

}  // namespace lsc
