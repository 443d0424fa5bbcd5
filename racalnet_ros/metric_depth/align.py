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

Per-anchor weights (optional, default all ones = the above exactly): Eq. 11 becomes a weighted least squares,
sum w_i (s x_i + b - y_i)^2 + lam W (s^2 mean_w(x^2) + b^2) with W = sum w_i (so only relative weights matter), E
a weighted mean and the scale-only fallback a weighted median; an anchor of weight 0 is ignored (not valid, not
counted towards min_anchors). This lets a caller use the recalibration network's confidence as a weight instead
of a hard threshold.

Implementation: torch on the prior's device, anchors in float64. The search is branch-free (every guard and every
"break" is a mask), so on CUDA nothing is read back until the caller reads the result (`DeviceFit.to_host`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
import torch

from ..config import AlignConfig  # noqa: F401  (defined with its descriptions and ranges in racalnet_ros/config.py)
from .tensors import ANCHOR_DTYPE, as_tensor


@dataclass
class GlobalFit:
    """Result of `align_global` on the host: inverse depth = scale * prior + shift.

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


#: guard flags in the order they are listed (cause, then the fallback taken)
FLAGS = ("no_anchors", "too_few_anchors", "singular", "nonpositive_scale", "scale_only", "scale_only_failed",
         "previous_fit")


@dataclass
class DeviceFit:
    """The global fit as tensors on the prior's device (nothing read back): 0-d float64 scale, shift, threshold,
    error; 0-d bool ok; N bool inliers; 0-d int64 n_valid; flags: bool per entry of FLAGS. `to_host()` reads it
    back once."""

    scale: torch.Tensor
    shift: torch.Tensor
    ok: torch.Tensor
    threshold: torch.Tensor
    error: torch.Tensor
    inliers: torch.Tensor
    n_valid: torch.Tensor
    flags: torch.Tensor

    def to_host(self) -> GlobalFit:
        vals = torch.stack([self.scale, self.shift, self.threshold, self.error, self.ok.to(ANCHOR_DTYPE),
                            self.n_valid.to(ANCHOR_DTYPE)]).tolist()
        flags = self.flags.tolist()
        return GlobalFit(scale=vals[0], shift=vals[1], ok=bool(vals[4]), threshold=vals[2],
                         inliers=self.inliers.cpu().numpy(), error=vals[3], n_valid=int(vals[5]),
                         fallbacks=[f for f, on in zip(FLAGS, flags) if on])


def sample_prior(prior: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Prior values at anchor pixels (u, v) (nearest pixel, the convention of geometry.sparse_depth_map), float64;
    NaN for pixels outside the image. prior: H x W tensor; uv: N x 2 float64 tensor on the same device."""
    h, w = prior.shape
    cols, rows = torch.round(uv[:, 0]), torch.round(uv[:, 1])  # round half to even, as numpy's rint
    inside = torch.isfinite(cols) & torch.isfinite(rows) & (cols >= 0) & (cols < w) & (rows >= 0) & (rows < h)
    flat = torch.where(inside, rows * w + cols, 0.0).long()
    vals = prior.reshape(-1)[flat].to(ANCHOR_DTYPE)
    return torch.where(inside, vals, float("nan"))


def affine_rows(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """N x 6 float64 rows [1{w > 0}, w, w x, w x^2, w y, w x y] whose (masked) column sums are everything a weighted
    affine fit of y on x needs; x, y are ignored (zeroed) where w <= 0."""
    used = w > 0
    x, y, w = torch.where(used, x, 0.0), torch.where(used, y, 0.0), torch.where(used, w, 0.0)
    wx = w * x
    return torch.stack([used.to(w.dtype), w, wx, wx * x, w * y, wx * y], dim=-1)


@functools.lru_cache(maxsize=16)
def _solve_forms(lam: float, device: torch.device) -> torch.Tensor:
    """36 x 4: the quadratic forms in the sums q = [n, W, Sx, Sxx, Sy, Sxy] that solve_affine needs: the numerators
    of s and b, the determinant, and W Sxx (1 - 1e-8) - Sx^2 (> 0: not singular)."""
    c = torch.zeros(6, 6, 4, dtype=ANCHOR_DTYPE)
    c[1, 5, 0], c[2, 4, 0] = 1.0 + lam, -1.0  # s numerator: a11 Sxy - Sx Sy
    c[3, 4, 1], c[2, 5, 1] = 1.0 + lam, -1.0  # b numerator: a00 Sy - Sx Sxy
    c[3, 1, 2], c[2, 2, 2] = (1.0 + lam) ** 2, -1.0  # det = a00 a11 - Sx^2
    c[1, 3, 3], c[2, 2, 3] = 1.0 - 1e-8, -1.0  # singularity margin
    return c.reshape(36, 4).to(device)


def solve_affine(sums: torch.Tensor, lam: float = 0.0, min_count: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 11 (and Eq. 14) from column sums of `affine_rows` (... x 6, batched over leading dims): theta = (s, b)
    (... x 2) minimising sum w (s x + b - y)^2 + lam W (s^2 mean_w(x^2) + b^2), W = sum w, and ok = False where
    fewer than min_count (>= 2) anchors take part or the system is singular (x (nearly) constant:
    var_w(x) / mean_w(x^2) < 1e-8 -- the regulariser would still give an answer, but its shift would be made up,
    so we refuse). With unit weights this is plain Eq. 11. A handful of batched ops (no per-scalar arithmetic):
    the search calls it 14 times per frame."""
    forms = (sums.unsqueeze(-1) * sums.unsqueeze(-2)).flatten(-2) @ _solve_forms(float(lam), sums.device)
    theta = forms[..., :2] / forms[..., 2:3]
    return theta, (forms[..., 3] > 0) & (sums[..., 0] >= max(2, min_count))


def weighted_median(values: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Median of `values` where w > 0, weighted by w: the mean of the lower and upper weighted medians, which is
    numpy's median for equal weights. NaN when no weight is positive."""
    if len(values) == 0:  # shapes are known on the host: no read-back
        return torch.full((), float("nan"), dtype=values.dtype, device=values.device)
    v = torch.where(w > 0, values, float("inf"))
    order = torch.argsort(v)
    v, cw = v[order], torch.cumsum(torch.where(w > 0, w, 0.0)[order], 0)
    half = cw[-1:] / 2
    lo = torch.searchsorted(cw, half, side="left").clamp(max=len(v) - 1)
    hi = torch.searchsorted(cw, half, side="right").clamp(max=len(v) - 1)
    med = (v[lo] + v[hi])[0] / 2
    return torch.where(cw[-1] > 0, med, float("nan"))


def fit_global(x: torch.Tensor, d: torch.Tensor, w: torch.Tensor, config: AlignConfig,
               previous: Optional[tuple[float, float]] = None) -> DeviceFit:
    """Eq. 11-12 with the guards on the anchors' prior values x (N, NaN = outside the image), metric depths d (N,
    metres) and weights w (N, >= 0; an anchor of weight 0 is ignored), all float64 on one device. Branch-free
    (every guard is a mask, every "break" of the search a where), so nothing is read back on CUDA; written with
    few, batched ops because at a few hundred anchors the cost is the number of ops, not the arithmetic."""
    cfg = config
    dev = x.device
    nan = float("nan")
    valid = torch.isfinite(x) & torch.isfinite(d) & (d >= cfg.min_depth) & (d <= cfg.max_depth) & (w > 0)
    xv, wv = torch.where(valid, x, 0.0), torch.where(valid, w, 0.0)
    dn = torch.where(valid, d, nan)  # NaN rows never fall within a threshold and cost nothing in E
    rows = affine_rows(xv, 1.0 / torch.where(valid, d, 1.0), wv)
    # u = P theta = (s x + b) d: |u - 1| is the relative inverse-depth residual, |1/u - 1| the relative depth error
    P = torch.stack([x * dn, dn], dim=-1)
    n_valid = valid.sum()
    wn = wv / wv.sum()  # E as a weighted mean (NaN weights when nothing is valid: flagged below)
    lam, cap = cfg.regularization, cfg.error_cap

    def error(theta: torch.Tensor) -> torch.Tensor:
        """E of Eq. 12: weighted mean over valid anchors of min(|d_hat - d| / d, cap); an anchor whose aligned
        inverse depth is not positive counts as cap."""
        u = P @ theta
        return wn @ torch.where(u > 0, torch.abs(1.0 / u - 1.0), cap).clamp_(max=cap)

    theta0, ok0 = solve_affine(rows.sum(0), lam)
    best, best_err, best_keep = theta0, error(theta0), valid
    best_tau = torch.full((), float("inf"), dtype=ANCHOR_DTYPE, device=dev)
    if cfg.threshold_search:
        cur = theta0
        for tau in cfg.threshold_values():
            # graduated: refit on the anchors within tau of the current fit; a failed refit stops this threshold
            cand, keep = cur, valid
            found = torch.zeros((), dtype=torch.bool, device=dev)
            active = torch.ones((), dtype=torch.bool, device=dev)
            for _ in range(max(1, cfg.iterations)):
                k = torch.abs(P @ cand - 1.0) <= tau
                theta, ok = solve_affine(k.to(rows.dtype) @ rows, lam, cfg.min_anchors)
                step = ok & active
                cand, keep = torch.where(step, theta, cand), torch.where(step, k, keep)
                found, active = found | step, step
            cur = cand  # unchanged when nothing was found
            err = error(cand)
            better = found & (err < best_err - 1e-12)  # strictly better only: ties keep the looser threshold
            best, best_err = torch.where(better, cand, best), torch.where(better, err, best_err)
            best_keep, best_tau = torch.where(better, keep, best_keep), torch.where(better, tau, best_tau)

    # guards (module docstring)
    def const(v: float) -> torch.Tensor:  # a 0-d float64 on the device (torch.where of two python floats is float32)
        return torch.full((), v, dtype=ANCHOR_DTYPE, device=dev)

    best_s, best_b = best.unbind(-1)
    no_anchors = n_valid == 0
    too_few = ~no_anchors & (n_valid < cfg.min_anchors)
    singular = ~no_anchors & ~too_few & ~ok0
    nonpositive = ~no_anchors & ~too_few & ok0 & ~(best_s > 0)
    need_scale_only = too_few | singular | nonpositive
    pos = valid & (xv > 0)
    so_s = weighted_median(torch.where(pos, 1.0 / (torch.where(pos, xv, 1.0) * dn), 0.0), torch.where(pos, wv, 0.0))
    so_ok = need_scale_only & (so_s > 0) & torch.isfinite(so_s)
    so_failed = need_scale_only & ~so_ok
    affine = ~no_anchors & ~need_scale_only
    prev_ok = previous is not None and cfg.use_previous_fit and previous[0] > 0
    use_prev = (no_anchors | so_failed) & prev_ok
    prev_s, prev_b = (const(previous[0]), const(previous[1])) if prev_ok else (const(nan), const(nan))
    scale = torch.where(affine, best_s, torch.where(so_ok, so_s, torch.where(use_prev, prev_s, nan)))
    shift = torch.where(affine, best_b, torch.where(so_ok, 0.0, torch.where(use_prev, prev_b, nan)))
    err_so = error(torch.stack([torch.where(so_ok, so_s, 0.0), const(0.0)]))
    fit_error = torch.where(affine, best_err, torch.where(so_ok, err_so, nan))
    threshold = torch.where(affine, best_tau if cfg.threshold_search else const(nan), nan)
    inliers = torch.where(affine, best_keep, so_ok & pos)
    flags = torch.stack([no_anchors, too_few, singular, nonpositive, so_ok, so_failed, use_prev])
    return DeviceFit(scale, shift, affine | so_ok | use_prev, threshold, fit_error, inliers, n_valid, flags)


def anchor_tensors(uv, depth, weights, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Anchors (numpy or torch) as float64 tensors on `device`: uv N x 2, depth N, weights N (ones when None).
    ValueError when the lengths disagree or a weight is negative."""
    uv = as_tensor(uv, device, ANCHOR_DTYPE).reshape(-1, 2)
    d = as_tensor(depth, device, ANCHOR_DTYPE).reshape(-1)
    if len(d) != len(uv):
        raise ValueError(f"depth: {len(d)} values for {len(uv)} anchor pixels")
    if weights is None:
        return uv, d, torch.ones_like(d)
    w = as_tensor(weights, device, ANCHOR_DTYPE).reshape(-1)
    if len(w) != len(d):
        raise ValueError(f"weights: {len(w)} values for {len(d)} anchors")
    if w.device.type == "cpu" and bool((w < 0).any()):  # checked where it is free; on CUDA negative = ignored
        raise ValueError("weights: must be >= 0")
    return uv, d, w


@torch.inference_mode()
def align_global(prior, uv, depth, config: Optional[AlignConfig] = None,
                 previous: Optional[tuple[float, float]] = None, weights=None) -> GlobalFit:
    """Fit inverse depth = s * prior + b to the anchors (Eq. 11) with the threshold search (Eq. 12) and guards, on
    the prior's device; returns the fit read back to the host.

    prior: H x W relative inverse depth (numpy or torch). uv: N x 2 anchor pixels (full resolution). depth: N
    metres. previous: (scale, shift) of an earlier fit, used only when no anchor is usable (and config allows it).
    weights: optional N per-anchor weights >= 0 (default all ones: plain Eq. 11; weight 0 removes an anchor).
    """
    cfg = (config or AlignConfig()).validate()
    prior = as_tensor(prior)
    uv_t, d, w = anchor_tensors(uv, depth, weights, prior.device)
    return fit_global(sample_prior(prior, uv_t), d, w, cfg, previous).to_host()


def affine_inverse_depth(prior: torch.Tensor, scale, shift, min_depth: float, max_depth: float) -> torch.Tensor:
    """Aligned metric inverse depth clamp(s * prior + b, 1/max_depth, 1/min_depth) in the prior's dtype; scale and
    shift may be 0-d tensors (no read-back). A non-finite prior (or scale) gives NaN."""
    dt = prior.dtype
    s = scale.to(dt) if isinstance(scale, torch.Tensor) else scale
    b = shift.to(dt) if isinstance(shift, torch.Tensor) else shift
    return torch.clamp(prior * s + b, 1.0 / max_depth, 1.0 / min_depth)  # NaN stays NaN


def apply_affine(prior, scale: float, shift: float, min_depth: float, max_depth: float):
    """Aligned metric depth (metres) from the prior: 1 / clamp(s * prior + b, 1/max_depth, 1/min_depth).
    Non-positive aligned inverse depth (beyond infinity) clamps to max_depth; a non-finite prior gives NaN.
    numpy in -> float32 numpy out; a tensor in -> a tensor (its dtype, float32 for others) on its device."""
    if isinstance(prior, torch.Tensor):
        p = prior if prior.is_floating_point() else prior.float()
        return 1.0 / affine_inverse_depth(p, scale, shift, min_depth, max_depth)
    p = as_tensor(np.asarray(prior, np.float32))
    return (1.0 / affine_inverse_depth(p, scale, shift, min_depth, max_depth)).numpy()


__all__: Sequence[str] = ("AlignConfig", "DeviceFit", "GlobalFit", "affine_inverse_depth", "affine_rows",
                          "align_global", "anchor_tensors", "apply_affine", "fit_global", "sample_prior",
                          "solve_affine", "weighted_median")
