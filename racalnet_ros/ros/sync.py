"""Approximate-time synchronisation of N inputs, with message_filters' policy, on float stamps (no ROS needed).

The node uses `message_filters.ApproximateTimeSynchronizer` where the ROS install has it; otherwise this class,
which follows the same policy as message_filters' Python implementation:

- each input keeps a queue {stamp: message} of at most `queue_size` entries (the oldest stamp is evicted);
- when a message arrives on input i, candidate stamps on every other input are those within `slop` seconds of it;
  combinations are tried nearest-first per input, and the first one whose total spread (max - min stamp) is below
  `slop` is emitted, its messages are removed from their queues, and the search stops.

`reset()` forgets everything queued: the node calls it when stamps jump backwards (bag loops).
`make_synchronizer` picks message_filters' implementation where it is installed, else this one, behind the same
`add(index, stamp, msg)` / `reset()` interface (like depth_image_proc, one parameter-free choice in one place). One deliberate
difference: `slop = 0` matches identical stamps (message_filters' strict `< slop` would never match). Hand-written
because message_filters is not on PyPI and the fallback must behave the same way.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any, Callable, Optional


class ApproximateTimeSync:
    """Synchronise `num_inputs` streams. `add(i, stamp, msg)` returns the matched tuple (one message per input, in
    input order) or None; callbacks registered with `register_callback` are called with the same tuple."""

    kind = "racalnet_ros.ros.sync.ApproximateTimeSync"

    def __init__(self, num_inputs: int, queue_size: int, slop: float) -> None:
        if num_inputs < 1:
            raise ValueError(f"num_inputs: must be >= 1, got {num_inputs}")
        if queue_size < 1:
            raise ValueError(f"sync.queue_size: must be >= 1, got {queue_size}")
        if not slop >= 0.0:
            raise ValueError(f"sync.slop: must be >= 0 seconds, got {slop}")
        self.num_inputs = int(num_inputs)
        self.queue_size = int(queue_size)
        self.slop = float(slop)
        self.queues: list[dict[float, Any]] = [{} for _ in range(self.num_inputs)]
        self.matched = 0
        self._callbacks: list[Callable[..., None]] = []
        self._lock = threading.Lock()

    def register_callback(self, cb: Callable[..., None]) -> None:
        self._callbacks.append(cb)

    def reset(self) -> None:
        """Forget every queued message (e.g. after a bag loop)."""
        with self._lock:
            self._clear()

    def _clear(self) -> None:
        for q in self.queues:
            q.clear()

    def add(self, index: int, stamp: float, msg: Any) -> Optional[tuple]:
        """Queue `msg` (stamp in seconds) on input `index`; return the synced tuple if this completes one."""
        if not 0 <= index < self.num_inputs:
            raise IndexError(f"input index {index} out of range 0..{self.num_inputs - 1}")
        stamp = float(stamp)
        with self._lock:
            match = self._add_locked(index, stamp, msg)
            if match is not None:
                self.matched += 1
        if match is not None:
            for cb in self._callbacks:
                cb(*match)
        return match

    def _add_locked(self, index: int, stamp: float, msg: Any) -> Optional[tuple]:
        own = self.queues[index]
        own[stamp] = msg
        while len(own) > self.queue_size:
            del own[min(own)]
        # candidate stamps per other input: within slop of the new stamp, nearest first
        candidates: list[list[float]] = []
        for j, q in enumerate(self.queues):
            if j == index:
                continue
            near = sorted((s for s in q if abs(s - stamp) <= self.slop), key=lambda s: abs(s - stamp))
            if not near:
                return None
            candidates.append(near)
        for combo in itertools.product(*candidates):
            stamps = list(combo)
            stamps.insert(index, stamp)
            if max(stamps) - min(stamps) < self.slop or (self.slop == 0.0 and max(stamps) == min(stamps)):
                if all(s in q for q, s in zip(self.queues, stamps)):
                    out = tuple(q.pop(s) for q, s in zip(self.queues, stamps))
                    return out
        return None

    def pending(self) -> list[int]:
        """Number of queued messages per input."""
        with self._lock:
            return [len(q) for q in self.queues]


class MessageFiltersSync:
    """message_filters.ApproximateTimeSynchronizer fed through one SimpleFilter per input, behind the `add` / `reset`
    interface of ApproximateTimeSync (reset = a new synchroniser)."""

    kind = "message_filters.ApproximateTimeSynchronizer"

    def __init__(self, num_inputs: int, queue_size: int, slop: float, callback: Callable[..., None]) -> None:
        import message_filters

        self._mf, self._args, self._callback = message_filters, (num_inputs, queue_size, slop), callback
        self.reset()

    def reset(self) -> None:
        n, queue_size, slop = self._args
        self._inputs = [self._mf.SimpleFilter() for _ in range(n)]
        self._sync = self._mf.ApproximateTimeSynchronizer(self._inputs, queue_size, slop)
        self._sync.registerCallback(self._callback)

    def add(self, index: int, stamp: float, msg: Any) -> None:
        self._inputs[index].signalMessage(msg)


def make_synchronizer(num_inputs: int, queue_size: int, slop: float, callback: Callable[..., None]):
    """message_filters' ApproximateTimeSynchronizer where the ROS install has it, else ApproximateTimeSync; both take
    `add(index, stamp, msg)` and `reset()`, call `callback(*msgs)` per matched set and name themselves in `.kind`."""
    try:
        import message_filters  # noqa: F401  (a ROS package, not on PyPI)
    except ImportError:
        sync = ApproximateTimeSync(num_inputs, queue_size, slop)
        sync.register_callback(callback)
        return sync
    return MessageFiltersSync(num_inputs, queue_size, slop, callback)


class LatestSlot:
    """A single-slot mailbox between the executor and the worker thread: `put` replaces what is there (the newest
    item wins, the replaced one is counted in `dropped`), `take` blocks until an item or `close()`."""

    def __init__(self) -> None:
        self._item: Any = None
        self._has = False
        self._closed = False
        self.dropped = 0
        self._cv = threading.Condition()

    def put(self, item: Any) -> bool:
        """Store `item`; returns True if an older, unprocessed item was dropped."""
        with self._cv:
            dropped = self._has
            if dropped:
                self.dropped += 1
            self._item, self._has = item, True
            self._cv.notify()
            return dropped

    def take(self, timeout: Optional[float] = None) -> Any:
        """The newest item (and empty the slot), or None after `timeout` seconds or once closed."""
        with self._cv:
            if not self._cv.wait_for(lambda: self._has or self._closed, timeout):
                return None
            if not self._has:
                return None
            item, self._item, self._has = self._item, None, False
            return item

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

