"""Global affine alignment of a relative inverse-depth prior to metric radar anchors (paper Eq. 11-12).

Our reading of the stripped equations (documented because the paper's formulas did not survive extraction):

Eq. 11, regularised least squares in inverse depth. With x_i the prior's relative inverse depth at anchor i and
y_i = 1 / d_i the anchor's metric inverse depth (1/m), over the valid anchor set Omega:

    (s, b) = argmin  sum_{i in Omega} (s x_i + b - y_i)^2  +  lam * |Omega| * (s^2 m_xx + b^2)

with m_xx = mean(x_i^2) so that both penalty terms are in units of y^2 and `lam` is dimensionless (default 1e-6:
a numerical safeguard that keeps the 2 x 2 system well conditioned; it biases the fit by about lam relatively).

Eq. 12, threshold search. "Unreliable predictions" are anchors whose inverse-depth residual is large. For each
candidate threshold tau (relative inverse-depth residual |s x_i + b - y_i| / y_i, which is also the relative depth
error of the aligned prior at that anchor) the anchors within tau of the current fit form Omega_tau and Eq. 11 is
re-solved on them (graduated: from the loosest threshold to the tightest, each warm-started from the previous fit,
`iterations` refits per threshold). The relative alignment error of a candidate is

    E(tau) = mean_{i in Omega} min(|d_hat_i - d_i| / d_i, error_cap)

over *all* valid anchors (a truncated mean, so that a fit is not rewarded for discarding anchors: outliers cost at
most `error_cap`, inliers their true relative error). tau* = argmin E(tau) and its fit is the result; its inliers
Omega_tau* are the anchors used (they also drive the local refinement, Eq. 13-14).

Guards (each sets a flag in `GlobalFit.fallbacks`; never silent garbage):
  "no_anchors"        no valid anchor -> the previous frame's fit if one is given ("previous_fit"), else no fit
                      (ok=False; the pipeline outputs NaN depth);
  "too_few_anchors"   fewer than `min_anchors` -> scale only, s = median(y_i / x_i), b = 0 ("scale_only");
  "singular"          the prior takes (nearly) one value over the anchors, so scale and shift are not separable ->
                      scale only as above;
  "nonpositive_scale" the affine fit has s <= 0 (an inverted depth ordering) -> scale only as above;
  "scale_only_failed" the median ratio is itself non-positive (prior <= 0 at the anchors) -> previous fit or no fit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from ..config import AlignConfig  # noqa: F401  (defined with its descriptions and ranges in racalnet_ros/config.py)


@dataclass
class GlobalFit:
    """Result of `align_global`: inverse depth = scale * prior + shift.

    ok: False when no fit exists (depth must then be NaN). threshold: tau* of Eq. 12 (inf = all anchors; NaN when
    no search ran). inliers: bool mask over the *input* anchors (False for invalid ones). error: E(tau*).
    fallbacks: guard flags, see the module docstring.
    """

    scale: float = float("nan")
    shift: float = float("nan")
    ok: bool = False
    threshold: float = float("nan")
    inliers: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    error: float = float("nan")
    n_valid: int = 0
    fallbacks: list[str] = field(default_factory=list)

    @property
    def n_used(self) -> int:
        return int(self.inliers.sum())


def sample_prior(prior: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Prior values at anchor pixels (u, v) (nearest pixel, the convention of geometry.sparse_depth_map); NaN for
    pixels outside the image."""
    h, w = prior.shape
    uv = np.asarray(uv, np.float64).reshape(-1, 2)
    with np.errstate(invalid="ignore"):
        cols = np.rint(uv[:, 0])
        rows = np.rint(uv[:, 1])
        inside = np.isfinite(cols) & np.isfinite(rows) & (cols >= 0) & (cols < w) & (rows >= 0) & (rows < h)
    out = np.full(len(uv), np.nan, np.float64)
    out[inside] = prior[rows[inside].astype(np.int64), cols[inside].astype(np.int64)]
    return out


def solve_affine(x: np.ndarray, y: np.ndarray, lam: float = 0.0) -> Optional[tuple[float, float]]:
    """Eq. 11: (s, b) minimising sum (s x + b - y)^2 + lam n (s^2 mean(x^2) + b^2); None if the system is singular
    (fewer than 2 points or x (nearly) constant)."""
    n = len(x)
    if n < 2:
        return None
    sxx, sx, sy, sxy = float(x @ x), float(x.sum()), float(y.sum()), float(x @ y)
    # Singular when the spread of x is negligible against its magnitude (var(x) / mean(x^2) < 1e-8): the
    # regulariser would still give an answer, but its shift would be made up, so we refuse.
    if not np.isfinite(sxx) or n * sxx - sx * sx <= 1e-8 * n * sxx:
        return None
    a00 = sxx * (1.0 + lam)
    a11 = n * (1.0 + lam)
    det = a00 * a11 - sx * sx
    s = (a11 * sxy - sx * sy) / det
    b = (a00 * sy - sx * sxy) / det
    return float(s), float(b)


def _scale_only(x: np.ndarray, y: np.ndarray) -> Optional[float]:
    """Median ratio y / x over anchors with x > 0; None if it is not positive."""
    pos = x > 0
    if not pos.any():
        return None
    s = float(np.median(y[pos] / x[pos]))
    return s if s > 0 and np.isfinite(s) else None


def _truncated_rel_error(s: float, b: float, x: np.ndarray, d: np.ndarray, cap: float) -> float:
    """E of Eq. 12: mean over anchors of min(|d_hat - d| / d, cap); anchors whose aligned inverse depth is not
    positive count as cap."""
    inv = s * x + b
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(1.0 / inv - d) / d
    rel = np.where(inv > 0, rel, cap)
    return float(np.mean(np.minimum(rel, cap)))


def align_global(prior: np.ndarray, uv: np.ndarray, depth: np.ndarray, config: Optional[AlignConfig] = None,
                 previous: Optional[tuple[float, float]] = None) -> GlobalFit:
    """Fit inverse depth = s * prior + b to the anchors (Eq. 11) with the threshold search (Eq. 12) and guards.

    prior: H x W relative inverse depth. uv: N x 2 anchor pixels (full resolution). depth: N metres.
    previous: (scale, shift) of an earlier fit, used only when no anchor is usable (and config allows it).
    """
    cfg = (config or AlignConfig()).validate()
    uv = np.asarray(uv, np.float64).reshape(-1, 2)
    d = np.asarray(depth, np.float64).reshape(-1)
    if len(d) != len(uv):
        raise ValueError(f"depth: {len(d)} values for {len(uv)} anchor pixels")
    x_all = sample_prior(np.asarray(prior), uv)
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(x_all) & np.isfinite(d) & (d >= cfg.min_depth) & (d <= cfg.max_depth)
    idx = np.flatnonzero(valid)
    x, dv = x_all[idx], d[idx]
    y = 1.0 / dv
    fit = GlobalFit(inliers=np.zeros(len(d), bool), n_valid=len(idx))

    def use_previous(flag_list: list[str]) -> GlobalFit:
        if previous is not None and cfg.use_previous_fit and previous[0] > 0:
            fit.scale, fit.shift, fit.ok = float(previous[0]), float(previous[1]), True
            flag_list.append("previous_fit")
        return fit

    def scale_only(flag: str) -> GlobalFit:
        fit.fallbacks.append(flag)
        s = _scale_only(x, y)
        if s is None:
            fit.fallbacks.append("scale_only_failed")
            return use_previous(fit.fallbacks)
        fit.scale, fit.shift, fit.ok = s, 0.0, True
        fit.fallbacks.append("scale_only")
        fit.inliers[idx[x > 0]] = True
        fit.error = _truncated_rel_error(s, 0.0, x, dv, cfg.error_cap)
        return fit

    if len(idx) == 0:
        fit.fallbacks.append("no_anchors")
        return use_previous(fit.fallbacks)
    if len(idx) < cfg.min_anchors:
        return scale_only("too_few_anchors")

    lam = cfg.regularization
    sol = solve_affine(x, y, lam)
    if sol is None:
        return scale_only("singular")

    best = (sol, np.inf, np.ones(len(idx), bool), _truncated_rel_error(*sol, x, dv, cfg.error_cap))
    if cfg.threshold_search:
        cur = sol
        for tau in cfg.threshold_values():
            cand, keep = cur, None
            for _ in range(max(1, cfg.iterations)):
                rel = np.abs(cand[0] * x + cand[1] - y) / y  # relative inverse-depth residual
                k = rel <= tau
                if k.sum() < cfg.min_anchors:
                    break
                nxt = solve_affine(x[k], y[k], lam)
                if nxt is None:
                    break
                cand, keep = nxt, k
            if keep is None:
                continue
            cur = cand
            err = _truncated_rel_error(*cand, x, dv, cfg.error_cap)
            # strictly better only: ties keep the looser threshold (more anchors)
            if err < best[3] - 1e-12:
                best = (cand, tau, keep, err)
    (s, b), tau, keep, err = best
    if not s > 0:
        return scale_only("nonpositive_scale")
    fit.scale, fit.shift, fit.ok, fit.error = s, b, True, err
    fit.threshold = tau if cfg.threshold_search else float("nan")
    fit.inliers[idx[keep]] = True
    return fit


def apply_affine(prior: np.ndarray, scale: float, shift: float, min_depth: float, max_depth: float) -> np.ndarray:
    """Aligned metric depth (metres, float32) from the prior: 1 / clamp(s * prior + b, 1/max_depth, 1/min_depth).
    Non-positive aligned inverse depth (beyond infinity) clamps to max_depth; a non-finite prior gives NaN."""
    inv = scale * prior.astype(np.float32) + np.float32(shift)
    inv = np.clip(inv, np.float32(1.0 / max_depth), np.float32(1.0 / min_depth))  # NaN stays NaN
    return (1.0 / inv).astype(np.float32)


__all__: Sequence[str] = ("AlignConfig", "GlobalFit", "align_global", "apply_affine", "sample_prior", "solve_affine")
