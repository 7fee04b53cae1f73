"""``f2f``: fixed-to-fixed XOR-gate coding of irregular sparsity (Park et al., ICLR 2022).

Which elements are stored (the *slots*: the non-zeros) is coded by the ``lsc`` position layer
(:func:`lsc_ort.codecs.lsc.choose_layer`), with its params and sections first. Their values are
coded bit plane by bit plane with a fixed XOR network over GF(2):

* Every bit plane of the matrix view ``[R, C]`` is read as a stream in the order ``order``: 0 is
  C order; 1 (the default) is diagonal, where stream position ``q`` is element
  ``(q mod R, (q div R + q mod R) mod C)``. The stream is cut into blocks of ``n_out``
  positions. Bits of slots are *care bits*, all other bits are *don't-care*. Diagonal blocks
  step down a row and right a column, so every block sees about the layer's density even when
  some rows or columns keep more weights (as magnitude pruning leaves them): on MiniLM-L3 at
  90% it lifts E from 0.80-0.92 to 0.90-0.95.
* Block ``t`` of a plane decodes as ``y_t = M z_t``: ``z_t`` concatenates the ``n_in`` stored
  input bits of blocks ``t, t-1, ..., t-n_s+1`` (bits ``[j n_in, (j+1) n_in)`` of ``z_t`` are
  block ``t-j``'s), the contents of a shift register. Inputs before the start of the segment
  of ``segment_blocks`` blocks that holds block ``t`` are zero. ``n_s = 1`` is the
  non-sequential scheme.
* ``M`` is ``n_out x (n_in n_s)``: row ``o`` (bit ``j`` set when ``z`` bit ``j`` feeds output
  ``o``) is the next output of SplitMix64, started at ``seed``, whose low ``n_in n_s`` bits are
  not all zero (after 64 draws the last is kept), masked to those bits.
* The encoder (native, ``custom_ops/src/encode/``) picks the inputs by dynamic programming: a
  Viterbi search over the shift-register states minimizing the care bits the network gets wrong.
  Those become *patches*, so decoding is exact.
* Only the *coded planes* (``planes``) are stored: a plane whose care bits are all equal is not,
  and decodes to its bit of ``fill`` (fp32 weights below 2.0 in magnitude have exponent bit 30
  clear; magnitude-pruned weights usually share a few more exponent bits).

Fixed rate: block ``t`` of the ``p``-th coded plane has its inputs at bit ``(t P + p) n_in`` of
``inputs`` (``P`` coded planes), so any block decodes from ``n_s n_in`` bits found by arithmetic:
chunks decode independently, in parallel.

Params: ``block_rows``, ``block_cols``, ``code_bits``, ``split``, ``chunk_block_rows`` (the
position layer; ``code_bits = 0`` only with a 1x1 block), ``n_in`` (1..32), ``n_out`` (1..4096),
``n_s`` (1..8, ``n_in n_s <= 64``), ``order`` (0, 1), ``seed``, ``segment_blocks`` (1..max(nblocks, 1),
``nblocks = ceil(numel / n_out)``), ``planes`` (bit ``b`` set when plane ``b`` is coded), ``fill``
(the bits of the planes not coded; none of ``planes``), ``patch_code_bits`` (1..16),
``patch_split`` (1..2**patch_code_bits - 1).

Sections:
``block_mask``, ``chunks``, ``codes``  the position layer; ``chunks`` counts slots.
``inputs``        ``nblocks * P * n_in`` bits, packed LSB first, padding zero.
``patch_chunks``  u64 ``[nchunks + 1, 2]``: (code index, patch index) where chunk ``k``'s patches
                  begin; starts at (0, 0), monotone, the last row holds the totals.
``patches``       SRI codes (:mod:`lsc_ort.codecs.sri`, ``patch_code_bits`` wide, split at
                  ``patch_split``), one stream per chunk: patch position ``i`` flips bit
                  ``i % B`` (``B`` value bits) of the chunk's slot ``i // B``, slots counted in C
                  order; only bits of coded planes.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import numpy as np

from lsc_ort.codecs import sri
from lsc_ort.codecs.base import Codec, Encoded, WeightTensor, reject_unknown
from lsc_ort.codecs.bits import pack_codes, packed_size, unpack_codes
from lsc_ort.codecs.lsc import (
    LAYER_PARAMS,
    LAYER_SECTIONS,
    Auto,
    EncodedLayer,
    choose_layer,
    decode_layer,
    encode_layer,
    read_chunk_table,
)
from lsc_ort.format import BlobFormatError, BlobView

ROW_MAJOR, DIAGONAL = 0, 1
"""The stream orders (param ``order``)."""
MAX_INPUTS = 32
MAX_STEPS = 8
MAX_WIDTH = 64
MAX_OUTPUTS = 4096
ROW_DRAWS = 64
DEFAULT_SEED = 0x5EED_F2F
"""The seed of ``M`` unless one is given (any seed works; the blob records it)."""
SEGMENT_BLOCKS = 2048
"""Blocks per segment unless given: the unit of the encoder's parallelism and memory (the shift
register restarts at each segment; on random masks 1,024-block segments lose 0.2% of E, 4,096 gain
0.1%)."""
MAX_THREADS = 32
"""The encoder runs on at most this many threads (each holds up to 32 MiB of back pointers)."""
TRACE_BUDGET = 32 << 20
"""Bytes of back pointers the encoder keeps per task: 2 per register state and block of a
segment (``custom_ops/src/encode/f2f_encoder.cc``); automatic segments stay within it."""
EXPECTED_EFFICIENCY = 0.96
"""An optimistic encoding efficiency, with which ``codec="auto"`` skips encoding f2f when it
cannot beat the smallest blob found already (measured: 0.94-0.96 with automatic parameters)."""

_MASK64 = (1 << 64) - 1


def splitmix64(state: int) -> tuple[int, int]:
    """One step of SplitMix64: ``(new state, output)``."""
    state = (state + 0x9E3779B97F4A7C15) & _MASK64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return state, z ^ (z >> 31)


def matrix_rows(seed: int, n_out: int, width: int) -> np.ndarray:
    """The rows of ``M`` (``n_out x width``) as uint64 bit masks (see the module docstring)."""
    mask = (1 << width) - 1
    state = seed & _MASK64
    rows = np.zeros(n_out, dtype=np.uint64)
    for o in range(n_out):
        row = 0
        for _ in range(ROW_DRAWS):
            state, z = splitmix64(state)
            row = z & mask
            if row:
                break
        rows[o] = row
    return rows


def stream_positions(flat: np.ndarray, rows: int, cols: int, order: int) -> np.ndarray:
    """The stream position (int64) of each flat C-order index of an ``rows x cols`` matrix."""
    flat = flat.astype(np.int64)
    if order == ROW_MAJOR:
        return flat
    r, c = np.divmod(flat, max(cols, 1))
    return ((c - r) % max(cols, 1)) * rows + r


def parity(v: np.ndarray) -> np.ndarray:
    """Parity of each uint64 of ``v``, as uint64 0 or 1."""
    v = v.copy()
    for shift in (32, 16, 8, 4, 2, 1):
        v ^= v >> np.uint64(shift)
    return v & np.uint64(1)


AUTO_INPUTS, AUTO_STEPS = 4, 4
LARGE_CARE_BITS = 1 << 21
"""Tensors with more care bits get a 3-block register unless ``n_s`` is given: the 4-block search
runs at about 2 M care bits per CPU-second, the 3-block one about 9x faster (E 0.92 instead of 0.94),
so no search takes much more than a CPU-second (every MiniLM-L3 layer at 90% stays below)."""
AUTO_RATE = {1: 1.0, 2: 0.8, 3: 0.76, 4: 0.86}
"""Stored input bits per care bit by ``n_s`` (for ``n_in = 4``): where inputs plus patches are
smallest on random masks (the optimum is flat within 1% over about 0.75-0.9)."""


def auto_parameters(density: float, n_in: int = AUTO_INPUTS, n_s: int = AUTO_STEPS) -> tuple[int, int, int]:
    """``(n_in, n_out, n_s)`` for slots at ``density``.

    4 inputs per block and a 4-block shift register: the search visits 2^16 (state, input)
    pairs per block, and reaches E = 0.94-0.96 on random masks at 50-98% sparsity (``n_s = 3``:
    0.92 at about 9x the speed; see ``benchmarks/bench_f2f.py``). ``n_out`` sets the rate
    (:data:`AUTO_RATE`): fewer inputs than care bits, for the few bits the search then misses cost
    less as patches.
    """
    if density <= 0:
        return n_in, MAX_OUTPUTS, n_s
    n_out = round(n_in / (density * AUTO_RATE.get(n_s, 0.86)))
    return n_in, int(min(MAX_OUTPUTS, max(n_in, n_out))), n_s


def _int_option(name: str, value: Any, low: int, high: int, auto: bool = True) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= int(value) <= high:
        also = " or 'auto'" if auto else ""
        raise ValueError(f"f2f {name} must be an int in [{low}, {high}]{also}, got {value!r}")
    return int(value)


def _threads() -> int:
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        count = os.cpu_count() or 1
    return max(1, min(count, MAX_THREADS))


def _positions_and_planes(layer: EncodedLayer, bits: int) -> tuple[tuple[np.ndarray, np.ndarray], int, int]:
    """The slots' positions and values in C order, the coded planes, and the fill of the others
    (a plane is coded unless its care bits are all equal)."""
    assert layer.positions is not None
    positions, values = layer.positions, layer.values
    if layer.params[0] > 1:  # 2-D blocks list slots in block order; the value streams are in C order
        order = np.argsort(positions, kind="stable")
        positions, values = positions[order], values[order]
    planes = fill = 0
    for b in range(bits):
        ones = int(np.count_nonzero((values >> b) & 1)) if values.size else 0
        if 0 < ones < values.size:
            planes |= 1 << b
        elif values.size and ones == values.size:
            fill |= 1 << b
    return (positions, values), planes, fill


class F2fCodec(Codec):
    name = "f2f"
    codec_id = 6
    param_names = (*LAYER_PARAMS, "n_in", "n_out", "n_s", "order", "seed", "segment_blocks", "planes", "fill",
                   "patch_code_bits", "patch_split")
    section_names = (*LAYER_SECTIONS, "inputs", "patch_chunks", "patches")
    description = "fixed-to-fixed XOR-gate coding of the values (sequential, with patches) + lsc positions"
    auto_options: ClassVar[dict[str, Any]] = {"n_s": 3}
    """``codec="auto"`` searches a 3-block register: E about 0.92 instead of 0.95, about 9x faster."""

    def available(self) -> bool:
        """Encoding needs the native library (decoding does not)."""
        from lsc_ort.native import library_available

        return library_available()

    def estimate_bytes(self, weight: WeightTensor) -> float | None:
        """The position layer's sections plus the care bits at :data:`EXPECTED_EFFICIENCY`."""
        layer = encode_layer(weight, choose_layer(weight, whole_blocks=False, codec=self.name))
        _, planes, _ = _positions_and_planes(layer, 8 * weight.dtype.itemsize)
        value_bits = layer.values.size * bin(planes).count("1") / EXPECTED_EFFICIENCY
        return sum(int(s.nbytes) for s in layer.sections) + value_bits / 8

    def encode(self, weight: WeightTensor, *, n_in: int | Auto = "auto", n_out: int | Auto = "auto",
               n_s: int | Auto = "auto", order: int = DIAGONAL, seed: int = DEFAULT_SEED,
               segment_blocks: int | Auto = "auto",
               block: tuple[int, int] | Auto = "auto", code_bits: int | Auto = "auto", split: int | Auto = "auto",
               chunk_block_rows: int | Auto = "auto", **options: Any) -> Encoded:
        """Encode with f2f. ``n_in``, ``n_out``, ``n_s`` default to :func:`auto_parameters` of the
        tensor's density (``n_s = 3`` above :data:`LARGE_CARE_BITS` care bits); the
        position-layer options are those of ``lsc``.

        Args:
            n_in: input bits per block and plane (1..12 for this encoder).
            n_out: elements per block (1..4096).
            n_s: blocks in the shift register (1: non-sequential).
            order: 1 reads the planes diagonally (the default), 0 in C order.
            seed: seed of the matrix ``M``.
            segment_blocks: blocks per segment (the shift register restarts at zero).

        Raises:
            RuntimeError: the native library, which runs the encoder, is not built.
        """
        reject_unknown(self.name, options)
        n_in_v = None if n_in == "auto" else _int_option("n_in", n_in, 1, MAX_INPUTS)
        n_out_v = None if n_out == "auto" else _int_option("n_out", n_out, 1, MAX_OUTPUTS)
        n_s_v = None if n_s == "auto" else _int_option("n_s", n_s, 1, MAX_STEPS)
        seed_v = _int_option("seed", seed, -(2**63), 2**63 - 1, auto=False)
        order_v = _int_option("order", order, ROW_MAJOR, DIAGONAL, auto=False)
        segment_v = None if segment_blocks == "auto" else _int_option("segment_blocks", segment_blocks, 1, 2**62)
        if n_in_v is not None and n_s_v is not None and n_in_v * n_s_v > MAX_WIDTH:
            raise ValueError(f"f2f n_in * n_s must be at most {MAX_WIDTH}, got {n_in_v} * {n_s_v}")
        if not self.available():
            raise RuntimeError("f2f encodes in the native library, which is not built: install the package with "
                               "'pip install .' or set LSC_ORT_LIBRARY (decoding f2f blobs needs no library)")
        from lsc_ort.native import native_f2f_encode

        layer = encode_layer(weight, choose_layer(weight, block=block, code_bits=code_bits, split=split,
                                                  chunk_block_rows=chunk_block_rows, whole_blocks=False,
                                                  codec=self.name))
        numel, bits = weight.numel, 8 * weight.dtype.itemsize
        (positions, values), planes, fill = _positions_and_planes(layer, bits)
        nslots = positions.size
        rows, cols = weight.matrix_shape
        stream = stream_positions(positions, rows, cols, order_v)
        by_stream = None if order_v == ROW_MAJOR else np.argsort(stream, kind="stable")
        if n_s_v is None:
            n_s_v = AUTO_STEPS if nslots * bin(planes).count("1") <= LARGE_CARE_BITS else AUTO_STEPS - 1
        auto = auto_parameters(nslots / numel if numel else 0.0, AUTO_INPUTS if n_in_v is None else n_in_v, n_s_v)
        n_in_v = auto[0] if n_in_v is None else n_in_v
        n_out_v = auto[1] if n_out_v is None else n_out_v
        n_s_v = auto[2]
        if n_in_v * n_s_v > MAX_WIDTH:
            n_s_v = MAX_WIDTH // n_in_v
        nblocks = -(-numel // n_out_v)
        if segment_v is None:
            segment_v = min(SEGMENT_BLOCKS, max(1, TRACE_BUDGET // (2 << (n_in_v * (n_s_v - 1)))))
        segment = min(segment_v, max(nblocks, 1))
        nplanes = bin(planes).count("1")
        inputs, misses = native_f2f_encode(
            stream if by_stream is None else stream[by_stream], values if by_stream is None else values[by_stream],
            numel=numel, bits=bits, n_in=n_in_v, n_out=n_out_v, n_s=n_s_v, seed=seed_v, segment_blocks=segment,
            planes=planes, threads=_threads(), inputs_size=packed_size(nblocks * nplanes, n_in_v))
        if by_stream is not None:  # back to C order
            in_c_order = np.empty_like(misses)
            in_c_order[by_stream] = misses
            misses = in_c_order
        width, sp, table, codes = self._patches(misses, layer.chunk_slots, bits)
        params = (*layer.params, n_in_v, n_out_v, n_s_v, order_v, seed_v, segment, planes, fill, width, sp)
        return Encoded(params=params, sections=(*layer.sections, np.frombuffer(inputs, np.uint8), table, codes))

    @staticmethod
    def _patches(misses: np.ndarray, chunk_slots: np.ndarray,
                 bits: int) -> tuple[int, int, np.ndarray, np.ndarray]:
        """The patch table and SRI codes of the missed bits (``misses``: a mask per slot, C order)."""
        nchunks = chunk_slots.size - 1
        missed = np.flatnonzero(misses)
        row, plane = np.nonzero(((misses[missed, None] >> np.arange(bits, dtype=np.uint32)) & 1).astype(bool))
        slot = missed[row]
        chunk = np.searchsorted(chunk_slots, slot, side="right") - 1
        position = (slot - chunk_slots[chunk]) * bits + plane
        first = np.ones(position.size, dtype=bool)
        first[1:] = chunk[1:] != chunk[:-1]
        gaps = position.copy()
        gaps[~first] = position[~first] - position[np.flatnonzero(~first) - 1] - 1
        width, split, _ = sri.best_parameters(*sri.gap_histogram(gaps))
        skip_codes = (1 << width) - split
        per_gap = sri.skip_counts(gaps, split, skip_codes) + 1
        table = np.zeros((nchunks + 1, 2), dtype="<u8")
        table[1:, 0] = np.cumsum(np.bincount(chunk, weights=per_gap, minlength=nchunks).astype(np.int64))
        table[1:, 1] = np.cumsum(np.bincount(chunk, minlength=nchunks))
        return width, split, table, pack_codes(sri.encode_gaps(gaps, width, split), width)

    def _read_params(self, view: BlobView) -> dict[str, int]:
        """The f2f params past the position layer, checked."""
        numel, bits = view.header.numel, 8 * view.header.dtype.itemsize
        p = {"n_in": self.param(view, "n_in", 1, MAX_INPUTS), "n_out": self.param(view, "n_out", 1, MAX_OUTPUTS)}
        p["n_s"] = self.param(view, "n_s", 1, min(MAX_STEPS, MAX_WIDTH // p["n_in"]))
        p["order"] = self.param(view, "order", ROW_MAJOR, DIAGONAL)
        p["nblocks"] = -(-numel // p["n_out"])
        p["segment_blocks"] = self.param(view, "segment_blocks", 1, max(p["nblocks"], 1))
        p["planes"] = self.param(view, "planes", 0, (1 << bits) - 1)
        p["fill"] = self.param(view, "fill", 0, (1 << bits) - 1)
        if p["fill"] & p["planes"]:
            raise BlobFormatError(f"{self.name}: fill {p['fill']} sets bits of coded planes {p['planes']}")
        p["patch_code_bits"] = self.param(view, "patch_code_bits", 1, sri.MAX_WIDTH)
        p["patch_split"] = self.param(view, "patch_split", 1, (1 << p["patch_code_bits"]) - 1)
        p["seed"] = view.header.params[self.param_names.index("seed")]
        return p

    def _input_bits(self, view: BlobView, p: dict[str, int]) -> int:
        count = p["nblocks"] * bin(p["planes"]).count("1") * p["n_in"]
        size = len(view.sections[self.section_names.index("inputs")])
        if size != packed_size(count, 1):
            raise BlobFormatError(f"{self.name}: inputs has {size} bytes, expected {packed_size(count, 1)}")
        return count

    def decode(self, view: BlobView) -> np.ndarray:
        self.check_layout(view)
        header = view.header
        out = self.zeros(view)  # the memory budget first
        layer = decode_layer(self, view)
        if layer.whole_blocks and layer.block != (1, 1):
            raise BlobFormatError(f"{self.name}: without a coding layer (code_bits 0) the block must be 1x1, "
                                  f"got {layer.block[0]}x{layer.block[1]}")
        if layer.slots > header.numel:
            raise BlobFormatError(f"{self.name}: the chunk table declares {layer.slots} slots, more than "
                                  f"{header.numel} elements")
        if layer.slots >= 2**32:
            raise BlobFormatError(f"{self.name}: {layer.slots} slots; at most 2^32 - 1 are supported")
        p = self._read_params(view)
        bits = 8 * header.dtype.itemsize
        coded = [b for b in range(bits) if (p["planes"] >> b) & 1]
        n_in, n_out, n_s, segment = p["n_in"], p["n_out"], p["n_s"], p["segment_blocks"]
        input_bits = self._input_bits(view, p)
        inputs = self.section(view, "inputs")
        unpacked = np.unpackbits(inputs, bitorder="little")
        if unpacked[input_bits:].any():
            raise BlobFormatError(f"{self.name}: inputs has non-zero padding bits")
        nchunks = layer.chunk_slots.size - 1
        table = read_chunk_table(self, view, "patch_chunks", nchunks, "patch chunk")
        width, split = p["patch_code_bits"], p["patch_split"]
        codes = unpack_codes(self.section(view, "patches"), int(table[-1, 0]), width, f"{self.name}: patches")

        flat = layer.row * layer.cols + layer.col
        if layer.block[0] > 1:  # slots in C order (chunks stay contiguous: they are row bands)
            flat = np.sort(flat)
        values = np.full(flat.size, p["fill"], dtype=np.uint64)
        if coded and flat.size:
            nblocks, P = p["nblocks"], len(coded)
            fields = unpacked[:input_bits].reshape(nblocks, P, n_in)
            x = np.zeros((nblocks, P), dtype=np.uint64)  # the inputs of every block and coded plane
            for k in range(n_in):
                x |= fields[:, :, k].astype(np.uint64) << np.uint64(k)
            del fields, unpacked
            block, offset = np.divmod(stream_positions(flat, layer.rows, layer.cols, p["order"]), n_out)
            rows = matrix_rows(p["seed"], n_out, n_in * n_s)[offset]
            depth = block % segment  # how many earlier blocks of the segment feed the register
            for i, plane in enumerate(coded):
                z = x[block, i]
                for j in range(1, n_s):
                    earlier = np.where(depth >= j, x[np.maximum(block - j, 0), i], np.uint64(0))
                    z = z | (earlier << np.uint64(j * n_in))
                values |= parity(rows & z) << np.uint64(plane)
        limits = np.diff(layer.chunk_slots) * bits
        position, chunk = sri.decode_streams(codes, table, width, split, limits, f"{self.name}: patches",
                                             "patches")
        patch_plane = position % bits
        if position.size:
            stray = ((np.uint64(p["planes"]) >> patch_plane.astype(np.uint64)) & np.uint64(1)) == 0
            if stray.any():
                bad = int(np.flatnonzero(stray)[0])
                raise BlobFormatError(
                    f"{self.name}: patch {int(position[bad])} in chunk {int(chunk[bad])} flips bit "
                    f"{int(patch_plane[bad])}, which is not a coded plane")
        np.bitwise_xor.at(values, layer.chunk_slots[chunk] + position // bits,
                          np.uint64(1) << patch_plane.astype(np.uint64))
        out[flat] = values.astype(out.dtype)
        return out

    def describe(self, view: BlobView) -> dict[str, Any]:
        """``encoding_efficiency`` (care bits of the coded planes ÷ stored value bits, the inputs and
        the patch sections: 1.0 is the entropy limit of the values; 1.0 too when there is nothing
        to code), ``patch_bytes``, ``patches`` and ``care_bits``."""
        p = self._read_params(view)
        sizes = dict(zip(self.section_names, (len(s) for s in view.sections), strict=True))
        self._input_bits(view, p)
        chunks = self.section(view, "chunks", np.uint64)
        patch_chunks = self.section(view, "patch_chunks", np.uint64)
        if chunks.size < 2 or chunks.size % 2 or patch_chunks.size != chunks.size:
            raise BlobFormatError(f"{self.name}: chunk tables of {chunks.size} and {patch_chunks.size} entries")
        care = int(chunks[-1]) * bin(p["planes"]).count("1")
        patch_bytes = sizes["patch_chunks"] + sizes["patches"]
        stored = 8 * (sizes["inputs"] + patch_bytes)
        return {"encoding_efficiency": care / stored if care else 1.0, "patch_bytes": patch_bytes,
                "patches": int(patch_chunks[-1]), "care_bits": care}
