// LSCConv: ONNX Conv (1-D and 2-D, NCHW) with the weight decoded from an lsc-ort blob.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/status.h"
#include "kernels/conv_geometry.h"
#include "kernels/kernels.h"
#include "onnxruntime_cxx_api.h"
#include "ops/op_util.h"
#include "ops/packed_weight.h"

namespace lsc {

// How one input geometry is computed: phase planes, virtual positions, the tiled layout of the
// weight for that geometry's tap offsets (lsc_conv.cc).
struct ConvPlan;

class LscConvKernel {
 public:
  static constexpr const char* kOpName = "LSCConv";
  static constexpr size_t kInputCount = 4;  // X, W_blob, B, Z (residual added before the activation)
  static constexpr int kInplaceInput = 3;  // Y may be written over Z
  explicit LscConvKernel(const OrtKernelInfo* info);
  Status Init(const OrtKernelInfo* info);
  Status Compute(OrtKernelContext* context);
  OrtStatusPtr ComputeV2(OrtKernelContext* context) { return GuardedCompute(*this, context); }
  const std::string& node() const { return node_; }

 private:
  enum Scratch { kScratchCols = 8, kScratchHalfIn, kScratchHalfOut, kScratchPlanes, kScratchOffsets, kScratchHalfZ,
                 kScratchGathered, kScratchGatheredBlock };
  Status PrepareWeight(PackedWeight& weight) const;
  // The plan for geometry `g` (cached per input height and width when the weight is a constant).
  Status Plan(const ConvGeometry& g, const PackedWeight& weight, bool cache, std::shared_ptr<const ConvPlan>* plan);
  // The virtual-position plan (phase planes) for `g`, its work split for about `wanted` tasks.
  Status VirtualPlan(const ConvGeometry& g, const PackedWeight& weight, int64_t wanted, ConvPlan* plan) const;
  // The gathered-tile product of one run (see GatheredPlan in lsc_conv.cc).
  Status GatheredProduct(OrtKernelContext* context, const ConvGeometry& g, const ConvPlan& plan, const float* x,
                         const float* bias, const float* residual, bool residual_in_y, float* y) const;

  std::string node_;
  ConvAttributes attributes_;
  std::string activation_;  // "" or "Relu"
  const KernelSet* kernels_ = nullptr;
  std::shared_ptr<PackedWeight> weight_;
  std::mutex plans_mutex_;
  std::vector<std::shared_ptr<const ConvPlan>> plans_;  // a few recent input geometries
};

using LscConvOp = LscOp<LscConvKernel>;

// How many LSCConv runs in this process found their output Y in the buffer of the residual Z
// (onnxruntime's planner reuses it, see LscOp::MayInplace): for tests.
uint64_t ConvRunsWithResidualInPlace();

}  // namespace lsc
