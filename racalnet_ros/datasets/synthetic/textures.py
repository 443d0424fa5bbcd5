"""Procedural textures keyed on world surface coordinates: asphalt noise with lane markings, kerb-stone tiles,
facade windows and bricks, car cabins, foliage noise. Hand-written because they are a few lines of numpy each and
need no image assets."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from . import scene as S

#: value noise repeats every LATTICE units (512 m at 1 cycle per metre, 8.5 m at the finest 60 cycles per metre)
LATTICE = 512


def _hash(ix: np.ndarray, iy: np.ndarray, seed: int = 0) -> np.ndarray:
    """Deterministic pseudo-random value in [0, 1) per integer lattice point."""
    h = (ix.astype(np.int64) * 73856093) ^ (iy.astype(np.int64) * 19349663) ^ (seed * 83492791)
    h = (h ^ (h >> 13)) * 1274126177
    return ((h ^ (h >> 16)) & 0xFFFF).astype(np.float32) / 65536.0


@lru_cache(maxsize=32)
def _lattice(seed: int) -> np.ndarray:
    """The hashed lattice values of one seed over one LATTICE x LATTICE tile (read-only)."""
    iy, ix = np.mgrid[:LATTICE, :LATTICE]
    t = _hash(ix, iy, seed)
    t.flags.writeable = False
    return t


def value_noise(x: np.ndarray, y: np.ndarray, seed: int = 0) -> np.ndarray:
    """Smooth 2D value noise in [0, 1): bilinear interpolation of lattice hashes with a smoothstep (the lattice is
    looked up in a cached tile instead of hashed per point, ~4x faster)."""
    ix, iy = np.floor(x), np.floor(y)
    fx, fy = (x - ix).astype(np.float32), (y - iy).astype(np.float32)
    fx, fy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)
    t = _lattice(seed).ravel()
    m = LATTICE - 1                                   # LATTICE is a power of two: & m is the wrap
    i0, j0 = ix.astype(np.int32) & m, (iy.astype(np.int32) & m) * LATTICE
    i1, j1 = (i0 + 1) & m, (j0 + LATTICE) % (LATTICE * LATTICE)
    a, b, c, d = np.take(t, j0 + i0), np.take(t, j0 + i1), np.take(t, j1 + i0), np.take(t, j1 + i1)
    return (a + (b - a) * fx) * (1 - fy) + (c + (d - c) * fx) * fy


def albedo(material: np.ndarray, obj: np.ndarray, p: np.ndarray, n: np.ndarray, scene: "S.Scene") -> np.ndarray:
    """Albedo (N x 3, 0..1) at hit points p (N x 3 world) with normals n (N x 3) on objects `obj` (N)."""
    col = scene.color[obj].copy()
    x, y, z = p[:, 0], p[:, 1], p[:, 2]

    m = material == S.ROAD
    if m.any():
        xm, ym = x[m], y[m]
        g = 0.75 + 0.35 * value_noise(xm * 3.0, ym * 3.0, 1) + 0.15 * value_noise(xm * 0.3, ym * 0.3, 2)
        c = col[m] * g[:, None]
        right, left = scene.road_y
        dashed = (np.abs(ym - scene.centre_y) < 0.08) & (np.mod(xm, 9.0) < 4.5)
        edge = (np.abs(ym - (right + 0.3)) < 0.07) | (np.abs(ym - (left - 0.3)) < 0.07)
        c[dashed | edge] = (0.92, 0.92, 0.88)
        col[m] = c

    m = material == S.SIDEWALK
    if m.any():
        u, v = x[m] / 0.6, y[m] / 0.6
        joint = (np.mod(u, 1.0) < 0.05) | (np.mod(v, 1.0) < 0.05)
        c = col[m] * (0.9 + 0.15 * _hash(np.floor(u), np.floor(v), 3))[:, None]
        c[joint] *= 0.6
        kerb = np.abs(n[m, 2]) < 0.5   # the kerb's vertical face
        c[kerb] *= 0.75
        col[m] = c

    m = material == S.GROUND
    if m.any():
        g = 0.7 + 0.5 * value_noise(x[m] * 1.5, y[m] * 1.5, 4)
        col[m] *= g[:, None]

    m = material == S.BUILDING
    if m.any():
        nm = n[m]
        s = np.where(np.abs(nm[:, 0]) < np.abs(nm[:, 1]), x[m], y[m])   # horizontal facade coordinate
        zm = z[m]
        oid = obj[m]
        bay = 2.0 + (oid % 3) * 0.6          # window spacing per building
        storey = 3.0 + (oid % 2) * 0.4
        fs, fz = np.mod(s, bay) / bay, np.mod(zm, storey) / storey
        window = (fs > 0.25) & (fs < 0.75) & (fz > 0.3) & (fz < 0.8) & (zm > 1.0) & (np.abs(nm[:, 2]) < 0.5)
        brick_rows = np.floor(zm / 0.25)
        brick = np.mod(s / 0.5 + 0.5 * np.mod(brick_rows, 2), 1.0) < 0.06
        mortar = (np.mod(zm, 0.25) < 0.03) | brick
        c = col[m] * (0.92 + 0.1 * _hash(np.floor(s / 0.5 + 0.5 * np.mod(brick_rows, 2)), brick_rows, 5))[:, None]
        c[mortar & (oid % 2 == 0)] *= 0.8     # every other building is brick
        wc = np.array([0.12, 0.15, 0.2], np.float32) + 0.15 * _hash(np.floor(s / bay), np.floor(zm / storey), 6)[:, None]
        c[window] = wc[window]
        roof = nm[:, 2] > 0.5
        c[roof] = (0.3, 0.3, 0.32)
        col[m] = c

    m = material == S.CAR
    if m.any():
        col[m] *= np.where(z[m] < 0.55, 0.45, 1.0)[:, None]   # dark bumper strip

    m = material == S.FOLIAGE
    if m.any():
        g = 0.55 + 0.8 * value_noise(x[m] * 4.0 + z[m] * 3.0, y[m] * 4.0 - z[m] * 2.0, 7)
        col[m] *= g[:, None]

    m = material == S.TRUNK
    if m.any():
        col[m] *= (0.8 + 0.4 * value_noise(z[m] * 8.0, (x[m] + y[m]) * 8.0, 8))[:, None]

    # fine detail on every surface (dirt, grain, leaves, twigs): value noise at 2, 6, 20 and 60 cycles per metre on a
    # slanted projection of the surface point, strongest on crowns and grass, weakest on glass and metal
    u, v = x * 0.8 + y * 0.6, z + 0.5 * (x - y)
    detail = 0.25 * value_noise(u * 2.0, v * 2.0, 15) + 0.3 * value_noise(u * 6.0, v * 6.0, 12) \
        + 0.25 * value_noise(u * 20.0, v * 20.0, 13) + 0.2 * value_noise(u * 60.0, v * 60.0, 14) - 0.5
    col *= (1.0 + DETAIL_AMPLITUDE[material] * detail)[:, None]
    return np.clip(col, 0.0, 1.0)


#: amplitude of the fine detail texture per material (scene.MATERIAL_NAMES order)
DETAIL_AMPLITUDE = np.array([1.6, 0.8, 0.7, 0.7, 0.3, 0.2, 0.6, 0.6, 0.4, 0.5, 1.4, 2.0, 0.3], np.float32)
