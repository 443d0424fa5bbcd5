"""Where the Depth Anything V2 weights come from: a local folder, the local Hugging Face cache, or (on a connected
machine only) one download into that cache. Decided before torch or transformers are imported, so that an offline
robot without the weights stops in seconds with one line instead of minutes of HTTP retries.

    locate_depth_anything("depth-anything/Depth-Anything-V2-Small-hf") -> Path of a folder holding config.json,
                                                                          preprocessor_config.json and the weights
Order:
  1. `model` is an existing folder: used as is (its files are checked).
  2. `model` is a Hugging Face id whose files are in the local cache (HF_HOME / HF_HUB_CACHE, `hf download` puts them
     there): the cached snapshot folder. No network access.
  3. Not cached, and HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set: PriorUnavailable at once.
  4. Not cached and online: ONE request (HEAD of the model's config.json on HF_ENDPOINT, at most PROBE_TIMEOUT_S, or
     HF_HUB_ETAG_TIMEOUT when that is smaller, DNS included) decides whether the Hub answers. No answer:
     PriorUnavailable with the reason; an answer: `huggingface_hub.snapshot_download` fetches the model's files into
     the cache once (its own timeouts HF_HUB_ETAG_TIMEOUT / HF_HUB_DOWNLOAD_TIMEOUT and retries apply from then on:
     the network answered).
Every failure is one PriorUnavailable line naming the model and the alternatives (UNAVAILABLE_HELP).
"""

from __future__ import annotations

import logging
import os
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Optional

from .priors import PriorUnavailable

log = logging.getLogger("racalnet_ros.prior")

#: a model folder needs these two ...
REQUIRED_FILES = ("config.json", "preprocessor_config.json")
#: ... and one of these weight files (sharded safetensors name their shards in the index)
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
#: what a download fetches (no README, no ONNX exports)
DOWNLOAD_PATTERNS = ["config.json", "preprocessor_config.json", "model.safetensors", "model.safetensors.index.json",
                     "model-*.safetensors"]
#: seconds the reachability check may take in all (DNS, connect, first byte)
PROBE_TIMEOUT_S = 5.0

UNAVAILABLE_HELP = ("fetch it once on a connected machine (`hf download {model}`, then copy the Hugging Face cache "
                    "or a folder to this one; docs/metric_depth.md, 'Offline robot'), or use prior.path: <local "
                    "folder> (--prior depth-anything-v2:FOLDER), prior.source: topic, or --prior precomputed:DIR")


def _missing_files(folder: Path) -> list[str]:
    missing = [f for f in REQUIRED_FILES if not (folder / f).is_file()]
    if not any((folder / f).is_file() for f in WEIGHT_FILES):
        missing.append(" or ".join(WEIGHT_FILES))
    return missing


def _is_hub_id(model: str) -> bool:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if model.startswith(("/", "~", ".")) or os.sep != "/" and os.sep in model:
        return False
    try:
        validate_repo_id(model)
    except HFValidationError:
        return False
    return True


def offline() -> bool:
    """HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE set to a true value (read now, not at import)."""
    return any(os.environ.get(k, "").strip().upper() in ("1", "ON", "YES", "TRUE")
               for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def cached_folder(model: str) -> Optional[Path]:
    """The snapshot folder of `model` in the local Hugging Face cache when every needed file is there, else None."""
    from huggingface_hub import try_to_load_from_cache

    found = {}
    for name in REQUIRED_FILES + WEIGHT_FILES:
        path = try_to_load_from_cache(model, name)
        if isinstance(path, str):
            found[name] = Path(path)
    if any(f not in found for f in REQUIRED_FILES) or not any(f in found for f in WEIGHT_FILES):
        return None
    folder = found["config.json"].parent
    return folder if not _missing_files(folder) else None


def probe(model: str, timeout: Optional[float] = None) -> Optional[str]:
    """None when the Hub (HF_ENDPOINT) answers one HEAD request for the model's config.json within `timeout`
    seconds (any HTTP status counts as an answer), else the reason it did not. Runs in a daemon thread so that a
    hanging DNS lookup cannot hold the caller longer than `timeout`."""
    from huggingface_hub import constants

    if timeout is None:
        timeout = min(PROBE_TIMEOUT_S, float(constants.HF_HUB_ETAG_TIMEOUT))
    endpoint = os.environ.get("HF_ENDPOINT", constants.ENDPOINT).rstrip("/")
    url = f"{endpoint}/{model}/resolve/main/config.json"
    result: list[Optional[str]] = []

    def request() -> None:
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout).close()
            result.append(None)
        except urllib.error.HTTPError:  # the server answered (404 / 401 / 5xx are for the download to explain)
            result.append(None)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            result.append(f"{endpoint} cannot be reached ({reason})")

    worker = threading.Thread(target=request, name="hf-probe", daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    if not result:
        return f"{endpoint} did not answer within {timeout:.0f} s"
    return result[0]


def download(model: str) -> Path:
    """Fetch the model's files into the local Hugging Face cache (once); PriorUnavailable naming the model."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        return Path(snapshot_download(model, allow_patterns=DOWNLOAD_PATTERNS))
    except RepositoryNotFoundError:
        raise PriorUnavailable(f"depth-anything-v2: no model {model!r} on the Hugging Face Hub (or it is private); "
                               + UNAVAILABLE_HELP.format(model=model)) from None
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PriorUnavailable(f"depth-anything-v2: downloading {model!r} failed ({first}); "
                               + UNAVAILABLE_HELP.format(model=model)) from None


def locate_depth_anything(model: str, note: Callable[[str], object] = log.warning) -> Path:
    """The local folder holding `model` (a folder, or a Hugging Face id: cached, or downloaded once when online);
    see the module docstring. PriorUnavailable (one line: what is missing, why, the alternatives) otherwise.
    `note` reports a download before it starts."""
    model = str(model).strip()
    folder = Path(model).expanduser()
    if folder.is_dir():
        missing = _missing_files(folder)
        if missing:
            raise PriorUnavailable(f"depth-anything-v2: folder {folder} lacks {', '.join(missing)} (a model folder "
                                   "as saved by transformers' save_pretrained or `hf download --local-dir`)")
        return folder
    if not _is_hub_id(model):
        raise PriorUnavailable(f"depth-anything-v2: folder {folder} does not exist; "
                               + UNAVAILABLE_HELP.format(model="depth-anything/Depth-Anything-V2-Small-hf"))
    cached = cached_folder(model)
    if cached is not None:
        return cached
    from huggingface_hub import constants

    where = f"not a local folder and not in the Hugging Face cache {constants.HF_HUB_CACHE}"
    if offline():
        raise PriorUnavailable(f"depth-anything-v2: {model!r} is {where}, and HF_HUB_OFFLINE is set; "
                               + UNAVAILABLE_HELP.format(model=model))
    reason = probe(model)
    if reason is not None:
        raise PriorUnavailable(f"depth-anything-v2: {model!r} is {where}, and {reason}; "
                               + UNAVAILABLE_HELP.format(model=model))
    note(f"depth-anything-v2: downloading {model!r} into the Hugging Face cache {constants.HF_HUB_CACHE} (once)")
    folder = download(model)
    missing = _missing_files(folder)
    if missing:
        raise PriorUnavailable(f"depth-anything-v2: the download of {model!r} lacks {', '.join(missing)} ({folder})")
    return folder


def check_prior(source: str, path: str = "") -> Optional[Path]:
    """The folder a depth-anything-v2 prior will load (located, downloaded once when online), None for the other
    sources; PriorUnavailable otherwise. What every command calls before importing torch, so that a missing model
    stops it in seconds."""
    if source != "depth-anything-v2":
        return None
    from .priors import DEFAULT_DEPTH_ANYTHING

    return locate_depth_anything(path or DEFAULT_DEPTH_ANYTHING)


__all__ = ["DOWNLOAD_PATTERNS", "check_prior", "PROBE_TIMEOUT_S", "REQUIRED_FILES", "WEIGHT_FILES", "cached_folder", "download",
           "locate_depth_anything", "offline", "probe"]
