"""The dataset interface: an ordered collection of frame ids that loads `Frame`s, with named splits and an iterator
that can skip bad frames (counting them and warning) instead of stopping."""

from __future__ import annotations

import abc
import logging
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np

from ..errors import RacalnetError
from ..frame import Frame

log = logging.getLogger(__name__)


class DatasetError(RacalnetError, ValueError):
    """A file of a dataset is missing or malformed; the message names the file and the problem."""


class UnknownFrameError(DatasetError, KeyError):
    """A frame id the dataset does not have (a KeyError too, for code that looks ids up)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def load_npy(path: Path, what: str = "file") -> np.ndarray:
    """np.load without pickles; DatasetError naming the file if it is missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: {what} is missing")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DatasetError(f"{path}: cannot read .npy ({exc})") from None


def _check_complete_jpeg(path: Path, data: bytes) -> None:
    """DatasetError naming the file for a truncated or corrupt JPEG. OpenCV's libjpeg decodes a truncated JPEG with a
    grey lower part and only a "Premature end of JPEG file" on stderr, so a JPEG whose data does not end with the
    end-of-image marker is decoded strictly by Pillow first (a JPEG with bytes after the marker passes that way)."""
    if data[:2] != b"\xff\xd8" or data.rstrip(b"\0")[-2:] == b"\xff\xd9":
        return
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
    except (UnidentifiedImageError, SyntaxError):
        raise DatasetError(f"{path}: cannot decode image (corrupt or truncated?)") from None
    except OSError as exc:
        raise DatasetError(f"{path}: truncated or corrupt JPEG ({exc})") from None


def read_image(path: Path, size: tuple[int, int] | None = None, size_source: str = "the calibration's camera"
               ) -> np.ndarray:
    """Image file -> H x W x 3 uint8 RGB; DatasetError naming the file if it is missing, undecodable or (when `size`
    = (width, height) is given) of another size than the calibration's camera."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: file is missing")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not data:
        raise DatasetError(f"{path}: empty file")
    _check_complete_jpeg(path, data)
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DatasetError(f"{path}: cannot decode image (corrupt or truncated?)")
    h, w = bgr.shape[:2]
    if size is not None and (w, h) != tuple(size):
        raise DatasetError(f"{path}: image is {w}x{h} but {size_source} is {size[0]}x{size[1]}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def id_ranges(ids: Sequence) -> str:
    """Frame ids or seeds as compact inclusive ranges, the `parse_ranges` syntax: ["000000", ..., "000079", "000090"]
    -> "000000-000079,000090"; non-numeric ids are listed as they are."""
    out: list[str] = []
    run: list = []

    def flush() -> None:
        if run:
            out.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
            run.clear()

    for i in ids:
        s = str(i)
        if s.isdigit() and run and str(run[-1]).isdigit() and int(s) == int(run[-1]) + 1 \
                and (not isinstance(i, str) or len(s) == len(str(run[-1]))):  # "000099" -> "000100"; 9 -> 10
            run.append(i)
            continue
        flush()
        run.append(i)
    flush()
    return ",".join(out)


class FrameDataset(abc.ABC):
    """Frames of one dataset, addressed by string ids (e.g. "000042").

    Subclasses implement `load(frame_id)` and `split_ids(name)`; everything else is shared.
    """

    #: short dataset name: "astyx", "zju", "synthetic"
    name: str = "dataset"
    #: the sensors the frames come from (recorded in a checkpoint's provenance)
    sensor: str = "unknown sensor"
    #: True for recordings of real sensors, False for generated (synthetic) frames
    real: bool = True

    def __init__(self, ids: Sequence[str]):
        self.ids: list[str] = list(ids)
        self.skipped: list[tuple[str, str]] = []  # (frame_id, reason) of frames skipped by iter_frames(skip_bad=True)

    # -- to implement -----------------------------------------------------------------------------------------
    @abc.abstractmethod
    def load(self, frame_id: str) -> Frame:
        """Load one frame; raise DatasetError (or FrameError) naming the file and the problem."""

    @abc.abstractmethod
    def split_ids(self, name: str) -> list[str]:
        """Frame ids of a named split ("train", "val", "test", "full", ...); KeyError for an unknown split."""

    #: names accepted by split_ids()
    splits: tuple[str, ...] = ()

    def describe(self) -> dict:
        """What these frames are, for a checkpoint's provenance (recalibration/checkpoint.py, PROVENANCE): {"dataset",
        "sensor", "real", "root", "frames" (id ranges), "n_frames"}; subclasses add what identifies their frames
        (synthetic: "seeds")."""
        root = getattr(self, "root", None)
        return {"dataset": self.name, "sensor": self.sensor, "real": bool(self.real),
                "root": str(root) if root else "", "frames": id_ranges(self.ids), "n_frames": len(self.ids)}

    # -- shared -----------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> Frame:
        return self.load(self.ids[i])

    def __iter__(self) -> Iterator[Frame]:
        return self.iter_frames(skip_bad=False)

    def subset(self, ids: Sequence[str]) -> "FrameDataset":
        """A view of this dataset restricted to `ids` (kept in the given order)."""
        missing = [i for i in ids if i not in set(self.ids)]
        if missing:
            raise UnknownFrameError(f"{self.name}: unknown frame id(s) {missing[:5]}"
                                    f"{' ...' if len(missing) > 5 else ''}")
        view = object.__new__(type(self))
        view.__dict__.update(self.__dict__)
        view.ids = list(ids)
        view.skipped = []
        return view

    def split(self, name: str) -> "FrameDataset":
        """The named split as a dataset view (only ids present in this dataset are kept)."""
        present = set(self.ids)
        return self.subset([i for i in self.split_ids(name) if i in present])

    def iter_frames(self, skip_bad: bool = False) -> Iterator[Frame]:
        """Yield frames in order. With skip_bad, a frame that fails to load is skipped, recorded in `self.skipped`
        and logged as a warning; a summary warning with the count is logged at the end."""
        self.skipped = []
        for fid in self.ids:
            try:
                frame = self.load(fid)
            except (DatasetError, ValueError, OSError) as exc:
                if not skip_bad:
                    raise
                self.skipped.append((fid, str(exc)))
                log.warning("%s: skipping frame %s: %s", self.name, fid, exc)
                continue
            yield frame
        if self.skipped:
            log.warning("%s: skipped %d of %d frame(s)", self.name, len(self.skipped), len(self.ids))
