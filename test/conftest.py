"""Shared fixtures. Tests read the real Astyx frames from ../shared (never from the repository); when CI=true a
missing data folder is a failure, elsewhere a skip."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

# A suite started in the background by a script (CI runners, `cmd &`) inherits SIGINT *ignored*: POSIX shells do that
# to background jobs, and an ignored signal stays ignored across exec. The tests that press Ctrl-C on a child process
# (replay, model loading) need it delivered as in a terminal: give this process, and so every child, the default.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

REPO_ROOT = Path(__file__).resolve().parents[1]
ASTYX_ROOT = Path(os.environ.get("RACALNET_ASTYX_ROOT", REPO_ROOT.parent / "shared" / "data" / "astyx_hires2019"))


def require_data(path: Path, what: str) -> Path:
    """Return `path` if it exists; otherwise fail under CI=true, skip elsewhere."""
    if path.exists():
        return path
    msg = f"{what} not found at {path}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(msg + " (CI=true: the shared data must be present)")
    pytest.skip(msg)


@pytest.fixture(scope="session")
def astyx_root() -> Path:
    return require_data(ASTYX_ROOT / "dataset.json", "Astyx HiRes2019 subset").parent
