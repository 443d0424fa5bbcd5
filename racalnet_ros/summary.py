"""The summaries commands write (infer's summary.json, evaluate's results.json, evaluate-bag's and demo's
metrics.json, bench's JSON) are standard JSON: NaN and infinities become null (Python's json would write the
non-standard `NaN`), numpy scalars and arrays become numbers and lists, paths become strings."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np


def to_json(x: Any) -> Any:
    """`x` with NaN / inf -> None, numpy -> Python, tuples -> lists, Paths -> str (recursively)."""
    if isinstance(x, dict):
        return {str(k): to_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, set)):
        return [to_json(v) for v in x]
    if isinstance(x, np.ndarray):
        return to_json(x.tolist())
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(float(x)) else None
    if isinstance(x, Path):
        return str(x)
    return x


def dumps(obj: Any, indent: int = 2) -> str:
    """Standard JSON text of `obj` (see to_json); ValueError if something still is not JSON."""
    return json.dumps(to_json(obj), indent=indent, allow_nan=False)


def write_json(path: str | Path, obj: Any, indent: int = 2) -> Path:
    """Write `obj` as standard JSON (parent folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps(obj, indent) + "\n")
    return path


__all__ = ["dumps", "to_json", "write_json"]
