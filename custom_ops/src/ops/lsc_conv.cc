// LSCConv(X, W_blob[, B]) -> Y: ONNX Conv computed on the encoded weight, as a direct
// convolution for every shape (no im2col matrix), by one of two products (PreferGathered):
// - Virtual positions: the input is laid out as zero-padded stride-phase planes of width Wq (or
//   used in place), and output pixel (oh, ow) is "virtual position" v = oh * Wq + ow: tap
//   (c, i, j) of a tile of consecutive virtual positions then reads one contiguous run of a
//   plane, so a tile of tiled_tile positions spans several output rows on narrow feature maps.
//   Positions with ow >= OW are computed and dropped; the output tile is NCHW directly when
//   Wq == OW.
// - Gathered tiles (GatheredPlan): tiles of output pixels whose input rows are gathered, K-block
//   by K-block, into an L1 buffer of aligned rows.
// The tiled kernel applies bias, residual and activation.
#include "ops/lsc_conv.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "common/checked.h"
#include "common/memory.h"
#include "ops/op_util.h"
#include "ops/unified_ops.h"

namespace lsc {
namespace {

std::atomic<uint64_t> residual_in_place_runs{0};

// Partial sums of one task's span of output channels (see Compute): an L2's share.
constexpr int64_t kConvSpanBytes = 262144;
// At most this many bytes of gathered input rows shared by the tasks of a run (GatheredProduct);
// beyond, each task gathers its own K-blocks.
constexpr double kMaxSharedBytes = 64.0 * (1 << 20);

// out[a * cols + b] = x[(a * step_h - top) * width + b * step_w - left] for a < rows, b < cols,
// zero where that is outside the height x width channel `x` (top, left > -step): a zero-padded,
// subsampled copy of a channel. Strided rows are copied by `gather` (kernels.gather).
void FillPadded(const float* x, int64_t height, int64_t width, int64_t top, int64_t left, int64_t step_h,
                int64_t step_w, int64_t rows, int64_t cols, GatherFn gather, float* out) {
  // Column b reads input column b * step_w - left: those in [first, last) exist.
  const int64_t first = std::max<int64_t>(0, (left + step_w - 1) / step_w);
  const int64_t last = std::min<int64_t>(cols, (width + left + step_w - 1) / step_w);
  for (int64_t a = 0; a < rows; ++a) {
    float* row = out + a * cols;
    const int64_t r = a * step_h - top;
    if (r < 0 || r >= height || first >= last) {
      std::fill(row, row + cols, 0.0f);
      continue;
    }
    std::fill(row, row + first, 0.0f);
    const float* in = x + r * width - left;
    if (step_w == 1) {
      std::memcpy(row + first, in + first, static_cast<size_t>(last - first) * sizeof(float));
    } else {
      // (count < 2^29, the plane fits; the reads span less than the input row)
      const int64_t zero = 0, count = last - first;
      const GatherRun run{0, static_cast<int32_t>(count), 0};
      gather(in + first * step_w, &zero, 1, GatherView{count, nullptr, &run, 1, step_w}, row + first, 0);
    }
    std::fill(row + last, row + cols, 0.0f);
  }
}

// The input of one image laid out for direct convolution: zero-padded and split into
// stride_h x stride_w phase planes of width Wq, so that tap (c, i, j) of virtual position
// v = oh * Wq + ow reads plane(c, phase(i, j)) + (i * dh / sh) * Wq + (j * dw) / sw + v.
//
// Vector loads are much faster when 64-byte aligned (a load across two cache lines costs about
// 1.6x), so when it costs few extra positions the planes are *aligned*: Wq and the plane size are
// multiples of 16 floats, and each column shift (j * dw) / sw that a tap uses gets its own copy
// of the plane, shifted left by that many floats, so every tap reads from a multiple of 16.
struct PhasePlanes {
  int64_t hq = 0, wq = 0;   // plane height and width
  int64_t plane = 0;        // floats per plane (per shift and phase)
  int64_t shifts = 1;       // shifted copies of each plane
  std::vector<int64_t> shift_copy;  // column shift -> its copy, -1 if no tap uses it
  bool in_place = false;    // X itself is the single plane (1x1, stride 1, no padding, aligned)
  bool aligned = false;
  // Whether the planes take at most kMaxPlaneFloats per input channel. Checked before anything
  // is sized by them: attributes may be huge (the extents of ComputeConvGeometry stay below
  // 2^62, so the sums below fit; the products are checked).
  bool fits = true;
  int64_t channel = 0;      // floats per input channel: shifts * stride_h * stride_w * plane
  static constexpr int64_t kMaxPlaneFloats = int64_t{1} << 29;

  explicit PhasePlanes(const ConvGeometry& g) {
    const int64_t H = g.height, W = g.width;
    const bool pointwise = g.kernel_h == 1 && g.kernel_w == 1;
    in_place = pointwise && g.stride_h == 1 && g.stride_w == 1 && g.pad_top == 0 && g.pad_left == 0 &&
               g.out_height <= H && g.out_width <= W && g.out_width == W && (H * W) % 16 == 0;
    if (in_place) {
      hq = H;
      wq = W;
      plane = H * W;
      channel = plane;
      aligned = true;
      shift_copy = {0};
      return;
    }
    hq = std::max(g.out_height + (g.kernel_h - 1) * g.dilation_h / g.stride_h,
                  (H + g.pad_top) / g.stride_h + ((H + g.pad_top) % g.stride_h != 0));
    wq = std::max(g.out_width + (g.kernel_w - 1) * g.dilation_w / g.stride_w,
                  (W + g.pad_left) / g.stride_w + ((W + g.pad_left) % g.stride_w != 0));
    int64_t phases_count = 0;
    if (!MulExtent(hq, wq, &plane) || plane > kMaxPlaneFloats ||
        !MulExtent(g.stride_h, g.stride_w, &phases_count) || phases_count > kMaxPlaneFloats) {
      fits = false;  // plane > 2^29 also bounds the shift copies' index below
      return;
    }
    const int64_t wq16 = (wq + 15) / 16 * 16;
    // Rows of a tap are Wq apart only when the kernel spans rows; a wider Wq costs positions.
    aligned = g.kernel_h == 1 || wq16 == wq;
    if (aligned && g.kernel_h > 1) wq = wq16;
    plane = aligned ? (hq * wq + 15) / 16 * 16 : hq * wq;
    const int64_t max_shift = (g.kernel_w - 1) * g.dilation_w / g.stride_w;
    shift_copy.assign(static_cast<size_t>(max_shift) + 1, -1);
    if (!aligned) {
      shift_copy[0] = 0;
      shifts = 1;
    } else {
      shifts = 0;
      for (int64_t j = 0; j < g.kernel_w; ++j) {
        int64_t& copy = shift_copy[static_cast<size_t>(j * g.dilation_w / g.stride_w)];
        if (copy < 0) copy = shifts++;
      }
    }
    fits = MulExtent(shifts, phases_count, &channel) && MulExtent(channel, plane, &channel) &&
           channel <= kMaxPlaneFloats;
  }
  int64_t phases(const ConvGeometry& g) const { return g.stride_h * g.stride_w; }
  int64_t channel_size(const ConvGeometry&) const { return channel; }

  // Whether some tap reads phase plane (ph, pw): only those are filled.
  static bool PhaseUsed(const ConvGeometry& g, int64_t ph, int64_t pw) {
    bool rows = false, cols = false;
    for (int64_t i = 0; i < g.kernel_h; ++i) rows = rows || (i * g.dilation_h) % g.stride_h == ph;
    for (int64_t j = 0; j < g.kernel_w; ++j) cols = cols || (j * g.dilation_w) % g.stride_w == pw;
    return rows && cols;
  }

  // Fills the planes of channel c of an image (`x` points at that channel's H x W plane).
  // Strided rows are copied by `gather` (kernels.gather).
  void Fill(const float* x, const ConvGeometry& g, GatherFn gather, float* out) const {
    for (int64_t ph = 0; ph < g.stride_h; ++ph) {
      for (int64_t pw = 0; pw < g.stride_w; ++pw) {
        if (!PhaseUsed(g, ph, pw)) continue;
        float* base = out + (ph * g.stride_w + pw) * plane;
        FillPadded(x, g.height, g.width, g.pad_top - ph, g.pad_left - pw, g.stride_h, g.stride_w, hq, wq, gather, base);
        std::fill(base + hq * wq, base + plane, 0.0f);
        // The shifted copies: copy(s)[p] = plane[p + s].
        const int64_t size = hq * wq;
        for (size_t shift = 1; shift < shift_copy.size(); ++shift) {
          if (shift_copy[shift] <= 0) continue;
          float* copy = out + (shift_copy[shift] * phases(g) + ph * g.stride_w + pw) * plane;
          const int64_t s = static_cast<int64_t>(shift);
          std::memcpy(copy, base + s, static_cast<size_t>(std::max<int64_t>(0, size - s)) * sizeof(float));
          std::fill(copy + std::max<int64_t>(0, size - s), copy + plane, 0.0f);
        }
      }
    }
  }

  // Offset of tap (c, i, j) from the start of a group's planes, for every weight row k.
  void RowOffsets(const ConvGeometry& g, int64_t channels, int64_t* out) const {
    for (int64_t c = 0; c < channels; ++c) {
      for (int64_t i = 0; i < g.kernel_h; ++i) {
        for (int64_t j = 0; j < g.kernel_w; ++j) {
          const int64_t dy = i * g.dilation_h, dx = j * g.dilation_w;
          const int64_t phase = (dy % g.stride_h) * g.stride_w + dx % g.stride_w;
          const int64_t shift = dx / g.stride_w;
          const int64_t copy = shift_copy[static_cast<size_t>(aligned ? shift : 0)];
          *out++ = c * channel_size(g) + (copy * phases(g) + phase) * plane + dy / g.stride_h * wq +
                   (aligned ? 0 : shift);
        }
      }
    }
  }
};

// Bytes of activations one input channel contributes to a tile: the used phase planes' rows
// that the kernel's taps cover.
int64_t ChannelFootprint(const ConvGeometry& g, const PhasePlanes& planes, int64_t lanes) {
  int64_t phases = 0;
  for (int64_t ph = 0; ph < g.stride_h; ++ph) {
    for (int64_t pw = 0; pw < g.stride_w; ++pw) phases += PhasePlanes::PhaseUsed(g, ph, pw) ? 1 : 0;
  }
  const int64_t rows = (g.kernel_h - 1) * g.dilation_h / g.stride_h;
  const int64_t span = std::min(planes.hq * planes.wq, lanes + rows * planes.wq + (g.kernel_w - 1) * g.dilation_w);
  return 4 * std::max<int64_t>(1, phases) * planes.shifts * span;
}


}  // namespace

uint64_t ConvRunsWithResidualInPlace() { return residual_in_place_runs.load(std::memory_order_relaxed); }

LscConvKernel::LscConvKernel(const OrtKernelInfo* info) {
  Ort::ConstKernelInfo kernel_info(info);
  node_ = NodeName(kernel_info);
  attributes_.auto_pad = AttributeOr(kernel_info, "auto_pad", std::string("NOTSET"));
  attributes_.kernel_shape = AttributeOr(kernel_info, "kernel_shape", std::vector<int64_t>{});
  attributes_.strides = AttributeOr(kernel_info, "strides", std::vector<int64_t>{});
  attributes_.dilations = AttributeOr(kernel_info, "dilations", std::vector<int64_t>{});
  attributes_.pads = AttributeOr(kernel_info, "pads", std::vector<int64_t>{});
  attributes_.group = AttributeOr(kernel_info, "group", int64_t{1});
  activation_ = AttributeOr(kernel_info, "activation", std::string());
  kernels_ = &SelectKernels();
}

Status LscConvKernel::Init(const OrtKernelInfo* info) {
  if (!activation_.empty() && activation_ != "Relu") {
    return Fail("unsupported activation '", activation_, "' (supported: \"\" and \"Relu\")");
  }
  LSC_RETURN_IF_ERROR(LoadConstantWeight(Ort::ConstKernelInfo(info), 1, false, &weight_));
  if (weight_) LSC_RETURN_IF_ERROR(PrepareWeight(*weight_));
  return Status();
}

Status LscConvKernel::PrepareWeight(PackedWeight& weight) const {
  LSC_RETURN_IF_ERROR(CheckConvAttributes(attributes_, weight.shape()));
  int64_t rows = 0;
  LSC_RETURN_IF_ERROR(CheckedMul(weight.K(), attributes_.group, &rows, "C * kH * kW"));
  if (rows > 0xFFFFFFFFll) return Fail("C * kH * kW = ", rows, " is too large (at most 2^32 - 1)");
  // Every tap has an offset and a row of the tiled layout, data or not.
  LSC_RETURN_IF_ERROR(CheckDeclaredExtent(rows, weight.blob_size(), "the convolution's taps C * kH * kW"));
  weight.EmbedGroups(attributes_.group);
  return Status();
}

struct ConvPlan {
  ConvGeometry g;
  int64_t hq = 0, wq = 0, channel = 0;  // plane height, width; floats per input channel
  bool in_place = false;                 // X itself is the plane
  bool direct_out = false;               // Wq == OW: the output tile is NCHW
  int64_t positions = 0;                 // virtual positions per image: (OH - 1) * Wq + OW
  TiledLayout layout;
  std::vector<int64_t> bounds;           // tasks' runs of whole layout parts (processing positions)
  // Gathered tiles (GatheredPlan), used instead of the above when `gathered`.
  bool gathered = false;
  // What the gathers read: X itself, a zero-padded copy [C, hp, wp], or the phase planes of
  // PhasePlanes (then every read has stride 1).
  enum class Source { kInput, kPadded, kPhases } source = Source::kInput;
  int64_t hp = 0, wp = 0;                // extents of X or of its padded copy
  int64_t source_channel = 0;            // floats per input channel in the source
  int64_t gather_stride = 1;             // between the reads of consecutive lanes of a run
  int64_t per_tile = 0, tiles_per_image = 0, lanes = 0;  // pixels per tile; its rows' stride
  std::vector<int64_t> row_offset;       // weight row k = tap (c, i, j): c * hp * wp + i * dh * wp + j * dw
  std::vector<int32_t> lane_offset;      // tile t's lane q reads lane_offset[t * per_tile + q]
  std::vector<GatherRun> runs;           // the same offsets as runs: tile t's are [run_begin[t], run_begin[t + 1])
  std::vector<int64_t> run_begin;
  GatherView gather_view(int64_t tile, int64_t lanes_used) const {
    return GatherView{lanes_used, lane_offset.data() + tile * per_tile, runs.data() + run_begin[tile],
                      run_begin[tile + 1] - run_begin[tile], gather_stride};
  }
  const TiledLayout* tiled = nullptr;    // the weight's layout for `lanes` (owned by the weight)
};

namespace {

// Gathered tiles: each tile is up to `max_lanes` consecutive output pixels of one image (NCHW
// order), so the output is written in place and no lane is wasted on a padding column. For each
// K-block of taps the task gathers the tile's input rows into an L1 buffer of aligned rows
// (kernels.gather: copies for stride 1, one permute per 16 floats for stride 2), then the tiled
// kernel sweeps every output channel of its span over that block, as LSCMatMul does with its
// transposed activations. Pays where the virtual positions do not: maps whose padded width is
// not a multiple of 16 (unaligned taps), narrow maps (many dropped positions) and strided
// convolutions, once enough output channels share each gathered row.
Status GatheredPlan(const ConvGeometry& g, const PackedWeight& weight, int64_t max_lanes, int64_t wanted_tasks,
                    ConvPlan* plan) {
  const int64_t OH = g.out_height, OW = g.out_width, pixels = OH * OW, taps = g.kernel_h * g.kernel_w;
  // Lane offsets and runs take up to 16 bytes per output pixel (an image's worth).
  LSC_RETURN_IF_ERROR(CheckAllocation(16 * static_cast<uint64_t>(pixels) +
                                          8 * static_cast<uint64_t>(g.channels * taps),
                                      "the gathered tiles' plan"));
  plan->tiles_per_image = (pixels + max_lanes - 1) / max_lanes;
  plan->per_tile = std::min(pixels, max_lanes);
  plan->lanes = (plan->per_tile + 15) / 16 * 16;
  plan->row_offset.resize(static_cast<size_t>(g.channels * taps));
  int64_t lane_row = 0, lane_column = 0;  // offset of output pixel (oh, ow): oh * lane_row + ow * lane_column
  // Phase planes for a strided stem-like convolution (few channels, a wide kernel: 1.1x on
  // ResNet-50's 7 x 7 stem); strided reads of a padded copy for the rest (1.2x faster there).
  if (taps > 1 && (g.stride_h > 1 || g.stride_w > 1) && g.channels * taps < 256) {
    const PhasePlanes planes(g);
    if (!planes.fits || static_cast<double>(g.channels) * static_cast<double>(planes.channel) > 536870911.0) {
      return Fail("the padded input planes of X [", g.batch, ", ", g.channels, ", ", g.height, ", ", g.width,
                  "] would take more than 2^29 floats per channel; LSCConv computes on them");
    }
    plan->source = ConvPlan::Source::kPhases;
    plan->source_channel = planes.channel;
    planes.RowOffsets(g, g.channels, plan->row_offset.data());
    lane_row = planes.wq;
    lane_column = 1;
  } else {
    int64_t hp = std::max(g.height + g.pad_top, (OH - 1) * g.stride_h + (g.kernel_h - 1) * g.dilation_h + 1);
    int64_t wp = std::max(g.width + g.pad_left, (OW - 1) * g.stride_w + (g.kernel_w - 1) * g.dilation_w + 1);
    const bool padded = g.pad_top > 0 || g.pad_left > 0 || hp > g.height || wp > g.width;
    if (!padded) {
      hp = g.height;
      wp = g.width;
    }
    int64_t plane = 0;
    if (!MulExtent(hp, wp, &plane) || plane > (int64_t{1} << 29) ||
        static_cast<double>(g.channels) * static_cast<double>(plane) > 536870911.0) {
      return Fail("the padded input planes of X [", g.batch, ", ", g.channels, ", ", g.height, ", ", g.width,
                  "] would take more than 2^29 floats per channel; LSCConv computes on them");
    }
    plan->source = padded ? ConvPlan::Source::kPadded : ConvPlan::Source::kInput;
    plan->hp = hp;
    plan->wp = wp;
    plan->source_channel = plane;
    int64_t* row = plan->row_offset.data();
    for (int64_t c = 0; c < g.channels; ++c) {
      for (int64_t i = 0; i < g.kernel_h; ++i) {
        for (int64_t j = 0; j < g.kernel_w; ++j) *row++ = c * plane + i * g.dilation_h * wp + j * g.dilation_w;
      }
    }
    lane_row = g.stride_h * wp;
    lane_column = g.stride_w;
  }
  plan->gather_stride = lane_column;
  plan->run_begin.push_back(0);
  for (int64_t t = 0; t < plan->tiles_per_image; ++t) {
    const int64_t p0 = t * plan->per_tile, p1 = std::min(pixels, p0 + plan->per_tile);
    for (int64_t p = p0; p < p1;) {
      const int64_t oh = p / OW, ow = p % OW, count = std::min(p1, (oh + 1) * OW) - p;
      const int64_t offset = oh * lane_row + ow * lane_column;  // < an input channel's floats
      for (int64_t q = 0; q < count; ++q) plan->lane_offset.push_back(static_cast<int32_t>(offset + q * lane_column));
      GatherRun* last = plan->runs.size() > static_cast<size_t>(plan->run_begin.back()) ? &plan->runs.back() : nullptr;
      if (last != nullptr && lane_column == 1 && last->offset + last->count == offset) {
        last->count += static_cast<int32_t>(count);  // the next output row continues the input row
      } else {
        plan->runs.push_back(GatherRun{static_cast<int32_t>(p - p0), static_cast<int32_t>(count),
                                       static_cast<int32_t>(offset)});
      }
      p += count;
    }
    plan->run_begin.push_back(static_cast<int64_t>(plan->runs.size()));
  }
  LSC_RETURN_IF_ERROR(weight.tiled(plan->lanes, &plan->tiled));
  const int64_t tiles = g.batch * plan->tiles_per_image;
  plan->bounds = plan->tiled->TaskBounds((wanted_tasks + tiles - 1) / tiles);
  plan->gathered = true;
  return Status();
}

// Whether the gathered tiles beat the virtual positions for `g`, as measured on ResNet-50's
// convolutions (1.1-1.35x on strided ones, 7 x 7 maps, the stem and 1 x 1 ones not computed in
// place with more inputs than outputs; 0.7-0.95x on aligned or few-channel maps). The
// environment variable LSC_ORT_CONV_PATH = "gathered" or "virtual" overrides it (for tests).
bool PreferGathered(const ConvGeometry& g) {
  const char* path = std::getenv("LSC_ORT_CONV_PATH");
  if (path != nullptr && std::strcmp(path, "gathered") == 0) return true;
  if (path != nullptr && std::strcmp(path, "virtual") == 0) return false;
  const int64_t pixels = g.out_height * g.out_width, taps = g.kernel_h * g.kernel_w;
  if (g.stride_h > 1 || g.stride_w > 1 || pixels <= 64) return true;
  const PhasePlanes planes(g);
  if (taps == 1) return !planes.in_place && g.channels >= g.out_channels;
  return g.channels * taps < 256 || (!planes.aligned && g.out_channels >= 128);
}

// Pixels per gathered tile: the kernel's widest tile, except 64 for 1 x 1 convolutions, whose
// gathers are plain copies and whose 64-lane kernel runs faster (1.25x on ResNet-50's strided
// 1 x 1 layers; 3 x 3 ones gain nothing, their gathers cost more per pixel).
int64_t GatheredTileLanes(const ConvGeometry& g, int64_t widest) {
  return g.kernel_h * g.kernel_w == 1 ? std::min<int64_t>(64, widest) : widest;
}

}  // namespace

Status LscConvKernel::Plan(const ConvGeometry& g, const PackedWeight& weight, bool cache,
                           std::shared_ptr<const ConvPlan>* out) {
  auto same = [&](const ConvPlan& p) {
    return p.g.channels == g.channels && p.g.height == g.height && p.g.width == g.width;
  };
  if (cache) {
    std::lock_guard<std::mutex> lock(plans_mutex_);
    for (const auto& p : plans_) {
      if (same(*p)) {
        *out = p;
        return Status();
      }
    }
  }
  auto plan = std::make_shared<ConvPlan>();
  plan->g = g;
  const int64_t wanted = static_cast<int64_t>(ParallelBatches(1 << 20)) * 2;
  // (mswu weights add their unified blocks on the virtual positions; a geometry whose padded
  // copy would be too large for the gathered tiles gets the virtual plan's verdict.)
  const int64_t cores = static_cast<int64_t>(ParallelBatches(1 << 20)) / 2;
  if (weight.unified() != nullptr || !PreferGathered(g) ||
      !GatheredPlan(g, weight, GatheredTileLanes(g, kernels_->tiled_tile), cores, plan.get()).ok()) {
    *plan = ConvPlan();
    plan->g = g;
    LSC_RETURN_IF_ERROR(VirtualPlan(g, weight, wanted, plan.get()));
  }
  if (cache) {
    std::lock_guard<std::mutex> lock(plans_mutex_);
    if (plans_.size() >= 4) plans_.erase(plans_.begin());
    plans_.push_back(plan);
  }
  *out = plan;
  return Status();
}

Status LscConvKernel::VirtualPlan(const ConvGeometry& g, const PackedWeight& weight, int64_t wanted,
                                  ConvPlan* plan) const {
  const PhasePlanes planes(g);
  if (!planes.fits) {
    return Fail("the padded input planes of X [", g.batch, ", ", g.channels, ", ", g.height, ", ", g.width,
                "] would take more than 2^29 floats per channel (pads ", g.pad_top, ", ", g.pad_left, ", strides ",
                g.stride_h, ", ", g.stride_w, ", dilations ", g.dilation_h, ", ", g.dilation_w,
                "); LSCConv computes on them");
  }
  plan->hq = planes.hq;
  plan->wq = planes.wq;
  plan->in_place = planes.in_place;
  plan->channel = planes.channel_size(g);
  plan->direct_out = planes.wq == g.out_width;
  plan->positions = g.out_height > 0 && g.out_width > 0 ? (g.out_height - 1) * planes.wq + g.out_width : 0;
  const int64_t rows = g.channels * g.kernel_h * g.kernel_w;
  if (static_cast<double>(g.channels) * static_cast<double>(plan->channel) > 536870911.0) {
    return Fail("X of ", g.channels, " x ", g.height, " x ", g.width,
                " is too large for LSCConv (at most 2^29 padded elements per image)");
  }
  std::vector<int64_t> offsets(static_cast<size_t>(rows));
  planes.RowOffsets(g, g.channels, offsets.data());
  const int64_t lanes = kernels_->tiled_tile;
  // K-blocks of whole input channels whose activations take about 48 KiB, an L1's worth (7%
  // faster on ResNet-50 than 24 KiB: more non-zeros per column and block); chunks of output
  // channels whose tile takes about 16 KiB.
  const int64_t channels_per_block = std::max<int64_t>(1, 49152 / ChannelFootprint(g, planes, lanes));
  const int64_t taps = g.kernel_h * g.kernel_w;
  LSC_RETURN_IF_ERROR(BuildTiledLayout(weight.columns(), offsets.data(),
                                       UnitBlocks(rows, taps, channels_per_block * taps), TiledChunk(lanes),
                                       &plan->layout));
  const int64_t tiles = g.batch * ((plan->positions + lanes - 1) / lanes);
  plan->bounds = plan->layout.TaskBounds((wanted + tiles - 1) / tiles);
  return Status();
}

Status LscConvKernel::Compute(OrtKernelContext* raw_context) {
  Ort::KernelContext context(raw_context);
  std::shared_ptr<PackedWeight> weight = weight_;
  if (!weight) {
    LSC_RETURN_IF_ERROR(LoadWeight(context.GetInput(1), false, &weight));
    LSC_RETURN_IF_ERROR(PrepareWeight(*weight));
  }
  Ort::ConstValue x_value = context.GetInput(0);
  const auto x_info = x_value.GetTensorTypeAndShapeInfo();
  ConvGeometry g;
  LSC_RETURN_IF_ERROR(ComputeConvGeometry(attributes_, x_info.GetShape(), weight->shape(), &g));
  const float* bias = nullptr;
  std::vector<float> bias_buffer;
  LSC_RETURN_IF_ERROR(ReadBias(context, 2, g.out_channels, "B", &bias_buffer, &bias));
  const bool one_d = weight->shape().size() == 3;
  std::vector<int64_t> y_shape = {g.batch, g.out_channels};
  if (!one_d) y_shape.push_back(g.out_height);
  y_shape.push_back(g.out_width);
  LSC_RETURN_IF_ERROR(CheckAllocation(static_cast<uint64_t>(g.output_elements) * sizeof(float), "the output Y"));
  Ort::UnownedValue y_value = context.GetOutput(0, y_shape);
  const int64_t pixels = g.out_height * g.out_width, image = g.channels * g.height * g.width;
  const int64_t y_size = g.output_elements;
  if (y_size == 0) return Status();

  const bool half = x_info.GetElementType() == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16;
  const float* x = nullptr;
  float* y = nullptr;
  if (half) {
    float* x_float = ThreadScratch(kScratchHalfIn, static_cast<size_t>(g.batch * image));
    HalfToFloat(x_value.GetTensorData<Ort::Float16_t>(), x_float, static_cast<size_t>(g.batch * image));
    x = x_float;
    y = ThreadScratch(kScratchHalfOut, static_cast<size_t>(y_size));
  } else {
    x = x_value.GetTensorData<float>();
    y = y_value.GetTensorMutableData<float>();
  }

  // Z: a residual of Y's shape and type, added before the activation.
  const float* residual = nullptr;
  const float* deferred_residual = nullptr;
  LSC_RETURN_IF_ERROR(ReadResidual(context, 3, y_shape, kScratchHalfZ, &residual));
  // onnxruntime may give Y the buffer of Z (MayInplace, when nothing reads Z later): the
  // products that keep their partial sums in Y then start from Z's values instead of adding them
  // at the end (which saves a stream of memory traffic), and mswu weights, whose residual comes
  // after the product, keep a copy.
  bool residual_in_y = residual != nullptr && residual == y;
  if (residual_in_y) residual_in_place_runs.fetch_add(1, std::memory_order_relaxed);
  if (residual_in_y && weight->unified() != nullptr) {
    float* copy = ThreadScratch(kScratchHalfZ, static_cast<size_t>(y_size));
    std::memcpy(copy, residual, static_cast<size_t>(y_size) * sizeof(float));
    residual = copy;
    residual_in_y = false;
  }

  std::shared_ptr<const ConvPlan> plan;
  LSC_RETURN_IF_ERROR(Plan(g, *weight, weight == weight_, &plan));
  if (plan->gathered) {
    LSC_RETURN_IF_ERROR(GatheredProduct(raw_context, g, *plan, x, bias, residual, residual_in_y, y));
    if (half) FloatToHalf(y, y_value.GetTensorMutableData<Ort::Float16_t>(), static_cast<size_t>(y_size));
    return Status();
  }
  const KernelSet& kernels = *kernels_;
  const PhasePlanes planes(g);
  const float* input = x;
  if (!plan->in_place) {
    const double floats = static_cast<double>(g.batch) * static_cast<double>(g.channels) *
                          static_cast<double>(plan->channel);
    LSC_RETURN_IF_ERROR(CheckAllocation(floats > 1e18 ? ~uint64_t{0} : static_cast<uint64_t>(4 * floats),
                                        "the padded input planes"));
    float* padded = ThreadScratch(kScratchPlanes, static_cast<size_t>(g.batch * g.channels * plan->channel));
    LSC_RETURN_IF_ERROR(ParallelFor(raw_context, static_cast<size_t>(g.batch * g.channels), [&](size_t item) {
      planes.Fill(x + static_cast<int64_t>(item) * g.height * g.width, g, kernels.gather,
                  padded + static_cast<int64_t>(item) * plan->channel);
    }));
    input = padded;
  }
  // The weight is block-diagonal over the groups (PrepareWeight): row k of the product is tap
  // (c, i, j) of input channel c of the whole image. Tasks are (image, tile of virtual
  // positions, run of output channels).
  const int64_t T = kernels.tiled_tile, M = g.out_channels;
  const int64_t per_image = (plan->positions + T - 1) / T, tiles = g.batch * per_image;
  const int64_t parts = static_cast<int64_t>(plan->bounds.size()) - 1;
  const TiledLayout& layout = plan->layout;
  const TiledView view = layout.view();
  const int64_t span = std::max<int64_t>(1, kConvSpanBytes / (4 * T * layout.chunk)) * layout.chunk;
  // mswu weights add their unified blocks after this product, so their residual and activation
  // are applied last, by AddResidualAndActivate; every other weight fuses them into the product.
  const bool fused = weight->unified() == nullptr;
  const bool relu = fused && activation_ == "Relu";
  if (!fused) std::swap(residual, deferred_residual);
  const Epilogue direct{1.0f, bias, relu, nullptr};
  const Epilogue staged{1.0f, bias, false, nullptr};  // residual and activation at the copy-out
  // Items go part by part (column runs outer): the pool hands each thread a contiguous run of
  // batches, so two threads write different output channels, not neighbouring pixels of the same
  // channels (on a 14 x 14 map that ran no faster on two threads than on one; now 1.6x).
  LSC_RETURN_IF_ERROR(ParallelFor(raw_context, static_cast<size_t>(tiles * parts), [&](size_t item) {
    const int64_t p = static_cast<int64_t>(item) / tiles, tile = static_cast<int64_t>(item) % tiles;
    const int64_t b = tile / per_image, v0 = tile % per_image * T, count = std::min(T, plan->positions - v0);
    const int64_t n0 = plan->bounds[p], n1 = plan->bounds[p + 1];
    const float* base = input + b * g.channels * plan->channel + v0;
    float* out = y + b * M * pixels;
    // K-block by K-block over a span of output channels, so that a block's activations stay in
    // L1 while every column of the span uses them (the partial sums wait in the output tile).
    auto product = [&](const Epilogue& e, float* tile_out, int64_t ldy, bool from_out) {
      for (int64_t s0 = n0; s0 < n1; s0 += span) {
        const int64_t s1 = std::min(n1, s0 + span);
        for (int64_t k = 0; k < layout.blocks; ++k) {
          kernels.spmm_tiled(layout.blocks_view(k, k + 1, k > 0 || from_out, k + 1 < layout.blocks), s0, s1, base,
                             count, e, tile_out, ldy);
        }
      }
    };
    if (plan->direct_out) {
      Epilogue e = direct;
      if (residual != nullptr && !residual_in_y) e.residual = residual + b * M * pixels + v0;
      product(e, out + v0, pixels, residual_in_y);
      return;
    }
    float* yt = ThreadScratch(kScratchCols, static_cast<size_t>(M * T));
    product(staged, yt, T, false);
    // Keep the positions that are real output pixels (ow < OW), row run by row run.
    for (int64_t v = v0; v < v0 + count;) {
      const int64_t oh = v / plan->wq, ow = v % plan->wq;
      const int64_t run = std::min(v0 + count, (oh + 1) * plan->wq) - v;
      const int64_t keep = std::max<int64_t>(0, std::min(run, g.out_width - ow));
      if (keep > 0) {
        for (int64_t i = n0; i < n1; ++i) {
          const int64_t n = view.column[i];  // the chunk's columns, in any block's order
          const int64_t at = n * pixels + oh * g.out_width + ow;
          StoreResidualAndRelu(yt + n * T + (v - v0), residual ? residual + b * M * pixels + at : nullptr, relu,
                               out + at, keep);
        }
      }
      v += run;
    }
  }));
  if (!fused) {
    LSC_RETURN_IF_ERROR(AddUnifiedConv(raw_context, *weight, g, x, y));  // mswu: unified blocks, one multiply each
    AddResidualAndActivate(deferred_residual, activation_ == "Relu", nullptr, y, y_size);
  }
  if (half) FloatToHalf(y, y_value.GetTensorMutableData<Ort::Float16_t>(), static_cast<size_t>(y_size));
  return Status();
}

// `g` is this run's geometry: the plan is shared by every batch size of one input height and width.
Status LscConvKernel::GatheredProduct(OrtKernelContext* context, const ConvGeometry& g, const ConvPlan& plan,
                                      const float* x, const float* bias, const float* residual, bool residual_in_y,
                                      float* y) const {
  const KernelSet& kernels = *kernels_;
  const int64_t pixels = g.out_height * g.out_width, M = g.out_channels, channel = plan.source_channel;
  const float* input = x;
  if (plan.source != ConvPlan::Source::kInput) {
    const double floats = static_cast<double>(g.batch) * static_cast<double>(g.channels) * static_cast<double>(channel);
    LSC_RETURN_IF_ERROR(CheckAllocation(floats > 1e18 ? ~uint64_t{0} : static_cast<uint64_t>(4 * floats),
                                        "the padded input planes"));
    float* padded = ThreadScratch(kScratchPlanes, static_cast<size_t>(g.batch * g.channels * channel));
    const PhasePlanes planes(g);
    LSC_RETURN_IF_ERROR(ParallelFor(context, static_cast<size_t>(g.batch * g.channels), [&](size_t item) {
      const float* in = x + static_cast<int64_t>(item) * g.height * g.width;
      float* out = padded + static_cast<int64_t>(item) * channel;
      if (plan.source == ConvPlan::Source::kPhases) return planes.Fill(in, g, kernels.gather, out);
      FillPadded(in, g.height, g.width, g.pad_top, g.pad_left, 1, 1, plan.hp, plan.wp, kernels.gather, out);
    }));
    input = padded;
  }
  const TiledLayout& layout = *plan.tiled;
  const int64_t K = static_cast<int64_t>(plan.row_offset.size()), L = plan.lanes;
  const int64_t tiles = g.batch * plan.tiles_per_image, parts = static_cast<int64_t>(plan.bounds.size()) - 1;
  auto image_input = [&](int64_t tile) { return input + tile / plan.tiles_per_image * g.channels * channel; };
  auto lanes_in = [&](int64_t tile) {
    return std::min(plan.per_tile, pixels - tile % plan.tiles_per_image * plan.per_tile);
  };
  // One task per tile gathers each K-block into L1 just before it uses it; when tiles split into
  // several tasks (fewer tiles than cores), the tiles' rows are gathered once, in parallel, and shared.
  float* shared = nullptr;  // tiles x K x L
  if (parts > 1 && 4.0 * static_cast<double>(tiles) * static_cast<double>(K * L) <= kMaxSharedBytes) {
    LSC_RETURN_IF_ERROR(CheckAllocation(4 * static_cast<uint64_t>(tiles) * static_cast<uint64_t>(K * L),
                                        "the gathered input rows"));
    shared = ThreadScratch(kScratchGathered, static_cast<size_t>(tiles * K * L));
    LSC_RETURN_IF_ERROR(ParallelFor(context, static_cast<size_t>(tiles * layout.blocks), [&](size_t item) {
      const int64_t tile = static_cast<int64_t>(item) / layout.blocks, k = static_cast<int64_t>(item) % layout.blocks;
      const int64_t k0 = layout.block_begin[k], k1 = layout.block_begin[k + 1];
      kernels.gather(image_input(tile), plan.row_offset.data() + k0, k1 - k0,
                     plan.gather_view(tile % plan.tiles_per_image, lanes_in(tile)), shared + (tile * K + k0) * L, L);
    }));
  }
  int64_t block_rows = 0;
  for (int64_t k = 0; k < layout.blocks; ++k) {
    block_rows = std::max(block_rows, layout.block_begin[k + 1] - layout.block_begin[k]);
  }
  const int64_t span = std::max<int64_t>(1, kConvSpanBytes / (4 * L * layout.chunk)) * layout.chunk;
  const bool relu = activation_ == "Relu";
  // On maps of up to 1024 pixels, several tiles of one channel are neighbours in memory: a task
  // keeps its partial sums in a buffer of its own and writes each channel's pixels to Y once,
  // so that tasks on other threads do not fight over those lines at every K-block (3 x 3 stride
  // 2 on 28 x 28: 1.8x on two threads, 1.1x on one). 1 x 1 ones would pay more for the copy than
  // they gain (0.85x on one thread, as their residual then takes a pass of its own).
  const bool private_sums = pixels <= 1024 && plan.tiles_per_image > 1 && g.kernel_h * g.kernel_w > 1;
  return ParallelFor(context, static_cast<size_t>(tiles * parts), [&](size_t item) {  // part by part, as above
    const int64_t p = static_cast<int64_t>(item) / tiles, tile = static_cast<int64_t>(item) % tiles;
    const int64_t b = tile / plan.tiles_per_image, t = tile % plan.tiles_per_image;
    const int64_t n0 = plan.bounds[p], n1 = plan.bounds[p + 1];
    if (n0 == n1) return;
    const int64_t p0 = t * plan.per_tile, count = lanes_in(tile);
    const GatherView view = plan.gather_view(t, count);
    float* own = shared ? nullptr : ThreadScratch(kScratchGatheredBlock, static_cast<size_t>(block_rows * L));
    const float* z = residual ? residual + b * M * pixels + p0 : nullptr;
    float* out = y + b * M * pixels + p0;
    float* sums = private_sums ? ThreadScratch(kScratchCols, static_cast<size_t>(M * L)) : out;
    const int64_t lds = private_sums ? L : pixels;
    // (private sums: the residual and the activation at the copy to Y)
    const bool from_out = residual_in_y && !private_sums;  // the sums start from Z, in Y
    const Epilogue e = private_sums ? Epilogue{1.0f, bias, false, nullptr}
                                    : Epilogue{1.0f, bias, relu, from_out ? nullptr : z};
    for (int64_t s0 = n0; s0 < n1; s0 += span) {
      const int64_t s1 = std::min(n1, s0 + span);
      for (int64_t k = 0; k < layout.blocks; ++k) {
        const int64_t k0 = layout.block_begin[k], k1 = layout.block_begin[k + 1];
        const float* rows = shared ? shared + (tile * K + k0) * L : own;
        if (own) kernels.gather(image_input(tile), plan.row_offset.data() + k0, k1 - k0, view, own, L);
        kernels.spmm_tiled(layout.blocks_view(k, k + 1, k > 0 || from_out, k + 1 < layout.blocks), s0, s1, rows,
                           count, e, sums, lds);
      }
      if (!private_sums) continue;
      for (int64_t i = s0; i < s1; ++i) {  // the span's columns, in any block's order
        const int64_t n = layout.column[static_cast<size_t>(i)];
        StoreResidualAndRelu(sums + n * L, z ? z + n * pixels : nullptr, relu, out + n * pixels, count);
      }
    }
  });
}

}  // namespace lsc
