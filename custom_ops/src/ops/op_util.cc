#include "ops/op_util.h"

#include <algorithm>
#include <cstdlib>
#include <new>
#include <thread>

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

void* ThreadScratchBytes(size_t slot, size_t bytes) {
  struct Buffer {
    std::unique_ptr<unsigned char, void (*)(void*)> data{nullptr, std::free};
    size_t size = 0;
  };
  thread_local std::vector<Buffer> buffers;
  if (buffers.size() <= slot) buffers.resize(slot + 1);
  Buffer& buffer = buffers[slot];
  if (buffer.size < bytes) {
    const size_t size = (bytes + 63) / 64 * 64;
    void* memory = std::aligned_alloc(64, size);
    if (memory == nullptr) throw std::bad_alloc();
    buffer.data.reset(static_cast<unsigned char*>(memory));
    buffer.size = size;
  }
  return buffer.data.get();
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

void HalfToFloat(const Ort::Float16_t* in, float* out, size_t count) {
  for (size_t i = 0; i < count; ++i) out[i] = in[i].ToFloat();
}

void FloatToHalf(const float* in, Ort::Float16_t* out, size_t count) {
  for (size_t i = 0; i < count; ++i) out[i] = Ort::Float16_t(in[i]);
}

}  // namespace lsc

namespace lsc {

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

}  // namespace lsc
