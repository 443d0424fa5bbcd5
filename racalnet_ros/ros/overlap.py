"""Two-stage worker of racalnet_node: stage 1 of frame t+1 runs while stage 2 of frame t runs (pure Python, no rclpy).

    inbox (LatestSlot, newest wins) -> [stage 1 thread] -> hand-off (one slot) -> [stage 2 thread] -> done

- `first(item) -> mid` and `second(mid)` are the node's stages (convert + `Pipeline.prepare`; `Pipeline.optimize` +
  publish). Stage 1 takes a new input only once the hand-off slot is empty, so at most one prepared frame waits and
  no prepared work is thrown away; while it waits, newer inputs replace older ones in the inbox (the node's policy).
  One stage-1 thread and one stage-2 thread: outputs come out in input order.
- An exception in either stage goes to `on_error(exc)` and skips that frame; the next one is processed.
- `overlap=False`: one thread runs first then second per item (the node's `pipeline_overlap: false`).
- `close()` wakes and joins both threads (a prepared frame still waiting is dropped).
torch releases the GIL inside its kernels (numpy and OpenCV too), so the two threads really run in parallel on two
cores; each uses torch's intra-op thread count (`cpu_threads`, set once per process: config.apply_cpu_threads).
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from .sync import LatestSlot


class TwoStageRunner:
    """Drain `inbox` through `first` then `second`, overlapped across consecutive items (see module docstring)."""

    def __init__(self, inbox: LatestSlot, first: Callable[[Any], Any], second: Callable[[Any], None],
                 on_error: Callable[[BaseException], None], overlap: bool = True, poll: float = 0.5) -> None:
        self.inbox, self.first, self.second, self.on_error = inbox, first, second, on_error
        self.overlap, self.poll = overlap, poll
        self._handoff = LatestSlot()
        self._free = threading.Condition()  # notified when stage 2 empties the hand-off slot
        self._waiting = False  # a prepared item sits in the hand-off slot
        targets = [("racalnet_stage1", self._stage1), ("racalnet_stage2", self._stage2)] if overlap else \
            [("racalnet_worker", self._serial)]
        self.threads = [threading.Thread(target=t, name=n, daemon=True) for n, t in targets]

    def start(self) -> "TwoStageRunner":
        for t in self.threads:
            t.start()
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Stop taking items and join the threads (each finishes the item it is on)."""
        self.inbox.close()
        self._handoff.close()
        with self._free:
            self._free.notify_all()
        for t in self.threads:
            if t.is_alive() and t is not threading.current_thread():
                t.join(timeout)

    @property
    def closed(self) -> bool:
        return self.inbox.closed

    def _call(self, fn: Callable[[Any], Any], item: Any) -> tuple[bool, Any]:
        try:
            return True, fn(item)
        except Exception as e:  # the frame is skipped; the caller's handler says why
            self.on_error(e)
            return False, None

    def _serial(self) -> None:
        while not self.closed:
            item = self.inbox.take(timeout=self.poll)
            if item is not None:
                ok, mid = self._call(self.first, item)
                if ok:
                    self._call(self.second, mid)

    def _stage1(self) -> None:
        while not self.closed:
            with self._free:  # at most one prepared item waits: take a new input only when the slot is empty
                if not self._free.wait_for(lambda: not self._waiting or self.closed, self.poll) or self.closed:
                    continue
            item = self.inbox.take(timeout=self.poll)
            if item is None:
                continue
            ok, mid = self._call(self.first, item)
            if ok:
                with self._free:
                    self._waiting = True
                self._handoff.put(mid)

    def _stage2(self) -> None:
        while not self._handoff.closed:
            mid = self._handoff.take(timeout=self.poll)
            if mid is None:
                continue
            with self._free:
                self._waiting = False
                self._free.notify_all()
            self._call(self.second, mid)


__all__ = ["TwoStageRunner"]
