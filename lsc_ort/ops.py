"""The custom ONNX operators that run on encoded weights (and the attention core around them):
their domain, names and contract.

The ops live in :data:`DOMAIN`, opset version 1, and are implemented by the native library
(``custom_ops/``, see :func:`lsc_ort.get_library_path`) and, as a slow numpy oracle, by
:mod:`lsc_ort.reference`.

``LSCMatMul(A, W_blob[, bias[, Z[, norm_scale[, norm_bias]]]]) -> Y``
    ``Y = norm(activation(alpha * (A @ W) + bias + Z))``, ``Z`` an optional residual of ``Y``'s
    type (see *Residuals* below for its shape). ``W_blob`` is a 1-D uint8 tensor holding a blob
    (:mod:`lsc_ort.format`) that encodes ``W`` of shape ``[K, N]`` (or ``[N, K]`` when
    ``transB = 1``, in which case ``W`` is the transpose of the decoded matrix). ``A`` has rank
    >= 1 and its last dim is ``K``; leading dims broadcast as in ONNX ``MatMul`` (``A`` of rank 1
    gives ``Y`` of shape ``[N]``). ``bias`` is optional, shape ``[N]``. ``A``, ``bias`` and ``Y``
    are float32 (float16 accepted, accumulated in float32).
    Attributes: ``alpha`` (float, default 1.0), ``transB`` (int, default 0), ``activation``
    (string, default ``""``): ``"Relu"`` (``max(y, 0)``, a NaN stays NaN) or ``"Gelu"`` (ONNX
    ``Gelu`` with ``approximate="none"``: ``y / 2 * (1 + erf(y / sqrt(2)))``, relative error below
    1e-6 but for the far negative tail).
    Attention-head layouts, which let a rewritten model drop the ``Reshape`` + ``Transpose``
    around multi-head attention: ``heads`` (int, default 0), ``input_layout`` and
    ``output_layout`` (strings, default ``""``, the plain layouts above). ``heads`` = H >= 1 is
    required by, and only allowed with, a head layout (``BHSD``, ``BHDS``).

    * ``input_layout="BHSD"``: ``A`` is ``[B, H, S, K/H]``, read as the ``[B, S, K]`` matrix
      ``Reshape(Transpose(A, [0, 2, 1, 3]), [B, S, K])`` (a product of heads, back to tokens).
    * ``output_layout="BHSD"``: ``A`` (as read) is ``[B, S, K]``; ``Y`` is ``[B, H, S, N/H]``,
      ``Transpose(Reshape(P, [B, S, H, N/H]), [0, 2, 1, 3])`` of the plain result ``P [B, S, N]``
      (activation included). ``output_layout="BHDS"``: ``Y`` is ``[B, H, N/H, S]``, the
      permutation ``[0, 2, 3, 1]`` (keys, transposed for ``Q @ K^T``).

    Row normalization, which lets a rewritten transformer drop its ``LayerNormalization``
    nodes: ``norm`` (string, default ``""``, none) and ``epsilon`` (float, default 1e-5, finite
    and >= 0). ``norm="LayerNorm"`` normalizes each row of ``N`` values last, as ONNX
    ``LayerNormalization`` with ``axis=-1``: ``(x - mean) / sqrt(var + epsilon) * norm_scale +
    norm_bias``, ``var`` the biased variance, computed in float32. ``norm_scale`` ``[N]`` is
    required with it, ``norm_bias`` ``[N]`` optional; without ``norm`` neither may be given.
    ``norm`` cannot be combined with ``output_layout``.

    *Residuals.* ``Z`` has rank >= 1 and last dim ``N``; its leading dims and those of the
    product ``P = alpha * (A @ W) + bias`` broadcast as in ONNX ``Add`` (multidirectional), and
    ``Y`` has the broadcast shape. (The rewriter absorbs a residual ``Add`` whose operands'
    shapes it cannot prove equal, e.g. batch dims renamed by a mask broadcast; the kernels add a
    ``Z`` of exactly ``P``'s shape in place and broadcast any other.)

    ``H`` must divide the dimension it splits. A residual ``Z`` cannot be combined with
    ``output_layout`` (it is added to the plain result ``[B, S, N]``).

    Row tiles, which let one LSCMatMul hand its result to the next without transposing it twice:
    ``output_layout="TILES"`` (no ``heads``) gives ``Y`` of the plain shape ``[..., N]`` whose
    ``M x N`` elements (``M`` = the product of the leading dims) are stored tile by tile: rows in
    tiles of 64, the last of ``R_t = min(64, M - 64 t)`` rows, each tile column-major, so the
    plain ``P[m, n]`` is the flat element ``64 t N + n R_t + (m - 64 t)`` for ``t = m // 64``.
    ``input_layout="TILES"`` reads ``A`` so. Any input layout combines with any output layout.
    The rewriter pairs them only where the sole reader of an LSCMatMul's output is another one's
    ``A`` (the tensor is never a graph output); ``Z`` stays plain and cannot be combined with
    ``output_layout``.

``LSCConv(X, W_blob[, B[, Z]]) -> Y``
    ONNX ``Conv`` (opset 11+ semantics) for 1-D and 2-D convolutions in NCHW layout, with the
    weight ``[M, C/group, kH, kW]`` (``[M, C/group, k]`` for 1-D) decoded from ``W_blob``, then
    ``+ Z`` when the optional residual ``Z`` (exactly ``Y``'s shape and type) is given, then the
    activation. Attributes as ``Conv``: ``auto_pad``, ``dilations``, ``group``,
    ``kernel_shape``, ``pads``, ``strides``; and ``activation`` (string, default ``""``):
    ``"Relu"`` applies ``max(y, 0)`` last (a NaN stays NaN, as in ONNX ``Relu``). Kernel dims must
    be >= 1, ``pads`` cannot be combined with ``auto_pad``, and an output dimension that would be
    empty is an error, as in onnxruntime's ``Conv``.

``LSCAttention(Q, K, V[, bias]) -> O``
    Scaled dot-product attention per head, the core of a transformer layer that the rewriter
    fuses (:mod:`lsc_ort.rewriter.attention`): ``O = Softmax(scale * (Q @ K) + bias, axis=-1) @ V``.
    ``Q`` is ``[B, N, S, H]``, ``K`` ``[B, N, H, T]`` (the keys transposed, as ``MatMul(Q, K)``
    reads them), ``V`` ``[B, N, T, Hv]`` and ``O`` ``[B, N, S, Hv]``; or all of rank 3 without
    ``B``. The leading dims broadcast as in ``MatMul`` (each equal, or 1). ``bias`` is optional, of
    rank at most ``Q``'s, and broadcasts to the scores ``[B, N, S, T]`` without widening them (an
    additive attention mask). Attribute: ``scale`` (float, default 1.0, finite). float32 only.
    The softmax subtracts each row's maximum; terms below ``exp(-87)`` of it count as 0 (no
    denormals). A NaN among a row's scores, or an infinite maximum, makes the row NaN, as
    ``Softmax`` does; ``T = 0`` gives zeros, as ``MatMul`` over an empty axis. The op needs no
    more memory than one block of rows' scores per thread, but refuses work whose unfused score
    tensor would exceed the memory budget below.

Non-finite values (LSCMatMul and LSCConv, every implementation): **structural-zero semantics**, as in
scipy.sparse and torch.sparse. A weight the blob does not store (an all-zero bit pattern) is
absent: a NaN or Inf in ``A`` or ``X`` reaches only the outputs it meets through a stored weight.
Stored weights, ``-0.0`` included, propagate per IEEE (a stored Inf times a zero activation is
NaN), and ``LSCConv``'s padding counts as zeros. Dense ``MatMul`` / ``Conv`` give NaN wherever a
NaN meets any weight, zero or not; outputs of finite inputs are the same.

Hostile input: a blob whose declared shape has no data behind it (more output columns, or
convolution taps, than 16 per blob byte beyond 2^20), absurd attributes, or a run whose output or
scratch exceeds the memory budget (``LSC_ORT_MEMORY_BUDGET_MB``, default half of the machine's
memory) fail with an error naming the op, the node and the problem (``docs/kernels.md``).
"""

from __future__ import annotations

DOMAIN = "lsc_ort"
"""Custom-op domain of ``LSCMatMul``, ``LSCConv`` and ``LSCAttention``."""
OPSET_VERSION = 1
MATMUL_OP = "LSCMatMul"
CONV_OP = "LSCConv"
ATTENTION_OP = "LSCAttention"
CONV_ACTIVATIONS = ("", "Relu")
"""Values of ``LSCConv``'s ``activation`` attribute."""
MATMUL_ACTIVATIONS = ("", "Relu", "Gelu")
"""Values of ``LSCMatMul``'s ``activation`` attribute."""
MATMUL_NORMS = ("", "LayerNorm")
"""Values of ``LSCMatMul``'s ``norm`` attribute."""
MATMUL_INPUT_LAYOUTS = ("", "BHSD", "TILES")
"""Values of ``LSCMatMul``'s ``input_layout`` attribute (``""``: ``A`` is ``[..., K]``)."""
MATMUL_OUTPUT_LAYOUTS = ("", "BHSD", "BHDS", "TILES")
"""Values of ``LSCMatMul``'s ``output_layout`` attribute (``""``: ``Y`` is ``[..., N]``)."""
