"""The node's two-stage worker (ros/overlap.py, plain Python): stage 1 of frame t+1 runs while stage 2 of frame t
runs, outputs keep input order, at most one prepared frame waits, a failing frame is skipped and the next one goes
through, close() joins both threads. Stages block on events instead of sleeping, so nothing here depends on timing;
the waits (WAIT seconds) only bound a hang."""

from __future__ import annotations

import threading

import pytest

from racalnet_ros.ros.overlap import TwoStageRunner
from racalnet_ros.ros.sync import LatestSlot

WAIT = 20.0


class Stages:
    """Recording stages: first(i) -> i, second(i) appends i to `outputs`; second(i) blocks until release[i] is set
    when the test asks for it; `fail` maps (stage, item) -> exception to raise."""

    def __init__(self, block_second=(), fail=None) -> None:
        self.log: list[str] = []
        self.outputs: list[int] = []
        self.errors: list[BaseException] = []
        self.fail = dict(fail or {})
        self.release = {i: threading.Event() for i in block_second}
        self.event = {k: threading.Event() for k in ("first", "second", "error")}
        self.seen: dict[str, dict[int, threading.Event]] = {"first": {}, "second": {}}
        self.lock = threading.Lock()

    def _mark(self, stage: str, i: int) -> None:
        with self.lock:
            self.log.append(f"{stage} {i}")
            self.seen[stage].setdefault(i, threading.Event()).set()

    def started(self, stage: str, i: int) -> threading.Event:
        with self.lock:
            return self.seen[stage].setdefault(i, threading.Event())

    def first(self, i: int) -> int:
        self._mark("first", i)
        if ("first", i) in self.fail:
            raise self.fail[("first", i)]
        return i

    def second(self, i: int) -> None:
        self._mark("second", i)
        if i in self.release:
            assert self.release[i].wait(WAIT), f"second({i}) was never released"
        if ("second", i) in self.fail:
            raise self.fail[("second", i)]
        with self.lock:
            self.log.append(f"done {i}")
            self.outputs.append(i)

    def on_error(self, exc: BaseException) -> None:
        with self.lock:
            self.errors.append(exc)


def runner(stages: Stages, overlap: bool = True) -> tuple[LatestSlot, TwoStageRunner]:
    inbox = LatestSlot()
    return inbox, TwoStageRunner(inbox, stages.first, stages.second, stages.on_error, overlap=overlap, poll=0.05).start()


def wait_for_outputs(stages: Stages, n: int) -> None:
    done = threading.Event()

    def poll():
        while not done.is_set():
            with stages.lock:
                if len(stages.outputs) + len(stages.errors) >= n:
                    done.set()
                    return
            done.wait(0.01)

    t = threading.Thread(target=poll, daemon=True)
    t.start()
    assert done.wait(WAIT), f"expected {n} results, got outputs {stages.outputs}, errors {stages.errors}"


def test_stage_1_of_frame_t_plus_1_starts_while_stage_2_of_frame_t_is_still_running():
    s = Stages(block_second=[0])
    inbox, r = runner(s)
    try:
        inbox.put(0)
        assert s.started("second", 0).wait(WAIT)
        inbox.put(1)
        assert s.started("first", 1).wait(WAIT), "stage 1 of frame 1 did not run while frame 0 was in stage 2"
        assert "done 0" not in s.log  # frame 0 is still blocked in stage 2
        s.release[0].set()
        wait_for_outputs(s, 2)
        assert s.outputs == [0, 1]
        assert s.log.index("first 1") < s.log.index("done 0")
    finally:
        r.close()


def test_without_overlap_frame_t_plus_1_starts_only_after_frame_t_is_published():
    s = Stages(block_second=[0])
    inbox, r = runner(s, overlap=False)
    try:
        inbox.put(0)
        assert s.started("second", 0).wait(WAIT)
        inbox.put(1)
        s.release[0].set()
        wait_for_outputs(s, 2)
        assert s.log == ["first 0", "second 0", "done 0", "first 1", "second 1", "done 1"]
    finally:
        r.close()


def test_at_most_one_prepared_frame_waits_and_newer_inputs_replace_older_ones():
    """Frame 0 in stage 2, frame 1 prepared and waiting: frames 2 and 3 are never prepared, 4 (the newest) is."""
    s = Stages(block_second=[0])
    inbox, r = runner(s)
    try:
        inbox.put(0)
        assert s.started("second", 0).wait(WAIT)
        inbox.put(1)
        assert s.started("first", 1).wait(WAIT)
        for i in (2, 3, 4):
            inbox.put(i)
        assert inbox.dropped == 2  # 2 and 3 replaced while the hand-off slot was full
        s.release[0].set()
        wait_for_outputs(s, 3)
        assert s.outputs == [0, 1, 4]
        assert [e for e in s.log if e.startswith("first")] == ["first 0", "first 1", "first 4"]
    finally:
        r.close()


def test_outputs_come_out_in_input_order_and_the_newest_frame_is_never_lost():
    s = Stages()
    inbox, r = runner(s)
    try:
        for i in range(50):
            inbox.put(i)
        wait_for_outputs(s, 1)
        inbox.put(50)
        assert s.started("second", 50).wait(WAIT)
        wait_for_outputs(s, 50 - inbox.dropped + 1)
        assert s.outputs == sorted(set(s.outputs)), "outputs out of input order"
        assert s.outputs[-1] == 50
        assert len(s.outputs) + inbox.dropped == 51  # every input was either published or counted as dropped
    finally:
        r.close()


@pytest.mark.parametrize("stage", ["first", "second"])
@pytest.mark.parametrize("overlap", [True, False], ids=["overlap", "serial"])
def test_a_frame_whose_stage_raises_is_skipped_once_and_the_next_frame_is_published(stage, overlap):
    boom = RuntimeError("stage failed on frame 1")
    s = Stages(fail={(stage, 1): boom})
    inbox, r = runner(s, overlap)
    try:
        for i in range(3):
            inbox.put(i)
            assert s.started("first", i).wait(WAIT)
            if not (stage == "first" and i == 1):
                assert s.started("second", i).wait(WAIT)
        wait_for_outputs(s, 3)
        assert s.outputs == [0, 2]
        assert s.errors == [boom]  # one report for the one failed frame
        assert all(t.is_alive() for t in r.threads)
    finally:
        r.close()


@pytest.mark.parametrize("overlap", [True, False], ids=["overlap", "serial"])
def test_close_joins_every_worker_thread(overlap):
    s = Stages()
    inbox, r = runner(s, overlap)
    assert len(r.threads) == (2 if overlap else 1)
    inbox.put(0)
    wait_for_outputs(s, 1)
    r.close()
    assert not any(t.is_alive() for t in r.threads)
    assert inbox.closed
