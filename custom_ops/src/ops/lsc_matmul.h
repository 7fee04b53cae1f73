// LSCMatMul: Y = activation(alpha * (A @ W) + bias + Z) with W decoded from an lsc-ort blob (lsc_ort/ops.py).
#pragma once

#include <memory>
#include <string>

#include "common/status.h"
#include "kernels/kernels.h"
#include "onnxruntime_cxx_api.h"
#include "ops/op_util.h"
#include "ops/packed_weight.h"

namespace lsc {

class LscMatMulKernel {
 public:
  static constexpr const char* kOpName = "LSCMatMul";
  static constexpr size_t kInputCount = 4;  // A, W_blob, bias, Z (residual added before the activation)
  explicit LscMatMulKernel(const OrtKernelInfo* info);
  Status Init(const OrtKernelInfo* info);
  Status Compute(OrtKernelContext* context);
  OrtStatusPtr ComputeV2(OrtKernelContext* context) { return GuardedCompute(*this, context); }
  const std::string& node() const { return node_; }

 private:
  enum Scratch { kScratchRow, kScratchAt, kScratchAtBlock, kScratchYt, kScratchHalfIn, kScratchHalfOut, kScratchOffsets,
                 kScratchHalfZ };
  Status CheckWeight(const PackedWeight& weight) const;
  Status FewRows(OrtKernelContext* context, const PackedWeight& weight, const float* a, int64_t M, const float* bias,
                 float* y) const;
  Status SmallBatch(OrtKernelContext* context, const PackedWeight& weight, const float* a, int64_t M,
                    const float* bias, float* y) const;
  bool UseWindowed(const PackedWeight& weight) const;
  Status LargeBatch(OrtKernelContext* context, const PackedWeight& weight, const float* a, int64_t M,
                    const float* bias, float* y) const;
  Status ApplyEpilogue(OrtKernelContext* context, const float* residual, float* y, int64_t count) const;

  std::string node_;
  float alpha_ = 1.0f;
  int64_t trans_b_ = 0;
  std::string activation_;  // "", "Relu" or "Gelu", applied last
  const KernelSet* kernels_ = nullptr;
  std::shared_ptr<PackedWeight> weight_;  // null when the blob is not a constant
};

using LscMatMulOp = LscOp<LscMatMulKernel>;

}  // namespace lsc
