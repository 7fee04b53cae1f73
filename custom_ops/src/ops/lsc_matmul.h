// LSCMatMul: Y = norm(activation(alpha * (A @ W) + bias + Z)) with W decoded from an lsc-ort blob (lsc_ort/ops.py).
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
  // A, W_blob, bias, Z (residual added before the activation), norm_scale, norm_bias
  static constexpr size_t kInputCount = 6;
  static constexpr int kInplaceInput = -1;
  explicit LscMatMulKernel(const OrtKernelInfo* info);
  Status Init(const OrtKernelInfo* info);
  Status Compute(OrtKernelContext* context);
  OrtStatusPtr ComputeV2(OrtKernelContext* context) { return GuardedCompute(*this, context); }
  const std::string& node() const { return node_; }

 private:
  enum Scratch { kScratchRow, kScratchAt, kScratchAtBlock, kScratchYt, kScratchHalfIn, kScratchHalfOut, kScratchOffsets,
                 kScratchHalfZ, kScratchTokensIn, kScratchTokensOut, kScratchProduct };
  // Layouts of A and Y (lsc_ort/ops.py): plain, attention heads [B, H, S, D] or [B, H, D, S], or
  // row tiles (kTileRows rows each, column-major).
  enum class Layout { kNone, kBHSD, kBHDS, kTiles };
  static constexpr int64_t kTileRows = 64;
  // How the batched product reads A and writes Y: the layouts (kNone: plain), H, S and M.
  struct Layouts {
    Layout input, output;
    int64_t heads, tokens, rows;
  };
  // norm="LayerNorm": the scale and (optional) bias of its rows.
  struct Norm {
    const float* scale;
    const float* bias;
  };
  // What follows the product row by row: the residual Z (of Y's shape), the activation, the norm.
  struct RowEpilogue {
    const float* residual;
    Norm norm;
  };
  Status CheckWeight(const PackedWeight& weight) const;
  bool InputHeads() const { return input_layout_ == Layout::kBHSD; }
  bool OutputHeads() const { return output_layout_ == Layout::kBHSD || output_layout_ == Layout::kBHDS; }
  Status FewRows(OrtKernelContext* context, const PackedWeight& weight, const float* a, int64_t M, const float* bias,
                 bool windowed, float* y) const;
  Status SmallBatch(OrtKernelContext* context, const PackedWeight& weight, const float* a, int64_t M,
                    const float* bias, float* y) const;
  bool UseWindowed(const PackedWeight& weight) const;
  Status LargeBatch(OrtKernelContext* context, const PackedWeight& weight, const float* a, int64_t M,
                    const float* bias, const Layouts& layouts, const RowEpilogue* rows_after, float* y,
                    bool* applied) const;
  void TransposeA(const float* a, const Layouts& layouts, int64_t K, int64_t m0, int64_t rows, int64_t k0, int64_t k1,
                  float* at, int64_t L) const;
  void StoreColumns(const float* yt, int64_t L, const Layouts& layouts, int64_t N, int64_t m0, int64_t rows, int64_t c0,
                    int64_t c1, float* y) const;
  bool HasEpilogue(const RowEpilogue& e) const {
    return !activation_.empty() || e.residual != nullptr || e.norm.scale != nullptr;
  }
  void EpilogueRows(const RowEpilogue& e, float* y, int64_t r0, int64_t rows, int64_t N) const;
  Status ApplyEpilogue(OrtKernelContext* context, const RowEpilogue& e, float* y, int64_t count, int64_t N) const;
  Status AddBroadcastResidual(OrtKernelContext* context, const float* p, const std::vector<int64_t>& p_shape,
                              const float* z, const std::vector<int64_t>& z_shape,
                              const std::vector<int64_t>& y_shape, float* y) const;
  Status HeadsToTokens(OrtKernelContext* context, const float* a, int64_t B, int64_t S, int64_t K, float* out) const;
  Status TokensToHeads(OrtKernelContext* context, const float* y, int64_t B, int64_t S, int64_t N, float* out) const;
  Status TilesToTokens(OrtKernelContext* context, const float* a, int64_t M, int64_t K, float* out) const;
  Status TokensToTiles(OrtKernelContext* context, const float* y, int64_t M, int64_t N, float* out) const;

  std::string node_;
  float alpha_ = 1.0f;
  int64_t trans_b_ = 0;
  std::string activation_;  // "", "Relu" or "Gelu", applied after the residual
  std::string norm_;        // "" or "LayerNorm", applied last
  float epsilon_ = 1e-5f;
  int64_t heads_ = 0;       // H of the head layouts (0 without one)
  std::string input_layout_name_, output_layout_name_;
  Layout input_layout_ = Layout::kNone, output_layout_ = Layout::kNone;
  const KernelSet* kernels_ = nullptr;
  std::shared_ptr<PackedWeight> weight_;  // null when the blob is not a constant
};

using LscMatMulOp = LscOp<LscMatMulKernel>;

}  // namespace lsc
