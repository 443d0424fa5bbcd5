"""`racalnet infer`: dense metric depth for your own images + radar in one command, any resolution.

Input format (documented in docs/metric_depth.md):
  --images DIR   *.png / *.jpg / *.jpeg, any resolution (RGB or grey).
  --radar DIR    one file per image with the same stem: <stem>.npy (N x C float), <stem>.csv (comma-separated) or
                 <stem>.txt (whitespace-separated); columns x y z [doppler power] in the radar frame (metres, m/s,
                 sensor units). A text file may start with a header line naming the columns (x,y,z,doppler,power;
                 aliases v_r/velocity/vel -> doppler, mag/rcs/snr/intensity -> power); '#' lines are comments.
  --calib FILE   one of three layouts, told apart by their keys:
                 - racalnet's own JSON or YAML:
                     K: 3x3 intrinsics (nested or 9 numbers, row-major), pixels;
                     dist: OpenCV distortion coefficients (optional, default none);
                     T_cam_radar: 4x4 radar -> camera optical frame (x right, y down, z forward), row-major, metres;
                     width, height: (optional) the image size K belongs to;
                 - an Astyx HiRes2019 calibration JSON (calibration/NNNNNN.json: sensors[].calib_data.T_to_ref_COS
                   and camera_front's K, read by datasets/astyx.py; K belongs to 2048 x 618);
                 - a ROS CameraInfo YAML (camera_calibration_parsers' format: image_width, image_height,
                   camera_matrix, distortion_model, distortion_coefficients), which carries no extrinsics: give
                   them with --extrinsics FILE or a T_cam_radar / xyz_rpy key in the same file.
                 Images of another size than the calibration's use K scaled to their size.
  --extrinsics FILE  (optional) YAML/JSON with T_cam_radar (16 numbers or 4x4) or xyz_rpy (x y z m, roll pitch yaw
                 rad of the radar in the camera optical frame), plain or as the node's extrinsics.* parameters (a
                 racalnet_node parameter file works); it wins over extrinsics in --calib.
Outputs in --out: depth/<stem>.png (uint16, metres x 256, 0 = invalid, the image's resolution),
anchors/<stem>.npy (float32 N x 4: u, v, depth, confidence of the kept anchors), figures/<stem>.png, summary.json
(standard JSON: the resolved checkpoint and its provenance, per-frame diagnostics, the frames that could not be used).

Errors: a bad calibration, a checkpoint or prior that cannot be loaded, an --out that is a file stop the command
before any frame (one line, exit code 2). A frame that cannot be used (empty or header-only radar file, truncated or
undecodable image) is named on stderr and in summary.json ("bad_frames"), the other frames are written, and the exit
code is 1 unless --skip-bad is given.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional

from ..errors import RacalnetError, UsageError

HELP = "dense metric depth for your own images + radar files + a calibration file (writes depth PNGs and figures)"

IMAGE_EXTS = (".png", ".jpg", ".jpeg")
RADAR_EXTS = (".npy", ".csv", ".txt")
ALIASES = {"x": "x", "y": "y", "z": "z", "doppler": "doppler", "v_r": "doppler", "vr": "doppler",
           "velocity": "doppler", "vel": "doppler", "power": "power", "mag": "power", "rcs": "power", "snr": "power",
           "intensity": "power"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    from .options import add_alias, add_pipeline_options, add_skip_bad_option

    p.add_argument("--images", required=True, help="folder of images (png/jpg)")
    p.add_argument("--radar", required=True, help="folder of radar files matched by stem (.npy/.csv/.txt)")
    p.add_argument("--calib", required=True,
                   help="calibration: racalnet JSON/YAML (K, dist, T_cam_radar, [width, height]), an Astyx "
                        "calibration JSON, or a ROS CameraInfo YAML (+ --extrinsics)")
    p.add_argument("--extrinsics", default=None, metavar="FILE",
                   help="T_cam_radar (16 numbers) or xyz_rpy (6) in a YAML/JSON file, or a racalnet_node parameter "
                        "file with extrinsics.*; wins over extrinsics in --calib")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--no-figures", action="store_true", help="skip the figures")
    add_skip_bad_option(p)
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


def _load_mapping(path: Path, what: str) -> dict:
    import yaml

    if not path.is_file():
        raise UsageError(f"{what} {path}: no such file" if not path.exists() else f"{what} {path}: is not a file")
    try:
        text = path.read_text()
        doc = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"cannot read {what} {path}: {first}") from None
    if not isinstance(doc, dict):
        raise UsageError(f"{path}: expected a mapping ({what})")
    return doc


def read_extrinsics(doc: dict, path: Path):
    """T_cam_radar (4x4) from T_cam_radar / xyz_rpy keys, plain or as the node's extrinsics.* parameters (read and
    checked with the node's rules, ros/params.py); None when `doc` has neither."""
    import numpy as np

    from ..config import ConfigError, with_values
    from ..ros.params import NodeConfig

    flat = dict(doc)
    for block in ("extrinsics",):  # nested node-style sections
        if isinstance(flat.get(block), dict):
            flat.update({f"{block}.{k}": v for k, v in flat.pop(block).items()})
    values = {}
    for key in ("T_cam_radar", "xyz_rpy"):
        for name in (key, f"extrinsics.{key}"):
            if name in flat:
                v = flat[name]
                values[f"extrinsics.{key}"] = np.asarray(v, dtype=object).reshape(-1).tolist() \
                    if isinstance(v, (list, tuple)) else v
    if not values:
        return None
    try:
        node_cfg = with_values(NodeConfig(), values)
    except ConfigError as exc:
        raise UsageError(f"{path}: {exc}") from None
    errors = [e for e in node_cfg.check() if e.startswith("extrinsics")]
    if errors:
        raise UsageError(f"{path}: {errors[0]}")
    return node_cfg.transform()


def _camera_info_yaml(doc: dict, path: Path):
    """(K, dist, distortion model, (width, height)) of a camera_calibration_parsers YAML, checked by the one
    CameraInfo decoder (ros/convert.py: camera_info_to_model)."""
    from types import SimpleNamespace

    import numpy as np

    from ..ros.convert import ConversionError, camera_info_to_model

    def data(key: str, n: Optional[int]) -> list:
        block = doc.get(key)
        values = block.get("data") if isinstance(block, dict) else block
        try:
            arr = np.asarray(values if values is not None else [], dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise UsageError(f"{path}: {key}.data must be numbers") from None
        if n is not None and arr.size != n:
            raise UsageError(f"{path}: {key}.data must hold {n} numbers, got {arr.size}")
        return arr.tolist()

    try:
        width, height = int(doc["image_width"]), int(doc["image_height"])
    except (KeyError, TypeError, ValueError):
        raise UsageError(f"{path}: image_width and image_height must both be integers") from None
    msg = SimpleNamespace(k=data("camera_matrix", 9), d=data("distortion_coefficients", None),
                          distortion_model=str(doc.get("distortion_model", "plumb_bob")), width=width, height=height)
    try:
        cam = camera_info_to_model(msg, name=str(path))
    except (ConversionError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    return cam.K, cam.dist, (width, height)


def read_calibration(path: Path, extrinsics: Optional[Path] = None) -> dict:
    """{"K", "dist", "T_cam_radar", "size" (w, h) or None, "format"} from racalnet's own JSON / YAML, an Astyx
    calibration JSON or a ROS CameraInfo YAML (see the module docstring); `extrinsics`: a file whose T_cam_radar /
    xyz_rpy wins. UsageError (or the Astyx reader's DatasetError) naming the file and the problem."""
    import numpy as np

    path = Path(path)
    doc = _load_mapping(path, "calibration")
    T = None
    if "sensors" in doc:  # Astyx HiRes2019 calibration/NNNNNN.json
        from ..datasets.astyx import IMAGE_SIZE
        from ..datasets.astyx import read_calibration as read_astyx

        cal = read_astyx(path)
        try:
            T = np.linalg.inv(cal["camera_front"]["T_to_ref"]) @ cal["radar_6455"]["T_to_ref"]
        except np.linalg.LinAlgError:
            raise UsageError(f"{path}: camera_front.T_to_ref_COS is singular") from None
        out = {"K": cal["camera_front"]["K"], "dist": np.zeros(0), "size": IMAGE_SIZE, "format": "astyx"}
    elif "camera_matrix" in doc:  # ROS CameraInfo YAML
        K, dist, size = _camera_info_yaml(doc, path)
        T = read_extrinsics(doc, path)
        out = {"K": K, "dist": dist, "size": size, "format": "camera_info"}
    else:
        size = None
        if "width" in doc or "height" in doc:
            try:
                size = (int(doc["width"]), int(doc["height"]))
            except (KeyError, TypeError, ValueError):
                raise UsageError(f"{path}: width and height must both be integers") from None
        T = _matrix(doc, "T_cam_radar", (4, 4), path) if "T_cam_radar" in doc or extrinsics is None else None
        out = {"K": _matrix(doc, "K", (3, 3), path), "dist": np.asarray(doc.get("dist") or [], np.float64).reshape(-1),
               "size": size, "format": "racalnet"}
    if extrinsics is not None:
        from ..config import read_yaml  # plain or ROS parameter layout, JSON included

        ext_path = Path(extrinsics)
        if not ext_path.is_file():
            raise UsageError(f"--extrinsics {ext_path}: no such file")
        T = read_extrinsics(read_yaml(ext_path)[0], ext_path)
        if T is None:
            raise UsageError(f"{ext_path}: no T_cam_radar or xyz_rpy (plain or as extrinsics.*)")
    if T is None:
        raise UsageError(f"{path}: a CameraInfo YAML carries no extrinsics; give --extrinsics FILE (T_cam_radar: 16 "
                         "numbers, or xyz_rpy: x y z roll pitch yaw) or add T_cam_radar to it")
    from ..frame import CameraModel, FrameError, _check_transform

    try:
        _check_transform("T_cam_radar", np.asarray(T, np.float64))
        w, h = out["size"] or (max(2.0 * float(out["K"][0, 2]), 1.0), max(2.0 * float(out["K"][1, 2]), 1.0))
        CameraModel(out["K"], max(int(round(w)), 1), max(int(round(h)), 1), out["dist"])
    except FrameError as exc:
        raise UsageError(f"{path}: {exc}") from None
    out["T_cam_radar"] = np.asarray(T, np.float64)
    return out


def read_radar(path: Path):
    """(N x C float32, field names) from .npy / .csv / .txt; columns x y z [doppler power] or named by a header.
    DatasetError naming the file when it cannot be read or holds no point (empty or header-only)."""
    import numpy as np

    from ..datasets.base import DatasetError

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
    except (OSError, UnicodeDecodeError, ValueError, EOFError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatasetError(f"{path}: cannot read radar file ({first})") from None
    arr = np.asarray(arr, dtype=np.float32)
    if arr.size == 0:
        raise DatasetError(f"{path}: no radar points (empty{' or header-only' if path.suffix != '.npy' else ''} "
                           "file)")
    if arr.ndim != 2 or arr.shape[1] < 3:
        raise DatasetError(f"{path}: expected N x >=3 columns (x y z [doppler power]), got {arr.shape}")
    if fields is not None:
        names = [ALIASES.get(f) for f in fields]
        if len(names) != arr.shape[1] or names[:3] != ["x", "y", "z"]:
            raise DatasetError(f"{path}: header {fields} must start with x y z and match the columns")
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
    """Frame of one image + radar file; DatasetError / FrameError naming the file when it cannot be used."""
    from ..datasets.base import read_image
    from ..frame import CameraModel, Frame

    rgb = read_image(img_path)  # names a missing, truncated or undecodable file
    h, w = rgb.shape[:2]
    K = calib["K"].copy()
    if calib["size"] is not None and tuple(calib["size"]) != (w, h):
        K[0] *= w / calib["size"][0]
        K[1] *= h / calib["size"][1]
    radar, fields = read_radar(radar_path)
    return Frame(rgb, CameraModel(K, w, h, calib["dist"]), radar, calib["T_cam_radar"], radar_fields=fields,
                 frame_id=img_path.stem)


def main(args: argparse.Namespace) -> int:
    from ..metric_depth.output import figure, write_anchors, write_depth_png, write_figure
    from ..pipeline import Pipeline
    from ..recalibration.features import RadarColumnsError
    from ..summary import write_json
    from .options import bad_frames_exit, check_output_folder, setup

    # everything that can be checked is checked before the first frame
    calib = read_calibration(Path(args.calib), Path(args.extrinsics) if args.extrinsics else None)
    todo = pairs(Path(args.images), Path(args.radar))
    out = check_output_folder(args.out)
    cfg = setup(args)  # the prior's model located here (one line in seconds when it is missing)
    pipe = Pipeline.from_config(cfg)
    warning = pipe.synthetic_on_real_warning()  # your own data is a real sensor's
    if warning:
        print(f"racalnet infer: {warning}", file=sys.stderr, flush=True)
    summary = {"calib": str(args.calib), "calib_format": calib["format"], "extrinsics": args.extrinsics,
               "prior": cfg.prior.spec(), "recalibration": cfg.recalibration.enabled, **pipe.checkpoint_info(),
               "frames": {}, "bad_frames": {}, "n_inputs": len(todo), "n_written": 0, "complete": False}
    try:
        for img_path, radar_path in todo:
            try:
                frame = load_frame(img_path, radar_path, calib)
                res = pipe.run(frame)
            except RadarColumnsError as exc:  # the checkpoint and the radar files do not fit: stop, naming both
                raise RadarColumnsError(f"{radar_path}: {exc}") from None
            except RacalnetError as exc:  # this frame cannot be used; the next one may be fine
                summary["bad_frames"][img_path.stem] = " ".join(str(exc).split())
                print(f"racalnet infer: frame {img_path.stem}: {summary['bad_frames'][img_path.stem]}",
                      file=sys.stderr, flush=True)
                continue
            write_depth_png(out / "depth" / f"{frame.frame_id}.png", res.depth)
            write_anchors(out / "anchors" / f"{frame.frame_id}.npy", res.anchors)
            if not args.no_figures:
                write_figure(out / "figures" / f"{frame.frame_id}.png",
                             figure(frame, res.depth, res.anchors, None, cfg.align.min_depth, cfg.align.max_depth))
            d = res.diagnostics
            summary["frames"][frame.frame_id] = {k: d[k] for k in ("scale", "shift", "anchors_total", "anchors_kept",
                                                                   "anchors_used", "fallbacks", "times_ms")}
            summary["n_written"] += 1
            fb = f" fallbacks: {', '.join(d['fallbacks'])}" if d["fallbacks"] else ""
            print(f"{frame.frame_id}: {frame.width}x{frame.height}, anchors {d['anchors_kept']}/{d['anchors_total']} "
                  f"kept, {d['anchors_used']} used, {d['times_ms']['total']:.0f} ms{fb}")
        summary["complete"] = True
    finally:  # also when interrupted: what was written is listed
        write_json(out / "summary.json", summary)
    print(f"wrote {summary['n_written']} depth map(s) to {out / 'depth'}")
    return bad_frames_exit("infer", list(summary["bad_frames"].items()), len(todo), args.skip_bad)
