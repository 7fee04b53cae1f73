// LSCMatMul(A, W_blob[, bias[, Z[, norm_scale[, norm_bias]]]]) -> Y, computed on the encoded weight.
// Contract: lsc_ort/ops.py.
#include "ops/lsc_matmul.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/checked.h"
#include "common/memory.h"
#include "ops/op_util.h"
#include "ops/unified_ops.h"

namespace lsc {
namespace {

// Up to kSlicedRows rows of A run on the sliced layout (with windowed slices, or on the windowed
// layout, where the CPU's gathers are slow: ChooseGemvLayout); up to this many on the windowed
// layout (when the kernel variant has a windowed kernel); more rows take the batched product.
constexpr int64_t kWindowedBatch = 12;
// Lanes of a batch tile of the tiled product (at most the variant's tiled_tile): a K-block of
// 192 transposed activation rows then fits in L1; 128 lanes measured 15-30% slower.
constexpr int64_t kMatMulTile = 64;
// Bytes of partial sums a task keeps while it sweeps the K-blocks: an eighth of a 2 MiB L2, so
// they stay there while the weight's non-zeros stream past (a whole 3072-column tile, 768 KiB,
// measured 10-30% slower).
constexpr int64_t kSpanBytes = 262144;
// At most this many bytes of a tile's transposed activations are kept for all its spans.
constexpr int64_t kWholeAtBytes = 1 << 20;

// "" -> 0 (plain), "BHSD" -> 1, "BHDS" -> 2 (outputs only), "TILES" -> 3; else false.
bool ParseLayout(const std::string& name, bool output, int* layout) {
  if (name.empty()) {
    *layout = 0;
  } else if (name == "BHSD") {
    *layout = 1;
  } else if (name == "BHDS" && output) {
    *layout = 2;
  } else if (name == "TILES") {
    *layout = 3;
  } else {
    return false;
  }
  return true;
}

// Runs fn(r0, count) for pieces of whole rows (rows >= 1 of N floats) of about 64 KiB, which a
// batch's Y usually still has in L2, as many as a multiple of the pool's batches so that the
// threads get equal shares.
template <typename Fn>
Status ForEachRowPiece(OrtKernelContext* context, int64_t rows, int64_t N, Fn&& fn) {
  constexpr int64_t kPiece = 16384;
  const int64_t batches = static_cast<int64_t>(ParallelBatches(1 << 20));
  const int64_t pieces = std::min(rows, ((rows * N + kPiece - 1) / kPiece + batches - 1) / batches * batches);
  const int64_t piece_rows = (rows + pieces - 1) / pieces;
  return ParallelFor(context, static_cast<size_t>((rows + piece_rows - 1) / piece_rows), [&](size_t piece) {
    const int64_t r0 = static_cast<int64_t>(piece) * piece_rows;
    fn(r0, std::min(piece_rows, rows - r0));
  });
}

}  // namespace

LscMatMulKernel::LscMatMulKernel(const OrtKernelInfo* info) {
  Ort::ConstKernelInfo kernel_info(info);
  node_ = NodeName(kernel_info);
  alpha_ = AttributeOr(kernel_info, "alpha", 1.0f);
  trans_b_ = AttributeOr(kernel_info, "transB", int64_t{0});
  activation_ = AttributeOr(kernel_info, "activation", std::string());
  norm_ = AttributeOr(kernel_info, "norm", std::string());
  epsilon_ = AttributeOr(kernel_info, "epsilon", 1e-5f);
  heads_ = AttributeOr(kernel_info, "heads", int64_t{0});
  input_layout_name_ = AttributeOr(kernel_info, "input_layout", std::string());
  output_layout_name_ = AttributeOr(kernel_info, "output_layout", std::string());
  kernels_ = &SelectKernels();
}

Status LscMatMulKernel::Init(const OrtKernelInfo* info) {
  if (trans_b_ != 0 && trans_b_ != 1) return Fail("attribute transB must be 0 or 1, got ", trans_b_);
  if (!activation_.empty() && activation_ != "Relu" && activation_ != "Gelu") {
    return Fail("unsupported activation '", activation_, "' (supported: \"\", \"Relu\" and \"Gelu\")");
  }
  if (!norm_.empty() && norm_ != "LayerNorm") {
    return Fail("unsupported norm '", norm_, "' (supported: \"\" and \"LayerNorm\")");
  }
  if (!std::isfinite(epsilon_) || epsilon_ < 0.0f) return Fail("attribute epsilon must be finite and >= 0, got ", epsilon_);
  int input = 0, output = 0;
  if (!ParseLayout(input_layout_name_, false, &input)) {
    return Fail("unsupported input_layout '", input_layout_name_, "' (supported: \"\", \"BHSD\" and \"TILES\")");
  }
  if (!ParseLayout(output_layout_name_, true, &output)) {
    return Fail("unsupported output_layout '", output_layout_name_,
                "' (supported: \"\", \"BHSD\", \"BHDS\" and \"TILES\")");
  }
  input_layout_ = static_cast<Layout>(input);
  output_layout_ = static_cast<Layout>(output);
  const bool heads = InputHeads() || OutputHeads();
  if (heads && heads_ < 1) return Fail("attribute heads must be >= 1 with a head layout, got ", heads_);
  if (!heads && heads_ != 0) return Fail("attribute heads (", heads_, ") needs a head layout (BHSD or BHDS)");
  if (!norm_.empty() && output_layout_ != Layout::kNone) {
    return Fail("norm=\"", norm_, "\" cannot be combined with output_layout ", output_layout_name_);
  }
  LSC_RETURN_IF_ERROR(LoadConstantWeight(Ort::ConstKernelInfo(info), 1, trans_b_ == 0, &weight_));
  if (weight_) LSC_RETURN_IF_ERROR(CheckWeight(*weight_));
  return Status();
}

Status LscMatMulKernel::CheckWeight(const PackedWeight& weight) const {
  if (weight.shape().size() != 2) {
    return Fail("the weight blob holds a tensor of rank ", weight.shape().size(), "; LSCMatMul needs a 2-D matrix");
  }
  if (InputHeads() && weight.K() % heads_ != 0) {
    return Fail("input_layout needs heads (", heads_, ") to divide the weight's ", weight.K(), " rows");
  }
  if (OutputHeads() && weight.N() % heads_ != 0) {
    return Fail("output_layout needs heads (", heads_, ") to divide the weight's ", weight.N(), " columns");
  }
  return Status();
}

Status LscMatMulKernel::Compute(OrtKernelContext* raw_context) {
  Ort::KernelContext context(raw_context);
  std::shared_ptr<PackedWeight> weight = weight_;
  if (!weight) {  // the blob is a run-time input: decode it for this run
    LSC_RETURN_IF_ERROR(LoadWeight(context.GetInput(1), trans_b_ == 0, &weight));
    LSC_RETURN_IF_ERROR(CheckWeight(*weight));
  }
  const int64_t K = weight->K(), N = weight->N();
  Ort::ConstValue a_value = context.GetInput(0);
  const auto a_info = a_value.GetTensorTypeAndShapeInfo();
  const std::vector<int64_t> given_shape = a_info.GetShape();
  std::vector<int64_t> a_shape = given_shape;  // A as the product reads it: [..., K]
  if (InputHeads()) {
    if (given_shape.size() != 4 || given_shape[1] != heads_ || given_shape[3] != K / heads_) {
      return Fail("input_layout BHSD needs A of shape [B, ", heads_, ", S, ", K / heads_, "], got ",
                  ShapeString(given_shape));
    }
    a_shape = {given_shape[0], given_shape[2], K};
  }
  if (a_shape.empty()) return Fail("A must have rank >= 1, got a scalar");
  if (a_shape.back() != K) {
    return Fail("A has shape ", ShapeString(a_shape), " but the weight is ", K, "x", N, ": A's last dimension must be ",
                K);
  }
  if (OutputHeads() && a_shape.size() != 3) {
    return Fail("output_layout needs A of rank 3 [B, S, K], got ", ShapeString(a_shape));
  }
  const float* bias = nullptr;
  std::vector<float> bias_buffer, scale_buffer, norm_bias_buffer;
  LSC_RETURN_IF_ERROR(ReadBias(context, 2, N, "bias", &bias_buffer, &bias));
  Norm norm{nullptr, nullptr};
  LSC_RETURN_IF_ERROR(ReadBias(context, 4, N, "norm_scale", &scale_buffer, &norm.scale));
  LSC_RETURN_IF_ERROR(ReadBias(context, 5, N, "norm_bias", &norm_bias_buffer, &norm.bias));
  if (norm_.empty() && (norm.scale != nullptr || norm.bias != nullptr)) {
    return Fail("norm_scale and norm_bias (inputs 4 and 5) need norm=\"LayerNorm\"");
  }
  if (!norm_.empty() && norm.scale == nullptr) return Fail("norm=\"", norm_, "\" needs its norm_scale (input 4)");
  // P, the product [..., N]; Y is P's shape, or P and Z broadcast.
  std::vector<int64_t> p_shape(a_shape.begin(), a_shape.end() - 1);
  int64_t M = 0, p_elements = 0, y_elements = 0;
  LSC_RETURN_IF_ERROR(CheckedProduct(p_shape, &M, "the batch of A"));
  LSC_RETURN_IF_ERROR(CheckedMul(M, N, &p_elements, "the output Y"));
  LSC_RETURN_IF_ERROR(CheckAllocation(static_cast<uint64_t>(p_elements) * sizeof(float), "the output Y"));
  p_shape.push_back(N);
  const float* residual = nullptr;
  std::vector<int64_t> z_shape, y_shape = p_shape;
  LSC_RETURN_IF_ERROR(ReadFloatInput(context, 3, kScratchHalfZ, &residual, &z_shape));
  if (residual != nullptr && output_layout_ != Layout::kNone) {
    return Fail("a residual input Z cannot be combined with output_layout");
  }
  const bool broadcast = residual != nullptr && z_shape != p_shape;
  if (broadcast) {
    if (z_shape.empty() || z_shape.back() != N) {
      return Fail("Z has shape ", ShapeString(z_shape), "; the residual's last dimension must be N = ", N);
    }
    if (!BroadcastShapes(p_shape, z_shape, &y_shape)) {
      return Fail("Z has shape ", ShapeString(z_shape), ", which does not broadcast with the product's shape ",
                  ShapeString(p_shape));
    }
  }
  LSC_RETURN_IF_ERROR(CheckedProduct(y_shape, &y_elements, "the output Y"));
  LSC_RETURN_IF_ERROR(CheckAllocation(static_cast<uint64_t>(y_elements) * sizeof(float), "the output Y"));
  std::vector<int64_t> out_shape = y_shape;
  const int64_t B = a_shape.size() == 3 ? a_shape[0] : 0, S = a_shape.size() == 3 ? a_shape[1] : 0;
  if (output_layout_ == Layout::kBHSD) out_shape = {B, heads_, S, N / heads_};
  if (output_layout_ == Layout::kBHDS) out_shape = {B, heads_, N / heads_, S};
  Ort::UnownedValue y_value = context.GetOutput(0, out_shape);
  if (y_elements == 0) return Status();

  const bool half = a_info.GetElementType() == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16;
  const float* a = nullptr;
  float* y = nullptr;      // where the product writes: Y in its layout, or the plain [M, N]
  float* y_out = nullptr;  // Y in its layout, float32
  if (half) {
    float* a_float = ThreadScratch(kScratchHalfIn, static_cast<size_t>(M * K));
    HalfToFloat(a_value.GetTensorData<Ort::Float16_t>(), a_float, static_cast<size_t>(M * K));
    a = a_float;
    y_out = ThreadScratch(kScratchHalfOut, static_cast<size_t>(y_elements));
  } else {
    a = a_value.GetTensorData<float>();
    y_out = y_value.GetTensorMutableData<float>();
  }
  // mswu weights: a few rows add their unified blocks with one multiply each after the free
  // non-zeros' product; more rows run every non-zero on the batch kernels (kUnifiedMatMulRows).
  const PackedWeight* product = weight.get();
  if (M > kUnifiedMatMulRows && K != 0) LSC_RETURN_IF_ERROR(weight->plain(&product));
  const bool windowed = M <= kWindowedBatch && UseWindowed(*product);
  GemvLayout gemv = M <= kSlicedRows ? ChooseGemvLayout(*kernels_, product->columns().nnz()) : GemvLayout::kSliced;
  if (gemv == GemvLayout::kWindowed && !windowed) {  // not worthwhile for this weight's shape
    gemv = kernels_->sliced_windows ? GemvLayout::kSlicedWindows : GemvLayout::kSliced;
  }
  const bool few = M <= kSlicedRows && gemv != GemvLayout::kWindowed;
  const bool small = !few && windowed;
  // The batched product reads A and writes Y in their layouts (heads, row tiles) itself; the
  // other paths (and mswu's unified blocks) see tokens, [M, K] and [M, N], relaid around them.
  const bool unified = product->unified() != nullptr && product->unified()->count() != 0;
  const bool direct = K != 0 && !few && !small && !unified;
  const Layouts layouts{direct ? input_layout_ : Layout::kNone, direct ? output_layout_ : Layout::kNone, heads_, S,
                        M};
  if (input_layout_ != Layout::kNone && K != 0 && !direct) {
    float* tokens = ThreadScratch(kScratchTokensIn, static_cast<size_t>(M * K));
    LSC_RETURN_IF_ERROR(InputHeads() ? HeadsToTokens(raw_context, a, B, S, K, tokens)
                                     : TilesToTokens(raw_context, a, M, K, tokens));
    a = tokens;
  }
  const bool relayout_y = output_layout_ != Layout::kNone && !direct;
  y = relayout_y ? ThreadScratch(kScratchTokensOut, static_cast<size_t>(M * N))
      : broadcast  ? ThreadScratch(kScratchProduct, static_cast<size_t>(M * N))
                   : y_out;
  const RowEpilogue epilogue{broadcast ? nullptr : residual, norm};  // (a broadcast Z is added before it)
  bool epilogue_applied = false;
  if (K == 0) {
    for (int64_t m = 0; m < M; ++m) {
      for (int64_t n = 0; n < N; ++n) y[m * N + n] = bias ? bias[n] : 0.0f;
    }
  } else if (few) {
    LSC_RETURN_IF_ERROR(FewRows(raw_context, *product, a, M, bias, gemv == GemvLayout::kSlicedWindows, y));
  } else if (small) {
    LSC_RETURN_IF_ERROR(SmallBatch(raw_context, *product, a, M, bias, y));
  } else {
    // The epilogue goes with each tile's task where nothing else comes between (mswu's unified
    // blocks, a broadcast Z, a relayout): its rows are still in that core's cache.
    const RowEpilogue* with_tiles = unified || broadcast || relayout_y ? nullptr : &epilogue;
    LSC_RETURN_IF_ERROR(LargeBatch(raw_context, *product, a, M, bias, layouts, with_tiles, y, &epilogue_applied));
  }
  if (K != 0) LSC_RETURN_IF_ERROR(AddUnifiedMatMul(raw_context, *product, a, M, alpha_, y));
  if (broadcast) {
    LSC_RETURN_IF_ERROR(AddBroadcastResidual(raw_context, y, p_shape, residual, z_shape, y_shape, y_out));
    y = y_out;
  }
  if (!epilogue_applied) {
    LSC_RETURN_IF_ERROR(ApplyEpilogue(raw_context, epilogue, y, y_elements, N));
  }
  if (relayout_y) {
    LSC_RETURN_IF_ERROR(OutputHeads() ? TokensToHeads(raw_context, y, B, S, N, y_out)
                                      : TokensToTiles(raw_context, y, M, N, y_out));
  }
  if (half) FloatToHalf(y_out, y_value.GetTensorMutableData<Ort::Float16_t>(), static_cast<size_t>(y_elements));
  return Status();
}

// input_layout BHSD: A [B, H, S, D] to tokens [B * S, K], head h in columns h * D .. h * D + D - 1.
// (Called with K >= 1, so H <= K and B * H * S * D is A's size.)
Status LscMatMulKernel::HeadsToTokens(OrtKernelContext* context, const float* a, int64_t B, int64_t S, int64_t K,
                                      float* out) const {
  const int64_t H = heads_, D = K / H;
  return ParallelFor(context, static_cast<size_t>(B * H), [&](size_t item) {
    const int64_t b = static_cast<int64_t>(item) / H, h = static_cast<int64_t>(item) % H;
    const float* from = a + (b * H + h) * S * D;
    float* to = out + b * S * K + h * D;
    for (int64_t s = 0; s < S; ++s) std::memcpy(to + s * K, from + s * D, static_cast<size_t>(D) * sizeof(float));
  });
}

// output_layout: the plain result [B * S, N] to [B, H, S, D] (BHSD) or [B, H, D, S] (BHDS).
// (Called with N >= 1, so H <= N.)
Status LscMatMulKernel::TokensToHeads(OrtKernelContext* context, const float* y, int64_t B, int64_t S, int64_t N,
                                      float* out) const {
  const int64_t H = heads_, D = N / H;
  const bool keys = output_layout_ == Layout::kBHDS;
  return ParallelFor(context, static_cast<size_t>(B * H), [&](size_t item) {
    const int64_t b = static_cast<int64_t>(item) / H, h = static_cast<int64_t>(item) % H;
    const float* from = y + b * S * N + h * D;
    float* to = out + (b * H + h) * S * D;
    if (keys) {
      kernels_->transpose(from, N, S, D, to, S);
    } else {
      for (int64_t s = 0; s < S; ++s) std::memcpy(to + s * D, from + s * N, static_cast<size_t>(D) * sizeof(float));
    }
  });
}

// input_layout TILES: tile t of A, [K, R] (R of its rows), to tokens [R, K].
Status LscMatMulKernel::TilesToTokens(OrtKernelContext* context, const float* a, int64_t M, int64_t K,
                                      float* out) const {
  return ParallelFor(context, static_cast<size_t>((M + kTileRows - 1) / kTileRows), [&](size_t tile) {
    const int64_t m0 = static_cast<int64_t>(tile) * kTileRows, R = std::min(kTileRows, M - m0);
    kernels_->transpose(a + m0 * K, R, K, R, out + m0 * K, K);
  });
}

// output_layout TILES: tokens [R, N] of tile t to its [N, R].
Status LscMatMulKernel::TokensToTiles(OrtKernelContext* context, const float* y, int64_t M, int64_t N,
                                      float* out) const {
  return ParallelFor(context, static_cast<size_t>((M + kTileRows - 1) / kTileRows), [&](size_t tile) {
    const int64_t m0 = static_cast<int64_t>(tile) * kTileRows, R = std::min(kTileRows, M - m0);
    kernels_->transpose(y + m0 * N, N, R, N, out + m0 * N, R);
  });
}

// The residual, the activation, then the norm, of rows [r0, r0 + rows) of Y (rows of N).
void LscMatMulKernel::EpilogueRows(const RowEpilogue& e, float* y, int64_t r0, int64_t rows, int64_t N) const {
  float* first = y + r0 * N;
  const GeluFn gelu = activation_ == "Gelu" ? kernels_->gelu : nullptr;
  AddResidualAndActivate(e.residual ? e.residual + r0 * N : nullptr, activation_ == "Relu", gelu, first, rows * N);
  if (e.norm.scale != nullptr) kernels_->layer_norm(first, rows, N, e.norm.scale, e.norm.bias, epsilon_);
}

// The epilogue over Y (count >= 1 floats, rows of N), piece by piece (ForEachRowPiece): a pass of
// its own, after every product path and mswu's unified blocks.
Status LscMatMulKernel::ApplyEpilogue(OrtKernelContext* context, const RowEpilogue& e, float* y, int64_t count,
                                      int64_t N) const {
  if (!HasEpilogue(e)) return Status();
  return ForEachRowPiece(context, count / N, N, [&](int64_t r0, int64_t rows) { EpilogueRows(e, y, r0, rows, N); });
}

// Y = P + Z, row by row (rows of N): each of Y's leading indices picks P's row and Z's, whose dims
// either match Y's or are 1 (broadcast: stride 0). Y has at least one element.
Status LscMatMulKernel::AddBroadcastResidual(OrtKernelContext* context, const float* p,
                                             const std::vector<int64_t>& p_shape, const float* z,
                                             const std::vector<int64_t>& z_shape,
                                             const std::vector<int64_t>& y_shape, float* y) const {
  const size_t lead = y_shape.size() - 1;
  const int64_t N = y_shape.back();
  auto row_strides = [&](const std::vector<int64_t>& shape) {  // shape aligned to Y's last dims
    std::vector<int64_t> strides(lead, 0);
    const size_t missing = y_shape.size() - shape.size();
    int64_t stride = 1;
    for (size_t i = lead; i-- > 0;) {
      const int64_t dim = i >= missing ? shape[i - missing] : 1;
      strides[i] = dim == 1 ? 0 : stride;
      stride *= dim;
    }
    return strides;
  };
  const std::vector<int64_t> p_strides = row_strides(p_shape), z_strides = row_strides(z_shape);
  int64_t rows = 1;
  for (size_t i = 0; i < lead; ++i) rows *= y_shape[i];
  return ForEachRowPiece(context, rows, N, [&](int64_t r0, int64_t count) {
    for (int64_t r = r0; r < r0 + count; ++r) {
      int64_t rest = r, p_row = 0, z_row = 0;
      for (size_t i = lead; i-- > 0;) {
        const int64_t index = rest % y_shape[i];
        rest /= y_shape[i];
        p_row += index * p_strides[i];
        z_row += index * z_strides[i];
      }
      const float* from_p = p + p_row * N;
      const float* from_z = z + z_row * N;
      float* to = y + r * N;
      for (int64_t n = 0; n < N; ++n) to[n] = from_p[n] + from_z[n];
    }
  });
}

// One or two rows: the sliced layout, which streams the weight at close to memory speed. Tasks
// are runs of column groups with about equal rounds.
Status LscMatMulKernel::FewRows(OrtKernelContext* context, const PackedWeight& weight, const float* a, int64_t M,
                                const float* bias, bool windowed, float* y) const {
  const SlicedLayout* layout = nullptr;
  LSC_RETURN_IF_ERROR(weight.sliced(&layout, windowed));
  const SlicedView view = layout->view();
  const int64_t K = weight.K(), N = weight.N();
  int64_t ldx = K;
  if (windowed && K < kSlicedWindow) {  // a window reads kSlicedWindow floats of each row
    float* padded = ThreadScratch(kScratchRow, static_cast<size_t>(M * kSlicedWindow));
    std::fill(padded, padded + M * kSlicedWindow, 0.0f);
    for (int64_t m = 0; m < M; ++m) std::copy(a + m * K, a + (m + 1) * K, padded + m * kSlicedWindow);
    a = padded;
    ldx = kSlicedWindow;
  }
  const int64_t parts = std::min<int64_t>(layout->groups, static_cast<int64_t>(ParallelBatches(1 << 20)) * 2);
  std::vector<int64_t> bounds = {0};
  for (int64_t p = 1; p < parts; ++p) {
    const uint64_t target = layout->rounds() * static_cast<uint64_t>(p) / static_cast<uint64_t>(parts);
    bounds.push_back(std::lower_bound(layout->group_start.begin(), layout->group_start.end(), target) -
                     layout->group_start.begin());
  }
  bounds.push_back(layout->groups);
  const Epilogue epilogue{alpha_, bias, false};
  return ParallelFor(context, static_cast<size_t>(parts), [&](size_t p) {
    kernels_->spmv_sliced(view, bounds[p], bounds[p + 1], a, ldx, M, epilogue, y, N);
  });
}

// Up to kWindowedBatch rows: the windowed layout, up to kWindowedRows rows per pass.
Status LscMatMulKernel::SmallBatch(OrtKernelContext* context, const PackedWeight& weight, const float* a, int64_t M,
                                   const float* bias, float* y) const {
  const int64_t K = weight.K(), N = weight.N();
  const KernelSet& kernels = *kernels_;
  const WindowedLayout& layout = weight.windowed(kernels);
  const WindowedView view = layout.view();
  const int64_t ldx = WindowedStride(layout);
  const int64_t rows = std::min<int64_t>(M, kWindowedRows);
  float* x = ThreadScratch(kScratchRow, static_cast<size_t>(rows * ldx));
  const int64_t groups_per_task = std::max<int64_t>(1, layout.groups / 64);
  const int64_t tasks = (layout.groups + groups_per_task - 1) / groups_per_task;
  for (int64_t m0 = 0; m0 < M; m0 += kWindowedRows) {
    const int64_t count = std::min<int64_t>(kWindowedRows, M - m0);
    for (int64_t r = 0; r < count; ++r) StageWindowedRow(layout, a + (m0 + r) * K, x + r * ldx);
    LSC_RETURN_IF_ERROR(ParallelFor(context, static_cast<size_t>(tasks), [&](size_t t) {
      const int64_t g0 = static_cast<int64_t>(t) * groups_per_task;
      kernels.spmv_windowed(view, g0, std::min(layout.groups, g0 + groups_per_task), x, ldx, count, alpha_, bias,
                            y + m0 * N, N);
    }));
  }
  return Status();
}

bool LscMatMulKernel::UseWindowed(const PackedWeight& weight) const {
  return kernels_->spmv_windowed != nullptr &&
         WindowedLayoutWorthwhile(weight.columns(), kernels_->lanes, kernels_->window);
}

// Batch tiles of T rows (one tile of fewer rows has a stride of the rows rounded up to 16, which
// keeps it compact). A task is (tile, run of whole chunks with about equal non-zeros): K-block by
// K-block, it adds W[block]^T Atb to the partial sums Yt [N, L] of its columns, Atb = A[tile,
// block]^T the block's transposed activations (the last block applies alpha and the bias), then
// transposes its columns of Yt into Y, a span of columns at a time. With one task per tile, the
// task then applies the epilogue `rows_after` (when given) to its tile's rows, still in its cache.
//
// When there is one task per tile, it transposes each block itself into an L1-sized buffer just
// before using it, instead of writing a whole At out to L3 and reading it back: on a 3072-row
// weight at 128 rows that was a quarter of the time. When tiles split into several tasks (fewer
// tiles than cores), the tiles' At are transposed first, in parallel, and shared.
Status LscMatMulKernel::LargeBatch(OrtKernelContext* context, const PackedWeight& weight, const float* a, int64_t M,
                                   const float* bias, const Layouts& layouts, const RowEpilogue* rows_after, float* y,
                                   bool* applied) const {
  const KernelSet& kernels = *kernels_;
  const int64_t K = weight.K(), N = weight.N(), T = std::min<int64_t>(kernels.tiled_tile, kMatMulTile);
  const int64_t tiles = (M + T - 1) / T;
  const int64_t L = tiles == 1 ? std::min(T, (M + 15) / 16 * 16) : T;
  const TiledLayout* layout = nullptr;
  LSC_RETURN_IF_ERROR(weight.tiled(L, &layout));
  const int64_t cores = static_cast<int64_t>(ParallelBatches(1 << 20)) / 2;
  const std::vector<int64_t> bounds = layout->TaskBounds((cores + tiles - 1) / tiles);
  const int64_t parts = static_cast<int64_t>(bounds.size()) - 1;
  const std::vector<int64_t>& block_begin = layout->block_begin;
  auto rows_in = [&](int64_t tile) { return std::min(T, M - tile * T); };
  // A tile of the TILES layout that is one of the kernel's (64 rows, or all M rows, and stride L)
  // is the kernel's At as it is, and its Yt.
  auto in_place = [&](Layout which, int64_t tile) {
    return which == Layout::kTiles && rows_in(tile) == L && (T == kTileRows || tiles == 1);
  };
  float* shared_at = nullptr;  // tiles x K x L when tasks share their tile's At
  if (parts > 1) {
    shared_at = ThreadScratch(kScratchAt, static_cast<size_t>(tiles * K * L));
    const int64_t blocks = layout->blocks;
    LSC_RETURN_IF_ERROR(ParallelFor(context, static_cast<size_t>(tiles * blocks), [&](size_t item) {
      const int64_t tile = static_cast<int64_t>(item) / blocks, b = static_cast<int64_t>(item) % blocks;
      const int64_t k0 = block_begin[b], k1 = block_begin[b + 1];
      if (in_place(layouts.input, tile)) return;
      TransposeA(a, layouts, K, tile * T, rows_in(tile), k0, k1, shared_at + (tile * K + k0) * L, L);
    }));
  }
  int64_t block_rows = 0;
  for (int64_t b = 0; b < layout->blocks; ++b) block_rows = std::max(block_rows, block_begin[b + 1] - block_begin[b]);
  const Epilogue epilogue{alpha_, bias, false};
  const int64_t span = std::max<int64_t>(1, kSpanBytes / (4 * L * layout->chunk)) * layout->chunk;
  // With one task per tile, each applies the epilogue to its tile's rows (plain Y, or whole row
  // tiles) once they are complete.
  const bool whole_tiles = layouts.output == Layout::kNone ||
                           (layouts.output == Layout::kTiles && (T == kTileRows || tiles == 1));
  *applied = rows_after != nullptr && HasEpilogue(*rows_after) && parts == 1 && whole_tiles;
  return ParallelFor(context, static_cast<size_t>(tiles * parts), [&](size_t item) {
    const int64_t tile = static_cast<int64_t>(item) / parts, p = static_cast<int64_t>(item) % parts;
    const int64_t n0 = bounds[p], n1 = bounds[p + 1], rows = rows_in(tile);
    if (n0 == n1) return;
    // One span: each block is transposed just before use. Several: the tile's whole At once
    // (if it fits in L2), which the spans then share, instead of once per span (1.03x at 768 x
    // 3072, 128 rows).
    const bool spans = n1 - n0 > span && K * L * 4 <= kWholeAtBytes;
    const float* tile_at = in_place(layouts.input, tile) ? a + tile * T * K
                           : shared_at                   ? shared_at + tile * K * L
                                                         : nullptr;
    float* own_at = tile_at ? nullptr
                            : ThreadScratch(kScratchAtBlock, static_cast<size_t>((spans ? K : block_rows) * L));
    if (own_at && spans) TransposeA(a, layouts, K, tile * T, rows, 0, K, own_at, L);
    // Yt in place: a TILES tile, or keys (BHDS) of a tile within one batch, whose columns are
    // rows of the heads' [D, S] at a stride of S.
    const int64_t m0 = tile * T, S = layouts.tokens;
    const bool keys_in_place = layouts.output == Layout::kBHDS && rows == L && m0 % S + rows <= S;
    const bool yt_in_place = in_place(layouts.output, tile) || keys_in_place;
    float* yt = keys_in_place ? y + m0 / S * N * S + m0 % S
                : yt_in_place ? y + tile * T * N
                              : ThreadScratch(kScratchYt, static_cast<size_t>(N * L));
    const int64_t ldy = keys_in_place ? S : L;
    for (int64_t s0 = n0; s0 < n1; s0 += span) {
      const int64_t s1 = std::min(n1, s0 + span);
      for (int64_t b = 0; b < layout->blocks; ++b) {
        const int64_t k0 = block_begin[b], k1 = block_begin[b + 1];
        const float* atb = own_at;
        if (tile_at) {
          atb = tile_at + k0 * L;
        } else if (spans) {
          atb = own_at + k0 * L;
        } else {
          TransposeA(a, layouts, K, tile * T, rows, k0, k1, own_at, L);
        }
        kernels.spmm_tiled(layout->blocks_view(b, b + 1, b > 0, b + 1 < layout->blocks), s0, s1, atb, rows, epilogue,
                           yt, ldy);
      }
      // Positions [s0, s1) are whole chunks: the columns s0 .. s1 - 1, in some order.
      if (!yt_in_place) StoreColumns(yt, L, layouts, N, tile * T, rows, s0, s1, y);
    }
    if (*applied) EpilogueRows(*rows_after, y, tile * T, rows, N);
  });
}

namespace {

// Calls fn(r, g, offset, count) for the runs of rows m0 + r .. m0 + r + count - 1 that lie in one
// group of `period` rows (a row tile, or a batch's sequence): group g, from row `offset` of it.
template <typename Fn>
void ForEachRowRun(int64_t m0, int64_t rows, int64_t period, Fn&& fn) {
  for (int64_t r = 0; r < rows;) {
    const int64_t m = m0 + r, offset = m % period, count = std::min(rows - r, period - offset);
    fn(r, m / period, offset, count);
    r += count;
  }
}

}  // namespace

// At[k - k0][r] = A[m0 + r][k] for r < rows, k0 <= k < k1: A plain [M, K], [B, H, S, D] (BHSD:
// a row run within one batch, a column range within one head at a time), or row tiles (a copy of
// each row run of a tile, which is [K, R] for its R rows).
void LscMatMulKernel::TransposeA(const float* a, const Layouts& layouts, int64_t K, int64_t m0, int64_t rows,
                                 int64_t k0, int64_t k1, float* at, int64_t L) const {
  if (layouts.input == Layout::kNone) return kernels_->transpose(a + m0 * K + k0, K, rows, k1 - k0, at, L);
  if (layouts.input == Layout::kTiles) {
    return ForEachRowRun(m0, rows, kTileRows, [&](int64_t r, int64_t t, int64_t offset, int64_t count) {
      const int64_t t0 = t * kTileRows, R = std::min(kTileRows, layouts.rows - t0);
      for (int64_t k = k0; k < k1; ++k) {
        std::memcpy(at + (k - k0) * L + r, a + t0 * K + k * R + offset, static_cast<size_t>(count) * sizeof(float));
      }
    });
  }
  const int64_t H = layouts.heads, D = K / H, S = layouts.tokens;
  ForEachRowRun(m0, rows, S, [&](int64_t r, int64_t b, int64_t s, int64_t count) {
    for (int64_t h = k0 / D; h * D < k1; ++h) {
      const int64_t c0 = std::max(k0, h * D), c1 = std::min(k1, h * D + D);
      kernels_->transpose(a + ((b * H + h) * S + s) * D + (c0 - h * D), D, count, c1 - c0, at + (c0 - k0) * L + r, L);
    }
  });
}

// Y[m0 + r][c] = Yt[c][r] for r < rows, c0 <= c < c1: Y plain [M, N], in a head layout (BHSD: a
// transpose per head and batch; BHDS: Yt's rows are Y's, copied as they are), or row tiles (also
// a copy of Yt's rows).
void LscMatMulKernel::StoreColumns(const float* yt, int64_t L, const Layouts& layouts, int64_t N, int64_t m0,
                                   int64_t rows, int64_t c0, int64_t c1, float* y) const {
  if (layouts.output == Layout::kNone) return kernels_->transpose(yt + c0 * L, L, c1 - c0, rows, y + m0 * N + c0, N);
  if (layouts.output == Layout::kTiles) {
    return ForEachRowRun(m0, rows, kTileRows, [&](int64_t r, int64_t t, int64_t offset, int64_t count) {
      const int64_t t0 = t * kTileRows, R = std::min(kTileRows, layouts.rows - t0);
      for (int64_t c = c0; c < c1; ++c) {
        std::memcpy(y + t0 * N + c * R + offset, yt + c * L + r, static_cast<size_t>(count) * sizeof(float));
      }
    });
  }
  const int64_t H = layouts.heads, D = N / H, S = layouts.tokens;
  ForEachRowRun(m0, rows, S, [&](int64_t r, int64_t b, int64_t s, int64_t count) {
    for (int64_t h = c0 / D; h * D < c1; ++h) {
      const int64_t first = std::max(c0, h * D), last = std::min(c1, h * D + D);
      float* head = y + (b * H + h) * S * D;
      if (layouts.output == Layout::kBHSD) {
        kernels_->transpose(yt + first * L + r, L, last - first, count, head + s * D + (first - h * D), D);
      } else {
        for (int64_t c = first; c < last; ++c) {
          std::memcpy(head + (c - h * D) * S + s, yt + c * L + r, static_cast<size_t>(count) * sizeof(float));
        }
      }
    }
  });
}

}  // namespace lsc
