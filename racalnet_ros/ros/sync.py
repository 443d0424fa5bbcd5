"""Time synchronisation of N inputs with message_filters' policies, on integer nanosecond stamps (no ROS needed).

`sync.slop > 0` is approximate-time matching, `sync.slop: 0` exact-time matching, with either implementation:

  slop > 0   message_filters.ApproximateTimeSynchronizer   | ApproximateTimeSync (this module)
  slop = 0   message_filters.TimeSynchronizer              | ExactTimeSync (this module)

(message_filters' ApproximateTimeSynchronizer never matches at slop 0: it requires a spread strictly below the slop.)
The node uses message_filters where the ROS install has it, else these classes, which follow its Python
implementation (rolling, checked against it in test/ros/test_sync.py where message_filters is importable):

- every input keeps a queue {stamp ns: message}; beyond `queue_size` entries the oldest stamp is evicted (possibly
  the message that just arrived, which then cannot be matched); a second message with the same stamp replaces the
  first;
- approximate: when a message arrives on input i, the candidates on every other input are the stamps within `slop`
  of it (|dt| <= slop, nearest first, ties in arrival order); their combinations are tried in that order and the
  first whose spread (max - min stamp) is strictly below `slop` is emitted and removed from the queues: at most one
  set per arriving message;
- exact: every stamp present in all queues is emitted (oldest first) and removed.
The slop is compared in integer nanoseconds, int(slop * 1e9) as rclpy's Duration(seconds=slop) makes it, so a
spread at the boundary is decided the same way by both (float seconds would not: 2.03 - 2.01 < 0.02 in floats).

`reset()` forgets everything queued: the node calls it when stamps jump backwards (bag loops). `make_synchronizer`
picks the implementation behind one `add(index, stamp_ns, msg)` / `reset()` interface and names it in `.kind`.
Hand-written because message_filters is not on PyPI and the fallback must behave the same way.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any, Callable, Optional


def slop_ns(slop: float) -> int:
    """The slop in nanoseconds as message_filters compares it: rclpy's Duration(seconds=slop).nanoseconds."""
    return int(float(slop) * 1e9)


class ApproximateTimeSync:
    """Synchronise `num_inputs` streams. `add(i, stamp_ns, msg)` returns the matched tuple (one message per input, in
    input order) or None; callbacks registered with `register_callback` are called with the same tuple.
    slop 0 is rejected here (it never matches under this policy): use ExactTimeSync (make_synchronizer does)."""

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
        self.slop_ns = slop_ns(slop)
        self.queues: list[dict[int, Any]] = [{} for _ in range(self.num_inputs)]
        self.matched = 0
        self._callbacks: list[Callable[..., None]] = []
        self._lock = threading.Lock()

    def register_callback(self, cb: Callable[..., None]) -> None:
        self._callbacks.append(cb)

    def reset(self) -> None:
        """Forget every queued message (e.g. after a bag loop)."""
        with self._lock:
            for q in self.queues:
                q.clear()

    def add(self, index: int, stamp_ns: int, msg: Any) -> Optional[tuple]:
        """Queue `msg` (header stamp in integer nanoseconds) on input `index`; return the synced tuple if this
        completes one (the callbacks get every set)."""
        if not 0 <= index < self.num_inputs:
            raise IndexError(f"input index {index} out of range 0..{self.num_inputs - 1}")
        with self._lock:
            own = self.queues[index]
            own[int(stamp_ns)] = msg
            while len(own) > self.queue_size:
                del own[min(own)]
            matches = self._match(index, int(stamp_ns))
            self.matched += len(matches)
        for match in matches:
            for cb in self._callbacks:
                cb(*match)
        return matches[-1] if matches else None

    def _match(self, index: int, stamp: int) -> list[tuple]:
        # candidate stamps per other input: within slop of the new stamp, nearest first (stable: arrival order)
        candidates: list[list[int]] = []
        for j, q in enumerate(self.queues):
            if j == index:
                continue
            near = sorted((s for s in q if abs(s - stamp) <= self.slop_ns), key=lambda s: abs(s - stamp))
            if not near:
                return []
            candidates.append(near)
        for combo in itertools.product(*candidates):
            stamps = list(combo)
            stamps.insert(index, stamp)
            if max(stamps) - min(stamps) < self.slop_ns and all(s in q for q, s in zip(self.queues, stamps)):
                return [tuple(q.pop(s) for q, s in zip(self.queues, stamps))]
        return []

    def pending(self) -> list[int]:
        """Number of queued messages per input."""
        with self._lock:
            return [len(q) for q in self.queues]


class ExactTimeSync(ApproximateTimeSync):
    """Exact-time matching (`sync.slop: 0`), message_filters.TimeSynchronizer's policy: every stamp present in all
    queues is emitted, oldest first."""

    kind = "racalnet_ros.ros.sync.ExactTimeSync"

    def __init__(self, num_inputs: int, queue_size: int, slop: float = 0.0) -> None:
        super().__init__(num_inputs, queue_size, 0.0)

    def _match(self, index: int, stamp: int) -> list[tuple]:
        common = set(self.queues[0]).intersection(*self.queues[1:])
        return [tuple(q.pop(t) for q in self.queues) for t in sorted(common)]


class MessageFiltersSync:
    """message_filters' ApproximateTimeSynchronizer (slop > 0) or TimeSynchronizer (slop 0), fed through one
    SimpleFilter per input, behind the `add` / `reset` interface of ApproximateTimeSync (reset = a new synchroniser;
    message_filters reads the stamp from the message's header)."""

    def __init__(self, num_inputs: int, queue_size: int, slop: float, callback: Callable[..., None]) -> None:
        import message_filters

        self._mf, self._args, self._callback = message_filters, (num_inputs, queue_size, slop), callback
        self.kind = "message_filters." + ("TimeSynchronizer" if slop == 0 else "ApproximateTimeSynchronizer")
        self.reset()

    def reset(self) -> None:
        n, queue_size, slop = self._args
        self._inputs = [self._mf.SimpleFilter() for _ in range(n)]
        if slop == 0:
            self._sync = self._mf.TimeSynchronizer(self._inputs, queue_size)
        else:
            self._sync = self._mf.ApproximateTimeSynchronizer(self._inputs, queue_size, slop)
        self._sync.registerCallback(self._callback)

    def add(self, index: int, stamp_ns: int, msg: Any) -> None:
        self._inputs[index].signalMessage(msg)


def make_synchronizer(num_inputs: int, queue_size: int, slop: float, callback: Callable[..., None],
                      implementation: str = "auto"):
    """The synchroniser for `sync.slop` (see the module docstring): message_filters' where the ROS install has it
    (implementation "auto") or when asked ("message_filters": ImportError without it), else this module's
    ("fallback"). Both take `add(index, stamp_ns, msg)` and `reset()`, call `callback(*msgs)` per matched set and
    name themselves in `.kind`."""
    if implementation not in ("auto", "message_filters", "fallback"):
        raise ValueError(f"implementation: {implementation!r} is not auto, message_filters or fallback")
    if implementation != "fallback":
        try:
            import message_filters  # noqa: F401  (a ROS package, not on PyPI)
        except ImportError:
            if implementation == "message_filters":
                raise
        else:
            return MessageFiltersSync(num_inputs, queue_size, slop, callback)
    sync = (ExactTimeSync if slop == 0 else ApproximateTimeSync)(num_inputs, queue_size, slop)
    sync.register_callback(callback)
    return sync


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

