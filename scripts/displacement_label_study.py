"""Label study (issue 9): Eq. 7-8 displacement labels against the true pixel of synthetic radar returns.

usage: python scripts/displacement_label_study.py ROOT[,ROOT...] [NAME='{LabelConfig fields as JSON}' ...]
Rule "old" is v3's measured label config (N 67x15, S 133x47, W 67x15, tau 0.5 m / 5%); each NAME=JSON overrides its
fields. Prints one JSON line per (folder, rule): for labelled points with a true pixel, the median / mean |error| in u
and v of the raw projection p and of the label target p + delta (pairs: raw, label), also split by confidence
label (c1 = 1, c0 = 0 with LiDAR), the share moved closer / farther by > 0.5 px, and the share with dv = 0 / du = 0.
Results in docs/results/recalibration.md ("Displacement labels against the truth")."""
import sys, json
import numpy as np
from racalnet_ros.datasets import open_dataset
from racalnet_ros.geometry import lidar_depth_map
from racalnet_ros.recalibration.features import project_radar
from racalnet_ros.recalibration.labels import make_labels
from racalnet_ros.recalibration.config import LabelConfig

V3 = dict(conf_window=(67, 15), n_min=2, tau_min=0.5, alpha=0.05, search_window=(133, 47), slide_window=(67, 15))
rules = {"old": LabelConfig(**V3)}
for extra in sys.argv[2:]:
    k, v = extra.split("=", 1)
    rules[k] = LabelConfig(**{**V3, **json.loads(v)})
out = {}
for root in sys.argv[1].split(","):
    ds = open_dataset("synthetic", root)
    acc = {r: [] for r in rules}
    for fr in ds.iter_frames(skip_bad=True):
        pr = project_radar(fr)
        lid = lidar_depth_map(fr, required=True)
        true = np.asarray(fr.extras["radar_uv_true"], np.float64)[pr.index]
        for r, cfg in rules.items():
            lab = make_labels(pr.uv, pr.depth, lid, cfg)
            acc[r].append(np.column_stack([pr.uv, true, lab.displacement, lab.disp_mask, lab.confidence,
                                           lab.conf_mask]))
    for r in rules:
        a = np.concatenate(acc[r])
        uv, tr, d, m, c, cm = a[:, 0:2], a[:, 2:4], a[:, 4:6], a[:, 6] > 0, a[:, 7], a[:, 8] > 0
        ok = np.isfinite(tr).all(1)
        res = {"points": len(a), "true": int(ok.sum()), "labelled_true": int((ok & m).sum()),
               "labelled_ghost": int((~ok & m).sum())}
        for name, sel in (("all", ok & m), ("c1", ok & m & (c > 0)), ("c0", ok & m & cm & (c == 0))):
            e0 = np.abs(uv[sel] - tr[sel]); e1 = np.abs(uv[sel] + d[sel] - tr[sel])
            n0 = np.hypot(*e0.T); n1 = np.hypot(*e1.T)
            res[name] = dict(n=int(sel.sum()),
                             med_u=(float(np.median(e0[:, 0])), float(np.median(e1[:, 0]))),
                             med_v=(float(np.median(e0[:, 1])), float(np.median(e1[:, 1]))),
                             mean_u=(float(e0[:, 0].mean()), float(e1[:, 0].mean())),
                             mean_v=(float(e0[:, 1].mean()), float(e1[:, 1].mean())),
                             med=(float(np.median(n0)), float(np.median(n1))),
                             better=float((n1 < n0 - 0.5).mean()), worse=float((n1 > n0 + 0.5).mean()),
                             frac_dv0=float((np.abs(d[sel][:, 1]) < 0.51).mean()),
                             frac_du0=float((np.abs(d[sel][:, 0]) < 0.51).mean()),
                             true_du_med=float(np.median(np.abs(tr[sel, 0] - uv[sel, 0]))),
                             # label sign agrees with truth
                             sign_u=float((np.sign(d[sel][:, 0]) == np.sign(tr[sel, 0] - uv[sel, 0])).mean()))
        out.setdefault(root, {})[r] = res
        print(root.split("/")[-1], r, json.dumps(res), flush=True)
