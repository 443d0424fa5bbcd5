"""What displacement can be worth (issue 9): dense-depth RMSE (0-50 m, synthetic frames, the frames' own prior) when the
checkpoint's kept anchors are placed (a) where its displacement head puts them ("full"), (b) at the raw projection
("no-displacement"), (c) at their true pixel ("oracle-true", ghosts and clutter stay), (d) at the label target
p + delta of a label rule ("label-NAME", computed from the test frame's own LiDAR: an oracle too), plus
no-recalibration. Also the median pixel error of kept anchors with a true pixel.

usage: python scripts/displacement_oracle.py ROOT CHECKPOINT [NAME='{LabelConfig fields as JSON}' ...]
(label rules override v3's measured label config). Writes oracle_<root>_<checkpoint>.json in the current folder."""
import sys, json, dataclasses, time
import numpy as np, torch
torch.set_num_threads(1)
from racalnet_ros.config import PipelineConfig
from racalnet_ros.pipeline import Pipeline
from racalnet_ros.datasets import open_dataset
from racalnet_ros.geometry import lidar_depth_map
from racalnet_ros.metrics import MetricAccumulator
from racalnet_ros.recalibration.labels import make_labels
from racalnet_ros.recalibration.config import LabelConfig

root, ckpt = sys.argv[1], sys.argv[2]
V3 = dict(conf_window=(67, 15), n_min=2, tau_min=0.5, alpha=0.05, search_window=(133, 47), slide_window=(67, 15))
rules = {}
for extra in sys.argv[3:]:
    k, v = extra.split("=", 1)
    rules[k] = LabelConfig(**{**V3, **json.loads(v)})
base = PipelineConfig.from_flat({"recalibration.checkpoint": ckpt, "device": "cpu", "cpu_threads": 1})
full = Pipeline.from_config(base.ablation("full"))
norec = Pipeline.from_config(base.ablation("no-recalibration"), prior=full.prior)
ds = open_dataset("synthetic", root)
crop = getattr(ds, "eval_crop_rows", None)
names = ["full", "no-displacement", "oracle-true", "no-recalibration"] + [f"label-{r}" for r in rules]
acc = {n: MetricAccumulator() for n in names}
pix = {n: [] for n in names}
t0 = time.time()
for fr in ds.iter_frames(skip_bad=True):
    gt = lidar_depth_map(fr, required=True)
    prep = full.prepare(fr)
    a = prep.anchors
    true = np.asarray(fr.extras["radar_uv_true"], np.float32)[a.index]
    ok = np.isfinite(true).all(1)
    variants = {"full": a,
                "no-displacement": dataclasses.replace(a, displacement=np.zeros_like(a.uv), uv=a.uv_raw.copy())}
    uv = a.uv.copy(); uv[ok] = true[ok]
    variants["oracle-true"] = dataclasses.replace(a, uv=uv, displacement=uv - a.uv_raw)
    for r, cfg in rules.items():
        lab = make_labels(a.uv_raw, a.depth, gt, cfg)
        d = np.where(lab.disp_mask[:, None], lab.displacement, 0).astype(np.float32)
        variants[f"label-{r}"] = dataclasses.replace(a, uv=a.uv_raw + d, displacement=d)
    for n, an in variants.items():
        full.aligner.reset()
        res = full.optimize(dataclasses.replace(prep, anchors=an))
        acc[n].add(res.depth, gt, crop_rows=crop)
        k = an.kept & ok
        pix[n].append(np.hypot(*(an.uv[k] - true[k]).T))
    norec.aligner.reset()
    res = norec.run(fr, prior=prep.prior)
    acc["no-recalibration"].add(res.depth, gt, crop_rows=crop)
out = {}
for n in names:
    s = acc[n].summary()["0-50"]
    out[n] = {"rmse": s["rmse"], "mae": s["mae"],
              "kept_pix_med": float(np.median(np.concatenate(pix[n]))) if pix[n] else float("nan")}
    print(f"{root.split('/')[-1]} {n:18s} rmse {s['rmse']:.3f} mae {s['mae']:.3f} "
          f"kept-pixel-err-med {out[n]['kept_pix_med']:.1f}")
print(f"{time.time()-t0:.0f}s", flush=True)
json.dump(out, open(f"oracle_{root.rstrip('/').split('/')[-1]}_{ckpt.rstrip('/').split('/')[-1]}.json", "w"), indent=1)
