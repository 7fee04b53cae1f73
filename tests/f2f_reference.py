"""A small numpy reference of the f2f encoder's search, to cross-check the native one.

For every segment and coded plane it runs the Viterbi search of the spec (lsc_ort/codecs/f2f.py)
over all ``2^(n_in n_s)`` (state, input) pairs per block with dense numpy arrays, and returns the
fewest care bits any choice of inputs leaves wrong: the native encoder must leave exactly as many
(it patches every one). Only for small ``n_in * n_s``.
"""

from __future__ import annotations

import numpy as np

from lsc_ort.codecs.f2f import matrix_rows, parity


def fewest_misses(positions: np.ndarray, values: np.ndarray, *, numel: int, planes: list[int], n_in: int,
                  n_out: int, n_s: int, seed: int, segment_blocks: int) -> int:
    """The minimum number of wrong care bits over every encoding with these parameters.

    ``positions`` (flat C-order indices, increasing) and ``values`` (bit patterns) are the slots.
    """
    width = n_in * n_s
    rows = matrix_rows(seed, n_out, width)
    z = np.arange(1 << width, dtype=np.uint64)
    state_bits = n_in * (n_s - 1)
    nblocks = -(-numel // n_out)
    block_of = positions // n_out
    total = 0
    for start in range(0, nblocks, segment_blocks):
        end = min(nblocks, start + segment_blocks)
        # decoded[t] is (care bits of block t) x (every z): the bit M z yields at each care bit
        decoded = []
        for t in range(start, end):
            care = np.flatnonzero(block_of == t)
            care_rows = rows[(positions[care] % n_out).astype(np.int64)]
            decoded.append((care, parity(care_rows[:, None] & z[None, :]).astype(bool)))
        for plane in planes:
            cost = np.full(1 << state_bits, np.iinfo(np.int64).max // 4, dtype=np.int64)
            cost[0] = 0  # the register starts at zero in every segment
            for care, bits in decoded:
                target = ((values[care] >> plane) & 1).astype(bool)
                wrong = (bits != target[:, None]).sum(axis=0)
                through = cost[(z >> np.uint64(n_in)).astype(np.int64)] + wrong
                # the next state keeps the low state_bits of z (the newest n_s - 1 inputs)
                cost = through.reshape(-1, 1 << state_bits).min(axis=0)
            total += int(cost.min())
    return total
