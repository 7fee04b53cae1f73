#include "ops/lsc_attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/checked.h"
#include "common/memory.h"

namespace lsc {
namespace {

enum Scratch { kScratchScores };

// Floats of scores a task keeps (its rows x T): 64 KiB, in L2 next to the head's K and V.
constexpr int64_t kScoreFloats = int64_t{1} << 14;
constexpr int64_t kMaxRowsPerTask = 64;

// A rank-3 or rank-4 operand seen as [lead0, lead1, rows, cols] (rank 3: lead0 = 1).
struct Operand {
  std::vector<int64_t> shape;
  int64_t lead[2], rows, cols;
};

Status ReadOperand(const Ort::ConstValue& value, const char* name, Operand* out) {
  out->shape = value.GetTensorTypeAndShapeInfo().GetShape();
  const size_t rank = out->shape.size();
  if (rank != 3 && rank != 4) return Fail(name, " must have rank 3 or 4, got shape ", ShapeString(out->shape));
  out->lead[0] = rank == 4 ? out->shape[0] : 1;
  out->lead[1] = out->shape[rank - 3];
  out->rows = out->shape[rank - 2];
  out->cols = out->shape[rank - 1];
  return Status();
}

// The broadcast of leading dims a and b (each equal, or 1), or false.
bool BroadcastDim(int64_t a, int64_t b, int64_t* out) {
  if (a != b && a != 1 && b != 1) return false;
  *out = a == 1 ? b : a;
  return true;
}

// Element offset of head (b, n) in an operand whose leading dims may be 1 (broadcast).
int64_t HeadOffset(const Operand& x, int64_t b, int64_t n) {
  return ((x.lead[0] == 1 ? 0 : b) * x.lead[1] + (x.lead[1] == 1 ? 0 : n)) * x.rows * x.cols;
}

}  // namespace

LscAttentionKernel::LscAttentionKernel(const OrtKernelInfo* info) {
  Ort::ConstKernelInfo kernel_info(info);
  node_ = NodeName(kernel_info);
  scale_ = AttributeOr(kernel_info, "scale", 1.0f);
  kernels_ = &SelectKernels();
}

Status LscAttentionKernel::Init(const OrtKernelInfo*) {
  if (!std::isfinite(scale_)) return Fail("attribute scale must be finite, got ", scale_);
  return Status();
}

Status LscAttentionKernel::Compute(OrtKernelContext* raw_context) {
  Ort::KernelContext context(raw_context);
  Operand q, k, v;
  LSC_RETURN_IF_ERROR(ReadOperand(context.GetInput(0), "Q", &q));
  LSC_RETURN_IF_ERROR(ReadOperand(context.GetInput(1), "K", &k));
  LSC_RETURN_IF_ERROR(ReadOperand(context.GetInput(2), "V", &v));
  if (k.shape.size() != q.shape.size() || v.shape.size() != q.shape.size()) {
    return Fail("Q, K and V must have the same rank, got ", ShapeString(q.shape), ", ", ShapeString(k.shape), " and ",
                ShapeString(v.shape));
  }
  if (k.rows != q.cols || v.rows != k.cols) {
    return Fail("Q ", ShapeString(q.shape), ", K ", ShapeString(k.shape), " and V ", ShapeString(v.shape),
                " do not chain: Q [.., S, H] @ K [.., H, T] @ V [.., T, Hv]");
  }
  int64_t lead[2];
  for (int d = 0; d < 2; ++d) {
    if (!BroadcastDim(q.lead[d], k.lead[d], &lead[d]) || !BroadcastDim(lead[d], v.lead[d], &lead[d])) {
      return Fail("the leading dims of Q ", ShapeString(q.shape), ", K ", ShapeString(k.shape), " and V ",
                  ShapeString(v.shape), " do not broadcast");
    }
  }
  const int64_t B = lead[0], N = lead[1], S = q.rows, T = k.cols;
  const bool rank4 = q.shape.size() == 4;
  // The bias broadcasts to the scores [B, N, S, T] (rank 4 here).
  const float* bias = nullptr;
  int64_t bias_stride[4] = {0, 0, 0, 0};
  if (context.GetInputCount() > 3 && context.GetInput(3) != nullptr) {
    Ort::ConstValue bias_value = context.GetInput(3);
    const std::vector<int64_t> shape = bias_value.GetTensorTypeAndShapeInfo().GetShape();
    const int64_t scores[4] = {B, N, S, T};
    if (shape.size() > (rank4 ? 4u : 3u)) return Fail("bias has shape ", ShapeString(shape), ", of rank above Q's");
    int64_t stride = 1;  // the bias's own strides, right-aligned with the scores; 0 where it broadcasts
    for (size_t i = 0; i < shape.size(); ++i) {
      const int64_t size = shape[shape.size() - 1 - i], target = scores[3 - i];
      if (size != target && size != 1) {
        const std::vector<int64_t> expected(scores + (rank4 ? 0 : 1), scores + 4);
        return Fail("bias has shape ", ShapeString(shape), ", which does not broadcast to the scores' shape ",
                    ShapeString(expected));
      }
      bias_stride[3 - i] = size == 1 ? 0 : stride;
      stride *= size;
    }
    bias = bias_value.GetTensorData<float>();
  }
  std::vector<int64_t> out_shape = rank4 ? std::vector<int64_t>{B, N, S, v.cols} : std::vector<int64_t>{N, S, v.cols};
  int64_t out_elements = 0, score_elements = 0;
  LSC_RETURN_IF_ERROR(CheckedProduct(out_shape, &out_elements, "the output O"));
  LSC_RETURN_IF_ERROR(CheckAllocation(static_cast<uint64_t>(out_elements) * sizeof(float), "the output O"));
  // The work is that of the unfused graph, bounded as its score tensor would be.
  LSC_RETURN_IF_ERROR(CheckedProduct({B, N, S, T}, &score_elements, "the scores [B, N, S, T]"));
  LSC_RETURN_IF_ERROR(
      CheckAllocation(static_cast<uint64_t>(score_elements) * sizeof(float), "the scores [B, N, S, T]"));
  Ort::UnownedValue o_value = context.GetOutput(0, out_shape);
  if (out_elements == 0) return Status();
  float* o = o_value.GetTensorMutableData<float>();
  if (T == 0) {  // softmax over no keys weighs no values
    std::fill(o, o + out_elements, 0.0f);
    return Status();
  }
  const int64_t rows_per_task = std::clamp<int64_t>(kScoreFloats / T, 1, kMaxRowsPerTask);
  const int64_t blocks = (S + rows_per_task - 1) / rows_per_task;
  const float* q_data = context.GetInput(0).GetTensorData<float>();
  const float* k_data = context.GetInput(1).GetTensorData<float>();
  const float* v_data = context.GetInput(2).GetTensorData<float>();
  const AttentionRowsFn rows_fn = kernels_->attention_rows;
  const int64_t Hv = v.cols;
  return ParallelFor(raw_context, static_cast<size_t>(B * N * blocks), [&](size_t task) {
    const int64_t head = static_cast<int64_t>(task) / blocks, block = static_cast<int64_t>(task) % blocks;
    const int64_t b = head / N, n = head % N;
    AttentionHead a;
    a.q = q_data + HeadOffset(q, b, n);
    a.k = k_data + HeadOffset(k, b, n);
    a.v = v_data + HeadOffset(v, b, n);
    a.bias = bias ? bias + b * bias_stride[0] + n * bias_stride[1] : nullptr;
    a.bias_row = bias_stride[2];
    a.bias_col = bias_stride[3];
    a.S = S;
    a.T = T;
    a.H = q.cols;
    a.Hv = Hv;
    a.scale = scale_;
    a.o = o + head * S * Hv;
    const int64_t r0 = block * rows_per_task, rows = std::min(rows_per_task, S - r0);
    rows_fn(a, r0, rows, ThreadScratch(kScratchScores, static_cast<size_t>(rows * T)));
  });
}

}  // namespace lsc
