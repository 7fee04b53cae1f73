// LSCAttention: O = softmax(scale * Q @ K + bias) @ V per attention head (lsc_ort/ops.py), the
// scores of a block of query rows kept in the thread's cache instead of a [B, N, S, T] tensor.
#pragma once

#include <string>

#include "common/status.h"
#include "kernels/kernels.h"
#include "onnxruntime_cxx_api.h"
#include "ops/op_util.h"

namespace lsc {

class LscAttentionKernel {
 public:
  static constexpr const char* kOpName = "LSCAttention";
  static constexpr size_t kInputCount = 4;  // Q, K (transposed), V, bias
  explicit LscAttentionKernel(const OrtKernelInfo* info);
  Status Init(const OrtKernelInfo* info);
  Status Compute(OrtKernelContext* context);
  OrtStatusPtr ComputeV2(OrtKernelContext* context) { return GuardedCompute(*this, context); }
  const std::string& node() const { return node_; }

 private:
  std::string node_;
  float scale_ = 1.0f;
  const KernelSet* kernels_ = nullptr;
};

// The custom-op definition: float32 inputs Q, K, V and the optional bias, one output.
class LscAttentionOp : public Ort::CustomOpBase<LscAttentionOp, LscAttentionKernel, true> {
 public:
  explicit LscAttentionOp(ONNXTensorElementDataType type) : type_(type) {}
  OrtStatusPtr CreateKernelV2(const OrtApi&, const OrtKernelInfo* info, void** kernel) const {
    return CreateGuardedKernel<LscAttentionKernel>(info, kernel);
  }
  const char* GetName() const { return LscAttentionKernel::kOpName; }
  size_t GetInputTypeCount() const { return LscAttentionKernel::kInputCount; }
  ONNXTensorElementDataType GetInputType(size_t) const { return type_; }
  OrtCustomOpInputOutputCharacteristic GetInputCharacteristic(size_t index) const {
    return index >= 3 ? INPUT_OUTPUT_OPTIONAL : INPUT_OUTPUT_REQUIRED;
  }
  size_t GetOutputTypeCount() const { return 1; }
  ONNXTensorElementDataType GetOutputType(size_t) const { return type_; }

 private:
  ONNXTensorElementDataType type_;
};

}  // namespace lsc
