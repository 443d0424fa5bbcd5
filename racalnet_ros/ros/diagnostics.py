"""What racalnet_node reports on /diagnostics, kept apart from the node's wiring: input and output rates, counters
(frames, skipped, errors, sync resets, NaN radar points dropped, fallbacks), the last frame's latencies and anchors,
the worst problem since the previous report, fixed key-values (`pipeline_overlap`; the checkpoint and its
provenance: `checkpoint`, `checkpoint/trained_on`, `checkpoint/real_data`, `checkpoint/warning`), and log throttling
(a replayed bag repeats the same fault every frame).

Thread-safe: the node's executor thread ticks the inputs, its worker threads (stage 1 and stage 2, ros/overlap.py)
record frames and problems, its timer builds the report.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any, Callable, Mapping, Optional, Sequence

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR

#: counters every report carries (plus dropped_busy, the mailbox's)
COUNTERS = ("frames", "skipped", "errors", "sync_resets", "radar_nan_dropped", "fallbacks")


class Rate:
    """Messages per second over a sliding window of wall-clock arrival times."""

    def __init__(self, window: float = 5.0) -> None:
        self.window = window
        self.times: collections.deque = collections.deque()
        self.count = 0

    def tick(self, now: float) -> None:
        self.times.append(now)
        self.count += 1
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self.times and now - self.times[0] > self.window:
            self.times.popleft()

    def hz(self, now: float) -> float:
        self._trim(now)
        if len(self.times) < 2:
            return 0.0
        return (len(self.times) - 1) / max(now - self.times[0], 1e-6)

    def age(self, now: float) -> float:
        return now - self.times[-1] if self.times else float("inf")


class NodeDiagnostics:
    """Rates of `inputs` (and "output"), counters, the last frame and the worst problem, reported as one
    DiagnosticStatus named `name` with hardware_id `hardware_id`."""

    def __init__(self, name: str, hardware_id: str, inputs: Sequence[str], period: float,
                 static: Optional[Mapping[str, str]] = None) -> None:
        self.name, self.hardware_id, self.inputs, self.period = name, hardware_id, tuple(inputs), period
        self.static = dict(static or {})  # key-values every report carries (e.g. the checkpoint's provenance)
        self._lock = threading.RLock()
        self._rates = {k: Rate() for k in self.inputs + ("output",)}
        self._counts = collections.Counter({k: 0 for k in COUNTERS})
        self._problem: Optional[tuple[bytes, str]] = None  # worst (level, message) since the last report
        self._last: dict[str, Any] = {}
        self._logged: dict[str, float] = {}

    # -------------------------------------------------------------------------------------------- recording
    def tick(self, topic: str) -> None:
        with self._lock:
            self._rates[topic].tick(time.monotonic())

    def count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._counts[key] += n

    def note(self, level: bytes, message: str) -> None:
        """Remember the worst problem until the next report."""
        with self._lock:
            if self._problem is None or level > self._problem[0]:
                self._problem = (level, message)

    def frame_done(self, latencies_ms: Mapping[str, float], diagnostics: Mapping[str, Any], anchors_total: int,
                   anchors_kept: int) -> None:
        """A frame was published: its latencies ("convert_in_ms", "stage1_ms" (Pipeline.prepare), "handoff_wait_ms"
        (prepared, waiting for stage 2), "stage2_ms" (Pipeline.optimize), "pipeline_ms" (stage 1 + stage 2),
        "publish_ms", "total_ms" (taken from the mailbox -> published)) and the pipeline's Result.diagnostics."""
        fallbacks = list(diagnostics.get("fallbacks", []))
        with self._lock:
            self._counts["frames"] += 1
            self._rates["output"].tick(time.monotonic())
            self._last = {**latencies_ms, "stages_ms": dict(diagnostics.get("times_ms", {})),
                          "anchors_total": diagnostics.get("anchors_total", anchors_total),
                          "anchors_kept": diagnostics.get("anchors_kept", anchors_kept),
                          "fallbacks": fallbacks, "scale": diagnostics.get("scale"),
                          "shift": diagnostics.get("shift"),
                          "recalibration_trust": diagnostics.get("recalibration_trust")}
            if fallbacks:
                self._counts["fallbacks"] += 1
        if fallbacks:
            self.note(WARN, "fallbacks: " + ", ".join(map(str, fallbacks)))

    def log_once_per(self, period: float, log: Callable[[str], Any], message: str, detail: str = "") -> None:
        """Log `message` unless the same message was logged less than `period` s ago (a new fault is always logged
        at once)."""
        now = time.monotonic()
        with self._lock:
            due = now - self._logged.get(message, -1e9) >= period
            if due:
                if len(self._logged) > 256:
                    self._logged.clear()
                self._logged[message] = now
        if due:
            log(message + (f"\n{detail}" if detail else ""))

    # -------------------------------------------------------------------------------------------- reporting
    def silent_inputs(self) -> list[str]:
        """Inputs silent for a while although images arrive (they block synchronisation)."""
        now = time.monotonic()
        silent = max(2.0, 5.0 * self.period)
        with self._lock:
            ages = {k: r.age(now) for k, r in self._rates.items()}
        return [k for k in self.inputs if k != "image" and ages.get("image", float("inf")) < 1.0 and ages[k] > silent]

    def report(self, stamp, dropped_busy: int, resolve: Callable[[str], str] = str,
               warn: Optional[Callable[[str], Any]] = None) -> DiagnosticArray:
        """The DiagnosticArray of this period (resets the worst problem). `resolve` turns relative topic names into
        the node's resolved ones; `warn` logs (throttled) a silent input."""
        now = time.monotonic()
        missing = self.silent_inputs()
        with self._lock:
            problem, self._problem = self._problem, None
            counts, last = dict(self._counts), dict(self._last)
            rates = {k: r.hz(now) for k, r in self._rates.items()}
        counts["dropped_busy"] = dropped_busy
        level, message = OK, "ok"
        if missing:
            level = WARN
            message = "no messages on " + ", ".join(resolve(k) for k in missing)
            if warn is not None:
                self.log_once_per(10.0, warn, message + " while images arrive; nothing can be synchronised")
        if problem is not None and problem[0] >= level:
            level, message = problem
        kv = [(f"rate_in/{k} (Hz)", f"{rates[k]:.2f}") for k in self.inputs]
        kv.append(("rate_out (Hz)", f"{rates['output']:.2f}"))
        kv += [(k, str(v)) for k, v in sorted(counts.items())]
        for k in ("convert_in_ms", "stage1_ms", "handoff_wait_ms", "stage2_ms", "pipeline_ms", "publish_ms",
                  "total_ms"):
            if k in last:
                kv.append((f"latency/{k}", f"{last[k]:.2f}"))
        for k, v in last.get("stages_ms", {}).items():
            kv.append((f"latency/stage/{k}_ms", f"{float(v):.2f}"))
        for k in ("anchors_total", "anchors_kept", "scale", "shift", "recalibration_trust"):
            if last.get(k) is not None:
                kv.append((k, f"{last[k]:.4g}" if isinstance(last[k], float) else str(last[k])))
        if last.get("fallbacks"):
            kv.append(("fallbacks_last", ", ".join(map(str, last["fallbacks"]))))
        kv += list(self.static.items())
        status = DiagnosticStatus(level=level, name=self.name, message=message, hardware_id=self.hardware_id,
                                  values=[KeyValue(key=k, value=v) for k, v in kv])
        arr = DiagnosticArray(status=[status])
        arr.header.stamp = stamp
        return arr
