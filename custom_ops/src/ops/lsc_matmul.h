// LSCMatMul: Y = alpha * (A @ W) + bias with W decoded from an lsc-ort blob (lsc_ort/ops.py).
#pragma once

#include <memory>
#include <string>

#include "common/status.h"
#include "kernels/kernels.h"
#include "onnxruntime_cxx_api.h"
#include "ops/packed_weight.h"

namespace lsc {

class LscMatMulKernel {
 public:
  explicit LscMatMulKernel(const OrtKernelInfo* info);
  Status Init(const OrtKernelInfo* info);
  OrtStatusPtr ComputeV2(OrtKernelContext* context);
  const std::string& node() const { return node_; }

 private:
  enum Scratch { kScratchRow, kScratchAt, kScratchYt, kScratchHalfIn, kScratchHalfOut, kScratchOffsets };
  Status CheckWeight(const PackedWeight& weight) const;
  Status Compute(OrtKernelContext* context);
  Status SmallBatch(OrtKernelContext* context, const PackedWeight& weight, const float* a, int64_t M,
                    const float* bias, float* y) const;
  bool UseWindowed(const PackedWeight& weight) const;
  Status LargeBatch(OrtKernelContext* context, const PackedWeight& weight, const float* a, int64_t M,
                    const float* bias, float* y) const;

  std::string node_;
  float alpha_ = 1.0f;
  int64_t trans_b_ = 0;
  const KernelSet* kernels_ = nullptr;
  std::shared_ptr<PackedWeight> weight_;  // null when the blob is not a constant
};


class LscMatMulOp : public Ort::CustomOpBase<LscMatMulOp, LscMatMulKernel, true> {
 public:
  explicit LscMatMulOp(ONNXTensorElementDataType type) : type_(type) {}
  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** kernel) const;
  const char* GetName() const { return "LSCMatMul"; }
  size_t GetInputTypeCount() const { return 3; }
  ONNXTensorElementDataType GetInputType(size_t index) const {
    return index == 1 ? ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8 : type_;
  }
  OrtCustomOpInputOutputCharacteristic GetInputCharacteristic(size_t index) const {
    return index == 2 ? INPUT_OUTPUT_OPTIONAL : INPUT_OUTPUT_REQUIRED;
  }
  size_t GetOutputTypeCount() const { return 1; }
  ONNXTensorElementDataType GetOutputType(size_t) const { return type_; }

 private:
  ONNXTensorElementDataType type_;
};

}  // namespace lsc
