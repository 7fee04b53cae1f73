#include "ops/op_util.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <thread>

#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#endif

#include "common/memory.h"

namespace lsc {

OrtStatusPtr MakeStatus(const std::string& op, const std::string& node, const std::string& message) {
  const std::string text = "[" + op + "] node '" + node + "': " + message;
  return Ort::GetApi().CreateStatus(ORT_INVALID_ARGUMENT, text.c_str());
}

std::string NodeName(const Ort::ConstKernelInfo& info) {
  try {
    return info.GetNodeName();
  } catch (const Ort::Exception&) {
    return "?";
  }
}

float AttributeOr(const Ort::ConstKernelInfo& info, const char* name, float fallback) {
  float value = fallback;
  OrtStatus* status = Ort::GetApi().KernelInfoGetAttribute_float(info, name, &value);
  if (status != nullptr) {
    Ort::GetApi().ReleaseStatus(status);
    return fallback;
  }
  return value;
}

int64_t AttributeOr(const Ort::ConstKernelInfo& info, const char* name, int64_t fallback) {
  int64_t value = fallback;
  OrtStatus* status = Ort::GetApi().KernelInfoGetAttribute_int64(info, name, &value);
  if (status != nullptr) {
    Ort::GetApi().ReleaseStatus(status);
    return fallback;
  }
  return value;
}

std::string AttributeOr(const Ort::ConstKernelInfo& info, const char* name, const std::string& fallback) {
  size_t size = 0;
  OrtStatus* status = Ort::GetApi().KernelInfoGetAttribute_string(info, name, nullptr, &size);
  if (status != nullptr) {
    Ort::GetApi().ReleaseStatus(status);
    return fallback;
  }
  std::string value(size, '\0');
  status = Ort::GetApi().KernelInfoGetAttribute_string(info, name, &value[0], &size);
  if (status != nullptr) {
    Ort::GetApi().ReleaseStatus(status);
    return fallback;
  }
  value.resize(size > 0 ? size - 1 : 0);  // size counts the terminating NUL
  return value;
}

std::vector<int64_t> AttributeOr(const Ort::ConstKernelInfo& info, const char* name,
                                 const std::vector<int64_t>& fallback) {
  size_t size = 0;
  OrtStatus* status = Ort::GetApi().KernelInfoGetAttributeArray_int64(info, name, nullptr, &size);
  if (status != nullptr) {
    Ort::GetApi().ReleaseStatus(status);
    return fallback;
  }
  std::vector<int64_t> value(size);
  if (size > 0) {
    status = Ort::GetApi().KernelInfoGetAttributeArray_int64(info, name, value.data(), &size);
    if (status != nullptr) {
      Ort::GetApi().ReleaseStatus(status);
      return fallback;
    }
  }
  return value;
}

Status LoadWeight(const Ort::ConstValue& value, bool k_is_row, std::shared_ptr<PackedWeight>* weight) {
  const auto type_shape = value.GetTensorTypeAndShapeInfo();
  if (type_shape.GetElementType() != ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8) {
    return Fail("the weight input must be a uint8 tensor holding an lsc-ort blob");
  }
  const size_t size = type_shape.GetElementCount();
  const uint8_t* data = size ? value.GetTensorData<uint8_t>() : nullptr;
  Status status = PackedWeight::Create(data, size, k_is_row, weight);
  if (!status.ok()) return Fail("invalid weight blob: ", status.message());
  return Status();
}

Status LoadConstantWeight(const Ort::ConstKernelInfo& info, size_t index, bool k_is_row,
                          std::shared_ptr<PackedWeight>* weight) {
  int is_constant = 0;
  Ort::ConstValue value = info.GetTensorConstantInput(index, &is_constant);
  if (!is_constant) return Status();
  return LoadWeight(value, k_is_row, weight);
}

size_t ParallelBatches(size_t total) {
  static const size_t cores = std::max(1u, std::thread::hardware_concurrency());
  return std::min(total, 2 * cores);
}

namespace {

// One thread's scratch buffers. Large ones are mapped pages, so releasing them returns the
// memory to the system at once.
struct ScratchBuffer {
  void* data = nullptr;
  size_t size = 0;
  int depth = 0;  // the innermost ScratchScope that used it
};

void FreeBuffer(ScratchBuffer& buffer) {
  if (buffer.data == nullptr) return;
#if defined(__unix__) || defined(__APPLE__)
  if (buffer.size > kKeepScratchBytes) {
    munmap(buffer.data, buffer.size);
  } else {
    std::free(buffer.data);
  }
#else
  std::free(buffer.data);
#endif
  buffer.data = nullptr;
  buffer.size = 0;
}

void* AllocateBuffer(size_t size) {
#if defined(__unix__) || defined(__APPLE__)
  if (size > kKeepScratchBytes) {
    void* memory = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return memory == MAP_FAILED ? nullptr : memory;
  }
#endif
  return std::aligned_alloc(64, size);
}

struct ThreadScratchState {
  std::vector<ScratchBuffer> buffers;
  int depth = 0;
  ~ThreadScratchState() {
    for (ScratchBuffer& buffer : buffers) FreeBuffer(buffer);
  }
};

ThreadScratchState& Scratch() {
  thread_local ThreadScratchState state;
  return state;
}

}  // namespace

ScratchScope::ScratchScope() { ++Scratch().depth; }

ScratchScope::~ScratchScope() {
  ThreadScratchState& state = Scratch();
  for (ScratchBuffer& buffer : state.buffers) {
    if (buffer.size > kKeepScratchBytes && buffer.depth >= state.depth) FreeBuffer(buffer);
  }
  --state.depth;
}

void* ThreadScratchBytes(size_t slot, size_t bytes) {
  if (bytes > MemoryBudget()) {
    throw std::length_error(StrCat("a scratch buffer of ", (bytes + (1 << 20) - 1) >> 20, " MiB exceeds the memory budget of ",
                                   MemoryBudget() >> 20, " MiB"));
  }
  ThreadScratchState& state = Scratch();
  if (state.buffers.size() <= slot) state.buffers.resize(slot + 1);
  ScratchBuffer& buffer = state.buffers[slot];
  buffer.depth = state.depth;
  if (buffer.size < bytes) {
    FreeBuffer(buffer);
    const size_t size = (bytes + 63) / 64 * 64;
    void* memory = AllocateBuffer(size);
    if (memory == nullptr) {
      throw std::length_error(StrCat("cannot allocate a scratch buffer of ", bytes >> 20, " MiB"));
    }
    buffer.data = memory;
    buffer.size = size;
  }
  return buffer.data;
}

Status ReadBias(Ort::KernelContext& context, size_t index, int64_t length, const char* name,
                std::vector<float>* buffer, const float** bias) {
  *bias = nullptr;
  if (context.GetInputCount() <= index) return Status();
  Ort::ConstValue value = context.GetInput(index);
  if (!value) return Status();
  const auto info = value.GetTensorTypeAndShapeInfo();
  if (info.GetShape() != std::vector<int64_t>{length}) {
    return Fail(name, " has shape ", ShapeString(info.GetShape()), ", expected [", length, "]");
  }
  if (info.GetElementType() == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16) {
    buffer->resize(static_cast<size_t>(length));
    HalfToFloat(value.GetTensorData<Ort::Float16_t>(), buffer->data(), buffer->size());
    *bias = buffer->data();
  } else {
    *bias = value.GetTensorData<float>();
  }
  return Status();
}

Status ReadFloatInput(Ort::KernelContext& context, size_t index, size_t scratch, const float** data,
                      std::vector<int64_t>* shape) {
  *data = nullptr;
  if (context.GetInputCount() <= index) return Status();
  Ort::ConstValue value = context.GetInput(index);
  if (!value) return Status();
  const auto info = value.GetTensorTypeAndShapeInfo();
  *shape = info.GetShape();
  if (info.GetElementType() == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16) {
    const size_t count = info.GetElementCount();
    float* widened = ThreadScratch(scratch, count);
    HalfToFloat(value.GetTensorData<Ort::Float16_t>(), widened, count);
    *data = widened;
  } else {
    *data = value.GetTensorData<float>();
  }
  return Status();
}

Status ReadResidual(Ort::KernelContext& context, size_t index, const std::vector<int64_t>& y_shape, size_t scratch,
                    const float** residual) {
  std::vector<int64_t> shape;
  LSC_RETURN_IF_ERROR(ReadFloatInput(context, index, scratch, residual, &shape));
  if (*residual != nullptr && shape != y_shape) {
    return Fail("Z has shape ", ShapeString(shape), " but Y has shape ", ShapeString(y_shape),
                "; the residual must have Y's shape");
  }
  return Status();
}

bool BroadcastShapes(const std::vector<int64_t>& a, const std::vector<int64_t>& b, std::vector<int64_t>* out) {
  const size_t rank = std::max(a.size(), b.size());
  out->assign(rank, 1);
  for (size_t i = 0; i < rank; ++i) {  // from the last dim
    const int64_t x = i < a.size() ? a[a.size() - 1 - i] : 1, y = i < b.size() ? b[b.size() - 1 - i] : 1;
    if (x != y && x != 1 && y != 1) return false;
    (*out)[rank - 1 - i] = x == 1 ? y : x;
  }
  return true;
}

void StoreResidualAndRelu(const float* from, const float* residual, bool relu, float* out, int64_t count) {
  if (residual == nullptr && !relu) {
    if (out != from) std::memcpy(out, from, static_cast<size_t>(count) * sizeof(float));
    return;
  }
  for (int64_t i = 0; i < count; ++i) {
    const float value = from[i] + (residual != nullptr ? residual[i] : 0.0f);
    out[i] = relu && value < 0.0f ? 0.0f : value;  // NaN stays NaN
  }
}

void AddResidualAndActivate(const float* residual, bool relu, GeluFn gelu, float* y, int64_t count) {
  StoreResidualAndRelu(y, residual, relu, y, count);
  if (gelu != nullptr) gelu(y, count);
}

void HalfToFloat(const Ort::Float16_t* in, float* out, size_t count) {
  for (size_t i = 0; i < count; ++i) out[i] = in[i].ToFloat();
}

void FloatToHalf(const float* in, Ort::Float16_t* out, size_t count) {
  for (size_t i = 0; i < count; ++i) out[i] = Ort::Float16_t(in[i]);
}

}  // namespace lsc
