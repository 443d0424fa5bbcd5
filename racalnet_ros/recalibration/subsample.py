"""The network's cap on radar points per frame: a deterministic, coverage-first subsample of the in-image points.

A huge cloud (accumulated sweeps, an imaging radar, a replayed bag with many identical points) is thinned on a pixel
grid before the network: one representative per occupied cell, on the finest power-of-two grid whose
representatives fit in `max_points`, then more points of the next finer grid until exactly `max_points` are chosen.
Dense clusters and duplicated points are thinned first, isolated points survive, the whole image stays covered.
Which point represents a cell follows a fixed-seed random order, so the same cloud always gives the same subset.
Cost: O(N) per grid level (a min-reduction of each cell's random rank on a dense cell array; projected points
lie inside the image, so the finest array has at most one cell per pixel), O(N + pixels) memory.
"""

from __future__ import annotations

import numpy as np


def _representatives(q: np.ndarray, s: int, rank: np.ndarray) -> np.ndarray:
    """bool mask of the points with the smallest rank in their s x s pixel cell; q: N x 2 int64 pixels >= 0."""
    c = q // s
    cols = int(c[:, 0].max()) + 1
    cell = c[:, 1] * cols + c[:, 0]
    first = np.full(int(cell.max()) + 1, len(rank), np.int64)
    np.minimum.at(first, cell, rank)
    return first[cell] == rank


def grid_subsample(uv: np.ndarray, max_points: int, seed: int = 0) -> np.ndarray:
    """uv: N x 2 pixel positions -> sorted indices of min(N, max_points) points (see the module docstring)."""
    n = len(uv)
    if n <= max_points:
        return np.arange(n)
    order = np.random.default_rng(seed).permutation(n)
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    q = np.floor(np.asarray(uv, np.float64) - np.min(uv, axis=0)).astype(np.int64)           # >= 0, whole pixels
    finer = np.ones(n, bool)                                          # level "below pixels": every point
    s = 1
    while (q.max(0) // s + 1).prod() > 4 * n + 65536:                 # far-flung uv: start where the cell array is O(N)
        s *= 2
    while True:
        rep = _representatives(q, s, rank)
        if rep.sum() <= max_points:
            break
        finer, s = rep, s * 2
    # all representatives of the chosen grid, then the finer grid's (or remaining points) in the fixed random order
    extra = np.flatnonzero(finer & ~rep)
    extra = extra[np.argsort(rank[extra])][: max_points - int(rep.sum())]
    return np.sort(np.concatenate([np.flatnonzero(rep), extra]))
