"""`racalnet infer`: dense metric depth for your own images + radar in one command, any resolution.

Input format (documented in docs/metric_depth.md):
  --images DIR   *.png / *.jpg / *.jpeg, any resolution (RGB or grey).
  --radar DIR    one file per image with the same stem: <stem>.npy (N x C float), <stem>.csv (comma-separated) or
                 <stem>.txt (whitespace-separated); columns x y z [doppler power] in the radar frame (metres, m/s,
                 sensor units). A text file may start with a header line naming the columns (x,y,z,doppler,power;
                 aliases v_r/velocity/vel -> doppler, mag/rcs/snr/intensity -> power); '#' lines are comments.
  --calib FILE   JSON or YAML with
                   K: 3x3 intrinsics (nested or 9 numbers, row-major), pixels;
                   dist: OpenCV distortion coefficients (optional, default none);
                   T_cam_radar: 4x4 radar -> camera optical frame (x right, y down, z forward), row-major, metres;
                   width, height: (optional) the image size K belongs to; images of another size use K scaled to
                   their size (so one calibration serves resized images).
Outputs in --out: depth/<stem>.png (uint16, metres x 256, 0 = invalid, the image's resolution),
anchors/<stem>.npy (float32 N x 4: u, v, depth, confidence of the kept anchors), figures/<stem>.png, summary.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import UsageError

HELP = "dense metric depth for your own images + radar files + a calibration file (writes depth PNGs and figures)"

IMAGE_EXTS = (".png", ".jpg", ".jpeg")
RADAR_EXTS = (".npy", ".csv", ".txt")
ALIASES = {"x": "x", "y": "y", "z": "z", "doppler": "doppler", "v_r": "doppler", "vr": "doppler",
           "velocity": "doppler", "vel": "doppler", "power": "power", "mag": "power", "rcs": "power", "snr": "power",
           "intensity": "power"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    from .options import add_alias, add_pipeline_options

    p.add_argument("--images", required=True, help="folder of images (png/jpg)")
    p.add_argument("--radar", required=True, help="folder of radar files matched by stem (.npy/.csv/.txt)")
    p.add_argument("--calib", required=True, help="calibration JSON/YAML (K, dist, T_cam_radar, [width, height])")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--no-figures", action="store_true", help="skip the figures")
    add_pipeline_options(p, device="auto", prior="depth-anything-v2")
    add_alias(p, "--no-recalibration", "recalibration.enabled", const=False, help="use the raw radar projections")
    add_alias(p, "--fp16", "prior.fp16", const=True, help="half-precision prior network on CUDA")


def _matrix(calib: dict, key: str, shape: tuple[int, int], path: Path):
    import numpy as np

    if key not in calib:
        raise UsageError(f"{path}: missing {key!r}")
    try:
        m = np.asarray(calib[key], dtype=np.float64).reshape(shape)
    except (TypeError, ValueError):
        raise UsageError(f"{path}: {key} must be {shape[0]}x{shape[1]} numbers "
                         f"(nested or flat row-major)") from None
    return m


def read_calibration(path: Path) -> dict:
    """{"K", "dist", "T_cam_radar", "size" (w, h) or None} from JSON or YAML."""
    import numpy as np
    import yaml

    try:
        text = path.read_text()
        calib = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise UsageError(f"cannot read calibration {path}: {exc}") from None
    if not isinstance(calib, dict):
        raise UsageError(f"{path}: expected a mapping with K, T_cam_radar [, dist, width, height]")
    size = None
    if "width" in calib or "height" in calib:
        try:
            size = (int(calib["width"]), int(calib["height"]))
        except (KeyError, TypeError, ValueError):
            raise UsageError(f"{path}: width and height must both be integers") from None
    return {"K": _matrix(calib, "K", (3, 3), path), "T_cam_radar": _matrix(calib, "T_cam_radar", (4, 4), path),
            "dist": np.asarray(calib.get("dist") or [], np.float64).reshape(-1), "size": size}


def read_radar(path: Path):
    """(N x C float32, field names) from .npy / .csv / .txt; columns x y z [doppler power] or named by a header."""
    import numpy as np

    fields = None
    try:
        if path.suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        else:
            delim = "," if path.suffix == ".csv" else None
            lines = [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
            if lines:
                head = [t.strip().lower() for t in (lines[0].split(delim) if delim else lines[0].split())]
                try:
                    [float(t) for t in head]
                except ValueError:  # a header line
                    fields = head
                    lines = lines[1:]
            arr = np.array([[float(t) for t in (ln.split(delim) if delim else ln.split())] for ln in lines],
                           dtype=np.float64)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read radar file {path}: {exc}") from None
    arr = np.asarray(arr, dtype=np.float32)
    if arr.size == 0:
        return np.zeros((0, 3), np.float32), ("x", "y", "z")
    if arr.ndim != 2 or arr.shape[1] < 3:
        raise UsageError(f"{path}: expected N x >=3 columns (x y z [doppler power]), got {arr.shape}")
    if fields is not None:
        names = [ALIASES.get(f) for f in fields]
        if len(names) != arr.shape[1] or names[:3] != ["x", "y", "z"]:
            raise UsageError(f"{path}: header {fields} must start with x y z and match the columns")
        keep = [i for i, n in enumerate(names) if n is not None]
        return arr[:, keep], tuple(names[i] for i in keep)
    names = ("x", "y", "z", "doppler", "power")[:min(arr.shape[1], 5)]
    return arr[:, :len(names)], names


def pairs(images: Path, radar: Path) -> list[tuple[Path, Path]]:
    if not images.is_dir():
        raise UsageError(f"--images {images} is not a folder")
    if not radar.is_dir():
        raise UsageError(f"--radar {radar} is not a folder")
    out, missing = [], []
    for img in sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_EXTS):
        found = [radar / f"{img.stem}{e}" for e in RADAR_EXTS if (radar / f"{img.stem}{e}").is_file()]
        (out.append((img, found[0])) if found else missing.append(img.name))
    if missing:
        print(f"racalnet infer: no radar file for {len(missing)} image(s), skipped: {missing[:5]}", file=sys.stderr)
    if not out:
        raise UsageError(f"no image in {images} has a radar file with the same stem in {radar} "
                         f"(extensions {', '.join(RADAR_EXTS)})")
    return out


def load_frame(img_path: Path, radar_path: Path, calib: dict):
    import cv2

    from ..frame import CameraModel, Frame

    bgr = cv2.imread(str(img_path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise UsageError(f"cannot decode image {img_path}")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    h, w = rgb.shape[:2]
    K = calib["K"].copy()
    if calib["size"] is not None and calib["size"] != (w, h):
        K[0] *= w / calib["size"][0]
        K[1] *= h / calib["size"][1]
    radar, fields = read_radar(radar_path)
    return Frame(rgb, CameraModel(K, w, h, calib["dist"]), radar, calib["T_cam_radar"], radar_fields=fields,
                 frame_id=img_path.stem)


def main(args: argparse.Namespace) -> int:
    from ..metric_depth.output import figure, write_anchors, write_depth_png, write_figure
    from ..pipeline import Pipeline
    from .options import setup

    cfg = setup(args)
    calib = read_calibration(Path(args.calib))
    todo = pairs(Path(args.images), Path(args.radar))
    pipe = Pipeline.from_config(cfg)
    out = Path(args.out)
    summary = {"calib": str(args.calib), "prior": cfg.prior.spec(), "recalibration": cfg.recalibration.enabled,
               "checkpoint": cfg.recalibration.checkpoint, "frames": {}}
    for img_path, radar_path in todo:
        frame = load_frame(img_path, radar_path, calib)
        res = pipe.run(frame)
        write_depth_png(out / "depth" / f"{frame.frame_id}.png", res.depth)
        write_anchors(out / "anchors" / f"{frame.frame_id}.npy", res.anchors)
        if not args.no_figures:
            write_figure(out / "figures" / f"{frame.frame_id}.png",
                         figure(frame, res.depth, res.anchors, None, cfg.align.min_depth, cfg.align.max_depth))
        d = res.diagnostics
        summary["frames"][frame.frame_id] = {k: d[k] for k in ("scale", "shift", "anchors_total", "anchors_kept",
                                                               "anchors_used", "fallbacks", "times_ms")}
        fb = f" fallbacks: {', '.join(d['fallbacks'])}" if d["fallbacks"] else ""
        print(f"{frame.frame_id}: {frame.width}x{frame.height}, anchors {d['anchors_kept']}/{d['anchors_total']} kept, "
              f"{d['anchors_used']} used, {d['times_ms']['total']:.0f} ms{fb}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=True))
    print(f"wrote {len(todo)} depth map(s) to {out / 'depth'}")
    return 0
