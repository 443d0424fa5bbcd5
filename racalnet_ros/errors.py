"""The one error policy: an expected failure (a bad setting, a missing or corrupt file, an unusable message) raises a
`RacalnetError` whose message is one line naming the field or file at fault and the problem.

- `racalnet <command>` prints it as `racalnet <command>: <message>` on stderr and exits with code 2 (the traceback
  only with `--debug`);
- `racalnet_node` stops at start with `[racalnet_node] FATAL: <message>` and exit code 2, or, for a bad frame, logs
  it, counts it and carries on with the next frame.

The domain errors are RacalnetErrors too (and keep their builtin base, so `except ValueError` still catches them):
`FrameError`, `DatasetError`, `CheckpointError`, `PriorError`, `ConfigError`, `BagError`, `ConversionError`,
`TrainError`, and `UsageError` for a command-line argument that cannot work. Anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations


class RacalnetError(Exception):
    """An expected failure; str(error) is the one line shown to the user."""


class UsageError(RacalnetError, ValueError):
    """A command-line argument (or combination) that cannot work, e.g. `--root` missing for a dataset."""


__all__ = ["RacalnetError", "UsageError"]
