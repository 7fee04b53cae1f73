"""numpy reference implementations of the custom ops, for ``onnx.reference.ReferenceEvaluator``.

They decode the blob with :func:`lsc_ort.decode` and compute exactly as the contract in
:mod:`lsc_ort.ops` says, so rewritten models can be checked without the native library::

    from lsc_ort.reference import reference_evaluator
    outputs = reference_evaluator(model).run(None, {"x": x})

Non-finite values follow the ops' structural-zero semantics (:mod:`lsc_ort.ops`), as the native
kernels do: a weight stored as zero (+0.0, or int8 code 0) is absent, as in ``scipy.sparse``, so
a NaN or an infinity in the activations reaches only the outputs it meets through stored
weights; every stored weight, including ``-0.0`` and non-finite ones, takes part per IEEE 754
(``inf * -0.0`` is NaN, so is a stored infinity times a zero or padded activation). Dense ONNX
``MatMul`` / ``Conv`` differ there: they give NaN wherever a non-finite input meets any weight.

:func:`reference_evaluator` also replaces onnx's reference ``GlobalMaxPool``, which reduces the
wrong axes for inputs other than 4-D (onnx issue 7682, fixed after onnx 1.23): e.g. Magika's 1-D
convolutional model failed in the ``Squeeze`` that follows it; and its ``MaxPool`` at stride 1,
which mixes up the pads of different axes (pads ``[0, 1, 2, 0]`` on a 7 x 8 input gave 6 x 8, not
7 x 7) or fails (onnx 1.23).
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import onnx
from onnx.reference import ReferenceEvaluator
from onnx.reference.op_run import OpRun
from onnx.reference.ops.op_max_pool import MaxPool as OnnxMaxPool

from lsc_ort.api import decode, inspect
from lsc_ort.model_file import check_model_proto, read_model_file
from lsc_ort.ops import (
    CONV_ACTIVATIONS,
    DOMAIN,
    MATMUL_ACTIVATIONS,
    MATMUL_INPUT_LAYOUTS,
    MATMUL_NORMS,
    MATMUL_OUTPUT_LAYOUTS,
)

_FLOAT_INPUTS = (np.dtype(np.float32), np.dtype(np.float16))
OUTPUT_LAYOUT_PERMS = {"BHSD": (0, 2, 1, 3), "BHDS": (0, 2, 3, 1)}
"""``LSCMatMul``'s ``Transpose`` of ``Reshape(P, [B, S, H, N/H])`` for each ``output_layout``."""
INPUT_LAYOUT_PERM = (0, 2, 1, 3)
"""``LSCMatMul``'s ``Transpose`` of ``A`` before ``Reshape(.., [B, S, K])`` for ``input_layout="BHSD"``."""
HEAD_LAYOUTS = ("BHSD", "BHDS")
"""``LSCMatMul``'s attention-head layouts: the ones that need ``heads``."""
TILES = "TILES"
"""``LSCMatMul``'s row-tile layout (of ``A`` for ``input_layout``, of ``Y`` for ``output_layout``)."""
TILE_ROWS = 64
"""Rows per tile of the ``TILES`` layout (the last tile of a matrix may have fewer)."""
LAYER_NORM = "LayerNorm"
"""``LSCMatMul``'s ``norm`` of each row as ONNX ``LayerNormalization`` (``axis=-1``)."""
DEFAULT_EPSILON = 1e-5
"""``LSCMatMul``'s ``epsilon`` when the attribute is not given."""


def weight_values(blob: np.ndarray | bytes) -> np.ndarray:
    """The weight a blob stands for: the decoded array (bit-exact), or ``scale * q`` in float32
    for int8 codes ``q``."""
    weight = decode(blob)
    if weight.dtype == np.int8:
        return np.float32(inspect(blob)["scale"]) * weight.astype(np.float32)
    return weight


def decode_weight(blob: np.ndarray | bytes) -> np.ndarray:
    """The weight a blob stands for, in float32 (the ops compute in float32)."""
    return weight_values(blob).astype(np.float32, copy=False)


def stored_weight(blob: np.ndarray | bytes) -> tuple[np.ndarray, np.ndarray]:
    """The float32 weight a blob stands for and where it stores an element: every bit pattern
    but all-zero bits (+0.0, int8 code 0), which is an absent (structural) zero."""
    raw = decode(blob)
    stored = raw.view(np.dtype(f"u{raw.itemsize}")) != 0 if raw.dtype.kind == "f" else raw != 0
    return decode_weight(blob), stored


def _indicator(mask: np.ndarray) -> np.ndarray:
    return mask.astype(np.float32)


def sparse_matmul(a: np.ndarray, weight: np.ndarray, stored: np.ndarray) -> np.ndarray:
    """``a @ weight`` in float32 where the weight's elements outside ``stored`` are absent.

    Finite inputs give ``np.matmul``. Otherwise each output is the IEEE sum of its terms
    ``a[k] * weight[k, n]`` over the stored ``k`` only: the finite terms come from one matmul
    with the non-finite values zeroed, and whether any term is NaN, +inf or -inf from matmuls of
    indicator matrices (exact: counts of non-negative terms).
    """
    a_finite, w_finite = np.isfinite(a), np.isfinite(weight)
    if a_finite.all() and w_finite.all():
        return np.matmul(a, weight)
    y = np.matmul(np.where(a_finite, a, np.float32(0)), np.where(w_finite, weight, np.float32(0)))

    def any_term(*pairs: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        return sum(np.matmul(_indicator(x), _indicator(w)) for x, w in pairs) > 0

    a_nan, a_pinf, a_ninf = np.isnan(a), a == np.inf, a == -np.inf
    a_inf, a_zero, a_pos, a_neg = a_pinf | a_ninf, a == 0, a > 0, a < 0
    w_pinf, w_ninf = weight == np.inf, weight == -np.inf
    w_pos, w_neg = stored & (weight > 0), stored & (weight < 0)
    nan = any_term(
        (a_nan, stored),
        (np.ones_like(a_nan), np.isnan(weight)),
        (a_inf, stored & (weight == 0)),  # -0.0 is stored
        (a_zero, w_pinf | w_ninf),
    )
    pos = any_term((a_pinf, w_pos), (a_ninf, w_neg), (a_pos, w_pinf), (a_neg, w_ninf))
    neg = any_term((a_pinf, w_neg), (a_ninf, w_pos), (a_pos, w_ninf), (a_neg, w_pinf))
    with np.errstate(invalid="ignore"):
        extra = np.where(nan, np.float32(np.nan), np.where(pos, np.float32(np.inf), np.float32(0)))
        extra = extra + np.where(neg, np.float32(-np.inf), np.float32(0))  # +inf + -inf is NaN
        return np.where(nan | pos | neg, y + extra, y).astype(np.float32)


def _check_float(name: str, op: str, value: np.ndarray) -> None:
    if value.dtype not in _FLOAT_INPUTS:
        raise TypeError(f"{op}: input {name} must be float32 or float16, got {value.dtype}")


def _text(value: str | bytes | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


def matmul_head_layouts(
    heads: int | None, input_layout: str | bytes | None, output_layout: str | bytes | None
) -> tuple[int, str, str]:
    """``LSCMatMul``'s layout attributes checked against the contract: ``(heads, input_layout,
    output_layout)``, ``None`` read as the defaults (0, ``""``, ``""``).

    Raises:
        ValueError: an unknown layout, ``heads`` < 1 with a head layout (``BHSD``, ``BHDS``), or
            ``heads`` without one (``TILES`` takes no ``heads``); the message does not name the op.
    """
    h = 0 if heads is None else int(heads)
    layout_in, layout_out = _text(input_layout), _text(output_layout)
    if layout_in not in MATMUL_INPUT_LAYOUTS:
        raise ValueError(f"unknown input_layout {layout_in!r}; supported: {MATMUL_INPUT_LAYOUTS}")
    if layout_out not in MATMUL_OUTPUT_LAYOUTS:
        raise ValueError(f"unknown output_layout {layout_out!r}; supported: {MATMUL_OUTPUT_LAYOUTS}")
    head_layout, names = layout_in in HEAD_LAYOUTS or layout_out in HEAD_LAYOUTS, " or ".join(HEAD_LAYOUTS)
    if head_layout and h < 1:
        raise ValueError(f"attribute heads must be >= 1 with a head layout ({names}), got {h}")
    if not head_layout and h != 0:
        tiles = f" ({TILES} takes none)" if TILES in (layout_in, layout_out) else ""
        raise ValueError(f"attribute heads ({h}) is only allowed with input_layout or output_layout {names}{tiles}")
    return h, layout_in, layout_out


def matmul_norm(
    norm: str | bytes | None, epsilon: float | None, scale: bool, bias: bool, output_layout: str
) -> tuple[str, float]:
    """``LSCMatMul``'s row normalization checked against the contract: ``(norm, epsilon)``,
    ``None`` read as the defaults (``""``, 1e-5); ``scale`` and ``bias`` say whether inputs 4
    (``norm_scale``) and 5 (``norm_bias``) are given, ``output_layout`` is the checked layout.

    Raises:
        ValueError: an unknown ``norm``, ``epsilon`` not finite or negative, ``norm`` without
            ``norm_scale`` or with ``output_layout``, or ``norm_scale`` / ``norm_bias`` without
            ``norm``; the message does not name the op.
    """
    kind = _text(norm)
    eps = DEFAULT_EPSILON if epsilon is None else float(epsilon)
    if kind not in MATMUL_NORMS:
        raise ValueError(f"unknown norm {kind!r}; supported: {MATMUL_NORMS}")
    if not math.isfinite(eps) or eps < 0:
        raise ValueError(f"attribute epsilon must be finite and >= 0, got {eps}")
    if not kind:
        given = [name for name, on in (("norm_scale", scale), ("norm_bias", bias)) if on]
        if given:
            raise ValueError(f"input(s) {', '.join(given)} given without attribute norm")
        return kind, eps
    if not scale:
        raise ValueError(f"norm {kind} needs input 4 norm_scale [N]")
    if output_layout:
        raise ValueError(f"norm {kind} cannot be combined with output_layout {output_layout}")
    return kind, eps


def to_tiles(p: np.ndarray) -> np.ndarray:
    """The plain ``p [..., N]`` (rank >= 1) stored in the ``TILES`` layout: of the same shape,
    its ``M x N`` elements (``M`` the product of the leading dims) row tile by row tile, each
    tile of :data:`TILE_ROWS` rows (the last of fewer) column-major."""
    m, n = math.prod(p.shape[:-1]), p.shape[-1]
    p2d = p.reshape(m, n)
    full = m - m % TILE_ROWS
    tiles = p2d[:full].reshape(full // TILE_ROWS, TILE_ROWS, n).transpose(0, 2, 1)
    return np.concatenate([tiles.ravel(), p2d[full:].T.ravel()]).reshape(p.shape)


def from_tiles(a: np.ndarray) -> np.ndarray:
    """The plain tensor that ``a [..., K]`` (rank >= 1) in the ``TILES`` layout stores, of the
    same shape: the inverse of :func:`to_tiles`."""
    m, k = math.prod(a.shape[:-1]), a.shape[-1]
    flat = a.reshape(-1)
    full = m - m % TILE_ROWS
    tiles = flat[: full * k].reshape(full // TILE_ROWS, k, TILE_ROWS).transpose(0, 2, 1).reshape(full, k)
    rest = flat[full * k :].reshape(k, m - full).T
    return np.concatenate([tiles, rest]).reshape(a.shape)


class LSCMatMul(OpRun):
    """``Y = norm(activation(alpha * (A @ W) + bias + Z))``, computed in float32 (Gelu in
    float64), ``Z`` broadcasting with the product; ``Y`` has ``A``'s dtype. ``input_layout`` /
    ``output_layout`` read ``A`` and write ``Y`` in the attention-head layouts or in row tiles
    (:mod:`lsc_ort.ops`, :func:`to_tiles`); ``norm="LayerNorm"`` is :func:`layer_norm`."""

    op_domain = DOMAIN

    def _run(
        self,
        A: np.ndarray,
        W_blob: np.ndarray,
        bias: np.ndarray | None = None,
        Z: np.ndarray | None = None,
        norm_scale: np.ndarray | None = None,
        norm_bias: np.ndarray | None = None,
        alpha: float | None = None,
        transB: int | None = None,
        activation: str | None = None,
        heads: int | None = None,
        input_layout: str | None = None,
        output_layout: str | None = None,
        norm: str | None = None,
        epsilon: float | None = None,
    ) -> tuple[np.ndarray]:
        _check_float("A", "LSCMatMul", A)
        act = "" if activation is None else activation
        if isinstance(act, bytes):
            act = act.decode()
        if act not in MATMUL_ACTIVATIONS:
            raise ValueError(f"LSCMatMul: unknown activation {act!r}; supported: {MATMUL_ACTIVATIONS}")
        try:
            h, layout_in, layout_out = matmul_head_layouts(heads, input_layout, output_layout)
            norm_kind, eps = matmul_norm(norm, epsilon, norm_scale is not None, norm_bias is not None, layout_out)
        except ValueError as error:
            raise ValueError(f"LSCMatMul: {error}") from None
        alpha = 1.0 if alpha is None else float(alpha)
        trans_b = 0 if transB is None else int(transB)
        if trans_b not in (0, 1):
            raise ValueError(f"LSCMatMul: attribute transB must be 0 or 1, got {trans_b}")
        weight, stored = stored_weight(W_blob)
        if weight.ndim != 2:
            raise ValueError(
                f"LSCMatMul: the weight blob holds a tensor of rank {weight.ndim}; a 2-D matrix is needed"
            )
        if trans_b:
            weight, stored = weight.T, stored.T
        k, n = weight.shape
        a = A
        if layout_in in HEAD_LAYOUTS:
            a = _read_heads(A, h, k)
        if A.ndim < 1 or a.shape[-1] != k:
            raise ValueError(f"LSCMatMul: A has shape {list(A.shape)} but the weight is {k}x{n}")
        if layout_in == TILES:
            a = from_tiles(A)
        if layout_out and Z is not None:
            raise ValueError(f"LSCMatMul: a residual Z cannot be combined with output_layout {layout_out}")
        if layout_out in HEAD_LAYOUTS:
            if a.ndim != 3:
                read = " as read (after input_layout)" if layout_in else ""
                raise ValueError(
                    f"LSCMatMul: output_layout {layout_out} needs A{read} of rank 3 [B, S, K], got shape "
                    f"{list(a.shape)}"
                )
            if n % h:
                raise ValueError(f"LSCMatMul: heads {h} does not divide N = {n} (output_layout {layout_out})")
        scale = _vector("LSCMatMul", "norm_scale", norm_scale, n)
        shift = _vector("LSCMatMul", "norm_bias", norm_bias, n)
        y = sparse_matmul(a.astype(np.float32, copy=False), weight, stored)
        if alpha != 1.0:
            y = np.float32(alpha) * y
        if bias is not None:
            y = y + _vector("LSCMatMul", "bias", bias, n)
        y = _epilogue("LSCMatMul", y, Z, act, broadcast=True)
        if norm_kind == LAYER_NORM and scale is not None:
            y = layer_norm(y, scale, shift, eps)
        if layout_out in HEAD_LAYOUTS:
            b, s, _ = y.shape
            y = np.ascontiguousarray(y.reshape(b, s, h, n // h).transpose(OUTPUT_LAYOUT_PERMS[layout_out]))
        elif layout_out == TILES:
            y = to_tiles(y)
        return (y.astype(A.dtype, copy=False),)


def _read_heads(a: np.ndarray, heads: int, k: int) -> np.ndarray:
    """``A [B, H, S, K/H]`` of ``input_layout="BHSD"`` as the ``[B, S, K]`` matrix it stands for."""
    if a.ndim != 4:
        raise ValueError(
            f"LSCMatMul: input_layout BHSD needs A of rank 4 [B, H, S, K/H], got shape {list(a.shape)}"
        )
    if k % heads:
        raise ValueError(f"LSCMatMul: heads {heads} does not divide K = {k} (input_layout BHSD)")
    if a.shape[1] != heads or a.shape[3] * heads != k:
        raise ValueError(
            f"LSCMatMul: A has shape {list(a.shape)} but input_layout BHSD with heads {heads} and a weight "
            f"of K = {k} needs A of shape [B, {heads}, S, {k // heads}]"
        )
    b, _, s, _ = a.shape
    return a.transpose(INPUT_LAYOUT_PERM).reshape(b, s, k)


def _vector(op: str, name: str, value: np.ndarray | None, n: int) -> np.ndarray | None:
    """The optional float input ``name`` of shape ``[n]`` in float32 (``None`` when absent)."""
    if value is None:
        return None
    _check_float(name, op, value)
    if value.shape != (n,):
        raise ValueError(f"{op}: {name} has shape {list(value.shape)}, expected [{n}]")
    return value.astype(np.float32, copy=False)


def _epilogue(
    op: str, y: np.ndarray, z: np.ndarray | None, activation: str, broadcast: bool = False
) -> np.ndarray:
    """``activation(y + z)`` in float32, ``z`` the optional residual: of ``y``'s shape, or with
    ``broadcast`` of ``y``'s last dim and leading dims that broadcast with ``y``'s as in ONNX
    ``Add`` (the result of the broadcast shape)."""
    y = np.asarray(y, dtype=np.float32)
    if z is not None:
        _check_float("Z", op, z)
        if not broadcast and z.shape != y.shape:
            raise ValueError(f"{op}: Z has shape {list(z.shape)} but Y has shape {list(y.shape)}")
        if z.ndim < 1 or z.shape[-1] != y.shape[-1]:
            raise ValueError(f"{op}: Z has shape {list(z.shape)} but its last dimension must be N = {y.shape[-1]}")
        try:
            np.broadcast_shapes(z.shape, y.shape)
        except ValueError:
            raise ValueError(
                f"{op}: Z has shape {list(z.shape)}, which does not broadcast with the product's shape "
                f"{list(y.shape)}"
            ) from None
        y = y + z.astype(np.float32, copy=False)
    if activation == "Relu":
        return np.where(y < 0, np.float32(0), y)  # NaN stays NaN
    return gelu(y) if activation == "Gelu" else y


def layer_norm(y: np.ndarray, scale: np.ndarray, bias: np.ndarray | None, epsilon: float) -> np.ndarray:
    """ONNX ``LayerNormalization`` of each row of ``y`` (``axis=-1``, ``stash_type=1``) in float32:
    ``(y - mean) / sqrt(var + epsilon) * scale + bias``, ``var`` the biased variance."""
    y = np.asarray(y, dtype=np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        centered = y - y.mean(axis=-1, keepdims=True)
        variance = np.square(centered).mean(axis=-1, keepdims=True)
        out = centered / np.sqrt(variance + np.float32(epsilon)) * scale
    return out if bias is None else out + bias


def gelu(y: np.ndarray) -> np.ndarray:
    """ONNX ``Gelu`` (approximate ``"none"``), ``x / 2 * erfc(-x / sqrt(2))``, in float64 (erfc
    keeps the negative tail exact), returned as float32; Gelu(-inf) is NaN, as ``x / 2 * (1 +
    erf(x / sqrt(2)))`` gives."""
    x = y.astype(np.float64)
    with np.errstate(invalid="ignore"):
        g = 0.5 * x * np.vectorize(math.erfc, otypes=[np.float64])(-x / math.sqrt(2.0))
    return np.where(np.isneginf(x), np.nan, g).astype(np.float32)


def _conv_pads(
    spatial: tuple[int, ...],
    kernel: tuple[int, ...],
    strides: list[int],
    dilations: list[int],
    pads: list[int] | None,
    auto_pad: str,
) -> list[tuple[int, int]]:
    """(begin, end) padding of each spatial axis, as ONNX ``Conv`` defines it."""
    rank = len(spatial)
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        out = []
        for size, k, s, d in zip(spatial, kernel, strides, dilations, strict=True):
            total = max(0, (-(-size // s) - 1) * s + (k - 1) * d + 1 - size)
            small = total // 2
            out.append((small, total - small) if auto_pad == "SAME_UPPER" else (total - small, small))
        return out
    if auto_pad == "VALID" or pads is None:
        return [(0, 0)] * rank
    if auto_pad != "NOTSET":
        raise ValueError(f"LSCConv: unknown auto_pad {auto_pad!r}")
    if len(pads) != 2 * rank:
        raise ValueError(f"LSCConv: pads {list(pads)} should have {2 * rank} values")
    return [(int(pads[i]), int(pads[i + rank])) for i in range(rank)]


def _im2col(
    x: np.ndarray, kernel: tuple[int, ...], strides: list[int], dilations: list[int], pads: list[tuple[int, int]]
) -> tuple[np.ndarray, tuple[int, ...]]:
    """The patches of ``x [N, C, *spatial]`` as ``[N, C * prod(kernel), P]`` (zero padding: padded
    positions are activations equal to 0) and the output's spatial shape."""
    padded = np.pad(x, [(0, 0), (0, 0), *pads])
    out_shape = tuple(
        (size - (k - 1) * d - 1) // s + 1
        for size, k, s, d in zip(padded.shape[2:], kernel, strides, dilations, strict=True)
    )
    if min(out_shape, default=1) < 1:
        raise ValueError(f"LSCConv: X of shape {list(x.shape)} is smaller than the dilated kernel {list(kernel)}")
    taps = []
    for offset in np.ndindex(*kernel):
        spatial = [
            slice(o * d, o * d + (n - 1) * s + 1, s)
            for o, d, n, s in zip(offset, dilations, out_shape, strides, strict=True)
        ]
        window = (slice(None), slice(None), *spatial)
        taps.append(padded[window])
    cols = np.stack(taps, axis=2)  # [N, C, taps, *out]
    n, c = x.shape[:2]
    return cols.reshape(n, c * len(taps), -1), out_shape


class LSCConv(OpRun):
    """ONNX ``Conv`` (1-D and 2-D) with the decoded weight, computed in float32 as a matrix
    product of the weight and the im2col patches (with the structural-zero semantics of
    :func:`sparse_matmul`), plus the residual ``Z``, then the ``activation``; ``Y`` has ``X``'s
    dtype."""

    op_domain = DOMAIN

    def _run(
        self,
        X: np.ndarray,
        W_blob: np.ndarray,
        B: np.ndarray | None = None,
        Z: np.ndarray | None = None,
        auto_pad: str | None = None,
        dilations: list[int] | None = None,
        group: int | None = None,
        kernel_shape: list[int] | None = None,
        pads: list[int] | None = None,
        strides: list[int] | None = None,
        activation: str | None = None,
    ) -> tuple[np.ndarray]:
        _check_float("X", "LSCConv", X)
        act = "" if activation is None else activation
        if isinstance(act, bytes):
            act = act.decode()
        if act not in CONV_ACTIVATIONS:
            raise ValueError(f"LSCConv: unknown activation {act!r}; supported: {CONV_ACTIVATIONS}")
        weight, stored = stored_weight(W_blob)
        if weight.ndim not in (3, 4):
            raise ValueError(
                f"LSCConv: the weight blob holds a tensor of shape {list(weight.shape)}; "
                "1-D and 2-D convolutions (rank 3 or 4) are supported"
            )
        if X.ndim != weight.ndim:
            raise ValueError(
                f"LSCConv: X has shape {list(X.shape)} but the weight {list(weight.shape)} "
                f"needs X of rank {weight.ndim}"
            )
        if kernel_shape is not None and tuple(kernel_shape) != weight.shape[2:]:
            raise ValueError(
                f"LSCConv: kernel_shape {list(kernel_shape)} does not match the weight shape "
                f"{list(weight.shape)}"
            )
        pad_mode = "NOTSET" if auto_pad is None else auto_pad
        if isinstance(pad_mode, bytes):
            pad_mode = pad_mode.decode()
        rank = weight.ndim - 2
        groups = 1 if group is None else int(group)
        m, c_per_group, kernel = weight.shape[0], weight.shape[1], tuple(weight.shape[2:])
        if groups < 1 or m % groups or X.shape[1] != c_per_group * groups:
            raise ValueError(
                f"LSCConv: X has {X.shape[1]} channels and the weight {list(weight.shape)} with group {groups}"
            )
        strides = [1] * rank if strides is None else [int(v) for v in strides]
        dilations = [1] * rank if dilations is None else [int(v) for v in dilations]
        pad_pairs = _conv_pads(tuple(X.shape[2:]), kernel, strides, dilations, pads, pad_mode)
        cols, out_shape = _im2col(X.astype(np.float32, copy=False), kernel, strides, dilations, pad_pairs)
        n = X.shape[0]
        taps = c_per_group * int(np.prod(kernel))
        cols = cols.reshape(n, groups, taps, -1).transpose(0, 1, 3, 2)  # [N, G, P, taps]
        w = weight.reshape(groups, m // groups, taps).transpose(0, 2, 1)  # [G, taps, M/G]
        s = stored.reshape(groups, m // groups, taps).transpose(0, 2, 1)
        y = sparse_matmul(cols, w, s)  # [N, G, P, M/G]
        y = y.transpose(0, 1, 3, 2).reshape(n, m, *out_shape)
        bias = _vector("LSCConv", "B", B, m)
        if bias is not None:
            y = y + bias.reshape(m, *([1] * rank))
        return (_epilogue("LSCConv", y, Z, act).astype(X.dtype, copy=False),)


def attention_scale(node: onnx.NodeProto) -> float:
    """The ``scale`` of an ``LSCAttention`` node, the node checked as the contract in
    :mod:`lsc_ort.ops` says: inputs ``(Q, K, V[, bias])``, one output, no attribute but a finite
    float ``scale`` (raises ``ValueError`` naming the problem)."""
    if not 3 <= len(node.input) <= 4 or not all(node.input[:3]) or len(node.output) != 1:
        raise ValueError(f"needs inputs (Q, K, V[, bias]) and one output, got {len(node.input)} input(s) and "
                         f"{len(node.output)} output(s)")
    unknown = sorted({a.name for a in node.attribute} - {"scale"})
    if unknown:
        raise ValueError(f"unknown attribute(s) {unknown}; LSCAttention takes ['scale']")
    scale = next((a for a in node.attribute if a.name == "scale"), None)
    if scale is None:
        return 1.0
    if scale.type != onnx.AttributeProto.FLOAT or not math.isfinite(scale.f):
        raise ValueError("attribute scale must be a finite float")
    return float(scale.f)


def attention_shapes(
    q: tuple[int, ...], k: tuple[int, ...], v: tuple[int, ...], bias: tuple[int, ...] | None
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``LSCAttention``'s scores and output shapes for inputs of these shapes, checked as the
    contract in :mod:`lsc_ort.ops` says (raises ``ValueError`` naming the problem)."""
    if len(q) not in (3, 4) or len(k) != len(q) or len(v) != len(q):
        raise ValueError(f"LSCAttention: Q {list(q)}, K {list(k)} and V {list(v)} must have the same rank, 3 or 4")
    if k[-2] != q[-1] or v[-2] != k[-1]:
        raise ValueError(f"LSCAttention: Q {list(q)}, K {list(k)} and V {list(v)} do not chain: "
                         "Q [.., S, H] @ K [.., H, T] @ V [.., T, Hv]")
    lead = []
    for dims in zip(q[:-2], k[:-2], v[:-2], strict=True):
        sizes = {d for d in dims if d != 1}
        if len(sizes) > 1:
            raise ValueError(f"LSCAttention: the leading dims of Q {list(q)}, K {list(k)} and V {list(v)} "
                             "do not broadcast")
        lead.append(sizes.pop() if sizes else 1)
    scores = (*lead, q[-2], k[-1])
    if bias is not None:
        if len(bias) > len(q) or any(b not in (1, s) for b, s in zip(reversed(bias), reversed(scores), strict=False)):
            raise ValueError(f"LSCAttention: bias {list(bias)} does not broadcast to the scores' shape {list(scores)}")
    return scores, (*lead, q[-2], v[-1])


class LSCAttention(OpRun):
    """``O = Softmax(scale * (Q @ K) + bias, axis=-1) @ V`` in float64, cast to float32, with the
    native kernels' handling of negligible terms (below ``exp(-87)`` of the row's maximum: 0) and
    of non-finite rows (a NaN, or an infinite maximum: NaN)."""

    op_domain = DOMAIN

    def _run(
        self, Q: np.ndarray, K: np.ndarray, V: np.ndarray, bias: np.ndarray | None = None, scale: float | None = None
    ) -> tuple[np.ndarray]:
        for name, value in (("Q", Q), ("K", K), ("V", V), ("bias", bias)):
            if value is not None and value.dtype != np.float32:
                raise ValueError(f"LSCAttention: {name} is {value.dtype}; the op takes float32")
        scale = 1.0 if scale is None else float(scale)
        if not math.isfinite(scale):
            raise ValueError(f"LSCAttention: attribute scale must be finite, got {scale}")
        scores_shape, out_shape = attention_shapes(Q.shape, K.shape, V.shape, None if bias is None else bias.shape)
        if scores_shape[-1] == 0:
            return (np.zeros(out_shape, np.float32),)
        with np.errstate(invalid="ignore", over="ignore"):
            x = (Q.astype(np.float64) @ K.astype(np.float64)) * np.float32(scale)
            if bias is not None:
                x = x + bias
            top = x.max(axis=-1, keepdims=True)
            shifted = x - top
            e = np.where(shifted < -87.0, 0.0, np.exp(shifted))
            bad = np.isnan(x).any(axis=-1, keepdims=True) | np.isinf(top)
            p = np.where(bad, np.nan, e / e.sum(axis=-1, keepdims=True))
            out = p @ V.astype(np.float64)
        return (np.broadcast_to(out, out_shape).astype(np.float32),)


NEW_OPS: tuple[type[OpRun], ...] = (LSCMatMul, LSCConv, LSCAttention)
"""The reference ops, for ``ReferenceEvaluator(model, new_ops=NEW_OPS)``."""


class GlobalMaxPool(OpRun):
    """ONNX ``GlobalMaxPool``: the maximum over all spatial axes (2, 3, ...), kept as size 1.

    onnx's own reference (up to 1.23 at least) reduces the last two axes whatever the rank, which
    is right only for 4-D inputs: a 3-D ``[N, C, L]`` input lost its channel axis.
    """

    op_domain = ""

    def _run(self, x: np.ndarray) -> tuple[np.ndarray]:
        if x.ndim < 3:
            raise ValueError(f"GlobalMaxPool: X has shape {list(x.shape)}; it needs rank 3 or more")
        return (np.max(x, axis=tuple(range(2, x.ndim)), keepdims=True),)


class MaxPool(OnnxMaxPool):
    """ONNX ``MaxPool`` by onnx's own general path for every stride.

    onnx's reference (1.23) sends stride-1, dilation-1 pooling to a shared pooling routine that
    pairs the begin and end pads of different axes: asymmetric pads give a wrong shape or an
    IndexError. Its general path, which it takes for other strides, gets them right (checked
    against onnxruntime on 1-D to 3-D inputs, with dilations, ceil_mode and Indices).
    """

    def _run(  # type: ignore[override]  # (as onnx's MaxPool._run: its base's takes the pooling type first)
        self, x: np.ndarray, auto_pad: Any = None, ceil_mode: Any = None, dilations: Any = None,
        kernel_shape: Any = None, pads: Any = None, storage_order: Any = None, strides: Any = None,
    ) -> Any:
        general = getattr(self, "_max_pool", None)
        if general is None:  # (another onnx version: its own entry point)
            return super()._run(x, auto_pad=auto_pad, ceil_mode=ceil_mode, dilations=dilations,
                                kernel_shape=kernel_shape, pads=pads, storage_order=storage_order, strides=strides)
        return general(x, auto_pad=auto_pad, ceil_mode=ceil_mode, dilations=dilations, kernel_shape=kernel_shape,
                       pads=pads, storage_order=storage_order, strides=strides)


STANDARD_OP_FIXES: tuple[type[OpRun], ...] = (GlobalMaxPool, MaxPool)
"""Replacements of onnx reference ops that compute wrong results, used by :func:`reference_evaluator`."""


def reference_evaluator(model: onnx.ModelProto | str | os.PathLike, **kwargs: Any) -> ReferenceEvaluator:
    """A ``ReferenceEvaluator`` of ``model`` (a ModelProto or a path, external data loaded) that
    runs ``LSCMatMul``, ``LSCConv`` and ``LSCAttention`` with the numpy reference ops.

    Args:
        model: the model to evaluate.
        **kwargs: passed to ``ReferenceEvaluator`` (e.g. ``verbose``).
    """
    if isinstance(model, onnx.ModelProto):
        check_model_proto(model)
    else:
        model = read_model_file(model, load_external_data=True)
    return ReferenceEvaluator(model, new_ops=[*NEW_OPS, *STANDARD_OP_FIXES], **kwargs)
