"""Training loss of the recalibration network (paper Eq. 6, 9, 10)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def recalibration_loss(conf_logit: torch.Tensor, disp: torch.Tensor, batch: dict, disp_weight: float = 1.0,
                       pos_weight: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
    """L = L_conf + lambda * L_disp (Eq. 10).

    L_conf (Eq. 6): binary cross-entropy over the points with LiDAR in their neighbourhood (batch["conf_mask"]),
      mean over those points; `pos_weight` != 1 re-weights positive labels (1 = the paper's plain BCE).
    L_disp (Eq. 9): Smooth L1 (beta = 1) between predicted and labelled displacement, both in units of
      ModelConfig.disp_norm pixels (so lambda does not depend on the image size), summed over (du, dv) and averaged
      over the points with a displacement label (batch["disp_mask"]).
    conf_logit: B x N; disp: B x N x 2. A term with no supervised point contributes 0 (with a gradient path).
    """
    cm = batch["conf_mask"]
    dm = batch["disp_mask"]
    pw = torch.tensor(pos_weight, dtype=conf_logit.dtype, device=conf_logit.device)
    bce = F.binary_cross_entropy_with_logits(conf_logit, batch["conf_label"], pos_weight=pw, reduction="none")
    l_conf = (bce * cm).sum() / cm.sum().clamp(min=1)
    sl1 = F.smooth_l1_loss(disp, batch["disp_label"], reduction="none", beta=1.0).sum(-1)
    l_disp = (sl1 * dm).sum() / dm.sum().clamp(min=1)
    total = l_conf + disp_weight * l_disp
    return total, {"loss": float(total.detach()), "loss_conf": float(l_conf.detach()),
                   "loss_disp": float(l_disp.detach())}
