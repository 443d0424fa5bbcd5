"""`racalnet inspect`: dataset statistics per frame and in summary (radar / LiDAR points in the image, depth ranges),
optional overlay PNGs of radar and LiDAR on the image, and optionally how far raw radar depth is from the LiDAR
around it (`--consistency`, issue 2 item 7; see racalnet_ros.metrics.radar_lidar_agreement). `--radar-stats` measures
what the radar looks like instead and compares it with a reference (racalnet_ros.datasets.radar_stats, issue 9)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

HELP = ("dataset statistics (radar/LiDAR points in image, depth ranges), overlay PNGs, radar-vs-LiDAR agreement, "
        "radar statistics against a reference (--radar-stats)")

#: overlay colour scale (metric_depth.output.colorize_depth, the package's one colour map): near = red, far = blue
OVERLAY_MIN_DEPTH, OVERLAY_MAX_DEPTH = 1.0, 80.0


def add_arguments(p) -> None:
    from .options import DATASET_KINDS, add_bag_options

    p.add_argument("--dataset", required=True, choices=DATASET_KINDS)
    p.add_argument("--root", required=True, help="dataset folder (bag: the rosbag2 directory)")
    p.add_argument("--split", default=None, help="named split (e.g. train, val, full)")
    p.add_argument("--frames", nargs="+", default=None, help="frame ids (default: all of the split)")
    p.add_argument("--limit", type=int, default=None, help="inspect at most this many frames")
    p.add_argument("--overlay-out", default=None, help="write <frame_id>.png overlays into this folder")
    p.add_argument("--consistency", action="store_true",
                   help="measure raw radar depth against the LiDAR in a window around each radar pixel")
    p.add_argument("--window", type=int, nargs=2, default=None, metavar=("W", "H"),
                   help="LiDAR neighbourhood of a radar pixel in pixels, odd (default 9 65, see metrics.py)")
    p.add_argument("--occlusion-filter", action="store_true", help="drop LiDAR points hidden from the camera")
    p.add_argument("--json", default=None, help="also write per-frame rows and the summary to this JSON file")
    p.add_argument("--quiet", action="store_true", help="print the summary only")
    p.add_argument("--radar-stats", default=None, metavar="OUT.json",
                   help="measure the radar's statistics instead (racalnet_ros/datasets/radar_stats.py): write "
                        "OUT.json and a markdown account OUT.md")
    p.add_argument("--compare-to", default=None, metavar="REF.json",
                   help="with --radar-stats: compare against another dataset's OUT.json (e.g. Astyx) with the "
                        "documented tolerances and add the table to OUT.md")
    add_bag_options(p)


def draw_overlay(frame, radar_uv, radar_depth, lidar_map):
    """BGR image with LiDAR pixels as small filled dots and radar points as larger rings, both coloured by depth."""
    import cv2
    import numpy as np

    from ..metric_depth.output import depth_colours, draw_colour_bar

    def colours(d):
        return depth_colours(d, OVERLAY_MIN_DEPTH, OVERLAY_MAX_DEPTH, bgr=True)

    img = cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR)
    rows, cols = np.nonzero(lidar_map > 0)
    for (r, c), col in zip(zip(rows, cols), colours(lidar_map[rows, cols])):
        cv2.circle(img, (int(c), int(r)), 2, tuple(int(x) for x in col), -1, lineType=cv2.LINE_AA)
    for (u, v), col in zip(np.rint(radar_uv).astype(int), colours(radar_depth)):
        cv2.circle(img, (int(u), int(v)), 6, (0, 0, 0), 3, lineType=cv2.LINE_AA)
        cv2.circle(img, (int(u), int(v)), 6, tuple(int(x) for x in col), 2, lineType=cv2.LINE_AA)
    text = (f"{frame.frame_id}  LiDAR: dots ({int((lidar_map > 0).sum())})  radar: rings ({len(radar_depth)})  "
            f"colour: depth {OVERLAY_MIN_DEPTH:g}-{OVERLAY_MAX_DEPTH:g} m (red near, blue far)")
    cv2.putText(img, text, (10, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 0), 4, cv2.LINE_AA)
    cv2.putText(img, text, (10, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2, cv2.LINE_AA)
    return draw_colour_bar(img, OVERLAY_MIN_DEPTH, OVERLAY_MAX_DEPTH, bgr=True)


def _range(a) -> list:
    import numpy as np

    return [float(np.min(a)), float(np.median(a)), float(np.max(a))] if len(a) else [None, None, None]


def inspect_frame(frame, consistency: bool = False, window=None, occlusion_filter: bool = False) -> tuple[dict, tuple]:
    """Statistics of one frame; returns (row dict, (radar_uv, radar_depth, lidar_map, agreement or None))."""
    import numpy as np

    from ..geometry import lidar_depth_map, project_to_image
    from ..metrics import AGREEMENT_WINDOW, radar_lidar_agreement

    p = project_to_image(frame.radar_xyz, frame.T_cam_radar, frame.camera)
    lidar = lidar_depth_map(frame, occlusion_filter=occlusion_filter)
    ld = lidar[lidar > 0]
    row = {"frame_id": frame.frame_id, "radar_total": frame.num_radar, "radar_in_image": len(p),
           "lidar_in_image": int(ld.size), "radar_depth_min_med_max": _range(p.depth),
           "lidar_depth_min_med_max": _range(ld)}
    agr = None
    if consistency:
        agr = radar_lidar_agreement(p.uv, p.depth, lidar, tuple(window or AGREEMENT_WINDOW))
        n = agr["n_with_lidar"]
        row.update({"radar_with_lidar": n,
                    "share_within_some": float(agr["within_some"].mean()) if n else None,
                    "share_within_most": float(agr["within_most"].mean()) if n else None,
                    "median_abs_err_m": float(np.median(agr["abs_err"])) if n else None})
    return row, (p.uv, p.depth, lidar, agr)


def summarize(rows: list[dict], agreements: list[dict]) -> dict:
    """Mean / min / max of per-frame counts; pooled agreement over every radar point with LiDAR in its window."""
    import numpy as np

    s: dict = {"frames": len(rows)}
    for key in ("radar_total", "radar_in_image", "lidar_in_image"):
        v = np.array([r[key] for r in rows], float)
        s[key] = {"mean": float(v.mean()), "min": int(v.min()), "max": int(v.max())} if len(v) else None
    for key, i in (("radar_depth_range", "radar_depth_min_med_max"), ("lidar_depth_range", "lidar_depth_min_med_max")):
        lo = [r[i][0] for r in rows if r[i][0] is not None]
        hi = [r[i][2] for r in rows if r[i][2] is not None]
        s[key] = [min(lo), max(hi)] if lo else None
    if agreements:
        n_in = sum(a["n_radar"] for a in agreements)
        n_with = sum(a["n_with_lidar"] for a in agreements)
        some = np.concatenate([a["within_some"] for a in agreements])
        most = np.concatenate([a["within_most"] for a in agreements])
        err = np.concatenate([a["abs_err"] for a in agreements])
        s["agreement"] = {
            "radar_in_image": int(n_in), "radar_with_lidar": int(n_with),
            "share_with_lidar": n_with / n_in if n_in else None,
            "share_within_some": float(some.mean()) if n_with else None,
            "share_within_most": float(most.mean()) if n_with else None,
            "median_abs_err_m": float(np.median(err)) if n_with else None,
            "p90_abs_err_m": float(np.percentile(err, 90)) if n_with else None,
            "by_radar_depth": _by_depth(agreements),
            "per_frame_share_within_some_mean": float(np.mean([r["share_within_some"] for r in rows
                                                               if r.get("share_within_some") is not None])),
        }
    return s


#: radar depth bins (m) of the agreement breakdown
DEPTH_BINS = ((0.0, 20.0), (20.0, 40.0), (40.0, 60.0), (60.0, float("inf")))


def _by_depth(agreements: list[dict]) -> list[dict]:
    """Pooled agreement per radar depth bin."""
    import numpy as np

    d = np.concatenate([a["depth"] for a in agreements])
    some = np.concatenate([a["within_some"] for a in agreements])
    most = np.concatenate([a["within_most"] for a in agreements])
    err = np.concatenate([a["abs_err"] for a in agreements])
    out = []
    for lo, hi in DEPTH_BINS:
        m = (d >= lo) & (d < hi)
        n = int(m.sum())
        out.append({"radar_depth_m": [lo, hi if np.isfinite(hi) else None], "radar_with_lidar": n,
                    "share_within_some": float(some[m].mean()) if n else None,
                    "share_within_most": float(most[m].mean()) if n else None,
                    "median_abs_err_m": float(np.median(err[m])) if n else None})
    return out


def _fmt(v, nd=1):
    return "-" if v is None else (f"{v:.{nd}f}" if isinstance(v, float) else str(v))


def main(args) -> int:
    import cv2

    from ..datasets import open_dataset
    from ..metrics import AGREEMENT_WINDOW
    from ..recalibration.config import LabelConfig
    from ..recalibration.labels import lidar_spacing
    from .options import dataset_kwargs

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    ds = open_dataset(args.dataset, args.root, split=args.split, **dataset_kwargs(args))
    if args.frames:
        ds = ds.subset(args.frames)
    if args.limit is not None:
        ds = ds.subset(ds.ids[: args.limit])
    if args.radar_stats:
        return _radar_stats(ds, args)
    window = tuple(args.window) if args.window else AGREEMENT_WINDOW
    out = Path(args.overlay_out) if args.overlay_out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)

    rows, agreements, lidar_maps = [], [], []
    if not args.quiet:
        head = f"{'frame':>10} {'radar':>6} {'r_img':>6} {'lidar':>6} {'radar d min/med/max':>22} " \
               f"{'lidar d min/med/max':>22}"
        if args.consistency:
            head += f" {'r_w_lid':>7} {'some':>5} {'most':>5} {'med_err':>7}"
        print(head)
    for frame in ds.iter_frames(skip_bad=True):
        row, (uv, depth, lidar, agr) = inspect_frame(frame, args.consistency, window, args.occlusion_filter)
        rows.append(row)
        if len(lidar_maps) < 5 and row["lidar_in_image"]:
            lidar_maps.append(lidar)
        if agr is not None:
            agreements.append(agr)
        if out:
            cv2.imwrite(str(out / f"{frame.frame_id}.png"), draw_overlay(frame, uv, depth, lidar))
        if not args.quiet:
            rd = "/".join(_fmt(x) for x in row["radar_depth_min_med_max"])
            lr = "/".join(_fmt(x) for x in row["lidar_depth_min_med_max"])
            line = f"{row['frame_id']:>10} {row['radar_total']:>6} {row['radar_in_image']:>6} " \
                   f"{row['lidar_in_image']:>6} {rd:>22} {lr:>22}"
            if args.consistency:
                line += f" {row['radar_with_lidar']:>7} {_fmt(row['share_within_some'], 3):>5} " \
                        f"{_fmt(row['share_within_most'], 3):>5} {_fmt(row['median_abs_err_m'], 2):>7}"
            print(line)
    summary = summarize(rows, agreements)
    summary["skipped"] = [{"frame_id": f, "reason": r} for f, r in ds.skipped]
    if args.consistency:
        summary["window_wh_px"] = list(window)
        summary["tau"] = "max(0.5 m, 0.05 * radar depth)"
    summary["occlusion_filter"] = bool(args.occlusion_filter)
    if lidar_maps:  # what `racalnet train --labels auto` would choose (LabelConfig.for_lidar_spacing)
        spacing = lidar_spacing(lidar_maps)
        summary["lidar_spacing_px"] = {"rows": spacing[0], "cols": spacing[1], "frames": len(lidar_maps)}
        summary["auto_labels"] = LabelConfig.for_lidar_spacing(*spacing).to_dict()
    print(f"\n{args.dataset} at {args.root}: {summary['frames']} frame(s), {len(ds.skipped)} skipped")
    for key in ("radar_total", "radar_in_image", "lidar_in_image"):
        v = summary[key]
        if v:
            print(f"  {key:<16} mean {v['mean']:.1f}  min {v['min']}  max {v['max']}")
    print(f"  radar depth range [m] {summary['radar_depth_range']}  LiDAR depth range [m] "
          f"{summary['lidar_depth_range']}")
    if "auto_labels" in summary:
        sp, lab = summary["lidar_spacing_px"], summary["auto_labels"]
        print(f"  LiDAR in the image: rows {sp['rows']:g} px apart, returns {sp['cols']:g} px apart along a row "
              f"(first {sp['frames']} frame(s)) -> `train --labels auto`: N(p) {lab['conf_window'][0]}x"
              f"{lab['conf_window'][1]}, S(p) {lab['search_window'][0]}x{lab['search_window'][1]}, "
              f"n_min {lab['n_min']}")
    if "agreement" in summary:
        a = summary["agreement"]
        print(f"  radar vs LiDAR, window {window[0]}x{window[1]} px, tau = max(0.5 m, 0.05 d):")
        print(f"    radar points with LiDAR in window: {a['radar_with_lidar']} of {a['radar_in_image']} "
              f"({_fmt(a['share_with_lidar'], 3)})")
        print(f"    within tau of some LiDAR there: {_fmt(a['share_within_some'], 3)}   of most (>50%): "
              f"{_fmt(a['share_within_most'], 3)}")
        print(f"    |depth error| to nearest-in-depth LiDAR: median {_fmt(a['median_abs_err_m'], 3)} m, "
              f"90th percentile {_fmt(a['p90_abs_err_m'], 3)} m")
        for b in a["by_radar_depth"]:
            lo, hi = b["radar_depth_m"]
            bin_name = f"{lo:g}-{hi:g} m" if hi is not None else f">= {lo:g} m"
            print(f"    radar depth {bin_name}: {b['radar_with_lidar']} with LiDAR, within tau of some "
                  f"{_fmt(b['share_within_some'], 3)}, of most {_fmt(b['share_within_most'], 3)}, "
                  f"median |err| {_fmt(b['median_abs_err_m'], 2)} m")
    if ds.skipped:
        for f, r in ds.skipped:
            print(f"  skipped {f}: {r}")
    if args.json:
        from ..summary import write_json

        write_json(args.json, {"frames": rows, "summary": summary}, indent=1)
    if out:
        print(f"  overlays written to {out}/")
    return 0 if rows else 1


def _radar_stats(ds, args) -> int:
    """`--radar-stats`: radar_stats.measure_dataset over the frames, then write_report (and the comparison)."""
    from ..datasets.radar_stats import RadarStatsConfig, measure_dataset, write_report

    reference = None
    if args.compare_to:
        try:
            reference = json.loads(Path(args.compare_to).read_text())
        except (OSError, ValueError) as exc:
            print(f"error: {args.compare_to}: cannot read a radar-stats JSON ({exc})")
            return 2
    cfg = RadarStatsConfig(window=tuple(args.window)) if args.window else RadarStatsConfig()
    progress = None if args.quiet else (lambda fid: print(f"  measured {fid}", flush=True))
    summary, _ = measure_dataset(ds, cfg, progress=progress)
    if not summary["frames"]:
        print("error: no frame could be loaded")
        return 1
    ref_name = Path(args.compare_to).stem if args.compare_to else "reference"
    rows = write_report(summary, Path(args.radar_stats), args.dataset, reference, ref_name)
    print(f"{args.dataset}: radar statistics of {summary['frames']} frame(s) written to {args.radar_stats} and "
          f"{Path(args.radar_stats).with_suffix('.md')}")
    for f in summary["skipped"]:
        print(f"  skipped {f['frame_id']}: {f['reason']}")
    if rows is not None:
        failed = [r["statistic"] for r in rows if r["passed"] is False]
        print(f"  against {ref_name}: {sum(r['passed'] is True for r in rows)} of {len(rows)} checks pass"
              + (f"; failing: {'; '.join(failed)}" if failed else ""))
    return 0
