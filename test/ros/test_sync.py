"""Time synchronisation (message_filters' policies) on plain stamps, without ROS; the same message sequences through
the real message_filters where it is importable (a ROS install, or RACALNET_MESSAGE_FILTERS=<checkout>/src); and the
single-slot mailbox between executor and worker."""

from __future__ import annotations

import os
import random
import sys
import threading
import time

import pytest

from racalnet_ros.ros.sync import ApproximateTimeSync, ExactTimeSync, LatestSlot, make_synchronizer


def ns(t: float) -> int:
    return int(round(t * 1e9))


def feed(sync: ApproximateTimeSync, events):
    """events: (input index, stamp s) in arrival order; messages are (index, stamp). Returns the matched stamp sets
    (seconds)."""
    out = []
    for i, t in events:
        m = sync.add(i, ns(t), (i, t))
        if m is not None:
            out.append(tuple(s for _, s in m))
    return out


def test_messages_within_slop_are_matched_in_input_order():
    sync = ApproximateTimeSync(3, queue_size=10, slop=0.05)
    got = feed(sync, [(0, 1.00), (1, 1.02), (2, 0.99)])
    assert got == [(1.00, 1.02, 0.99)]
    assert sync.pending() == [0, 0, 0]  # matched messages leave their queues


def test_messages_further_apart_than_slop_are_not_matched():
    sync = ApproximateTimeSync(2, queue_size=10, slop=0.05)
    assert feed(sync, [(0, 1.0), (1, 1.06)]) == []
    assert sync.pending() == [1, 1]


def test_the_nearest_candidate_is_chosen():
    sync = ApproximateTimeSync(2, queue_size=10, slop=0.1)
    got = feed(sync, [(1, 0.95), (1, 1.01), (1, 1.08), (0, 1.0)])
    assert got == [(1.0, 1.01)]
    assert sync.pending() == [0, 2]


def test_a_combination_is_emitted_only_if_its_total_spread_is_below_slop():
    # each of inputs 1 and 2 is within slop of input 0, but not of each other
    sync = ApproximateTimeSync(3, queue_size=10, slop=0.05)
    assert feed(sync, [(1, 0.96), (2, 1.04), (0, 1.0)]) == []
    assert feed(sync, [(2, 0.99)]) == [(1.0, 0.96, 0.99)]


def test_queues_never_grow_beyond_queue_size():
    sync = ApproximateTimeSync(2, queue_size=3, slop=0.01)
    feed(sync, [(0, float(t)) for t in range(10)])
    assert sync.pending() == [3, 0]
    assert feed(sync, [(1, 0.0)]) == []  # the oldest stamps were evicted
    assert feed(sync, [(1, 9.0)]) == [(9.0, 9.0)]


def test_a_stream_of_synced_sensors_is_matched_frame_by_frame():
    sync = ApproximateTimeSync(3, queue_size=5, slop=0.02)
    events = []
    for k in range(20):  # radar, image, info with small jitter, interleaved arrival order
        t = 0.1 * k
        if k % 2:
            events += [(1, t + 0.001), (2, t + 0.001), (0, t - 0.004)]
        else:
            events += [(0, t), (1, t + 0.003), (2, t + 0.003)]
    got = feed(sync, events)
    assert len(got) == 20 and sync.matched == 20


def test_reset_forgets_queued_messages():
    sync = ApproximateTimeSync(2, queue_size=10, slop=0.05)
    feed(sync, [(0, 5.0)])
    sync.reset()
    assert sync.pending() == [0, 0]
    assert feed(sync, [(1, 5.0)]) == []


def test_zero_slop_is_exact_time_matching():
    sync = make_synchronizer(2, 10, 0.0, lambda *m: None, implementation="fallback")
    assert isinstance(sync, ExactTimeSync)
    assert feed(sync, [(0, 1.0), (1, 1.0 + 1e-9), (1, 1.0)]) == [(1.0, 1.0)]
    # the approximate policy never matches at slop 0 (spread < 0 is impossible), as message_filters' does not
    assert feed(ApproximateTimeSync(2, queue_size=10, slop=0.0), [(0, 1.0), (1, 1.0)]) == []


def test_a_spread_equal_to_the_slop_is_not_matched_in_nanoseconds():
    # 2.03 - 2.01 is below 0.02 in float seconds; in integer nanoseconds (message_filters) it is not
    assert feed(ApproximateTimeSync(2, queue_size=10, slop=0.02), [(0, 2.01), (1, 2.03)]) == []
    assert feed(ApproximateTimeSync(2, queue_size=10, slop=0.02), [(0, 2.01), (1, 2.0299999)]) == [(2.01, 2.0299999)]


def test_an_arriving_message_older_than_a_full_queue_is_evicted_at_once():
    sync = ApproximateTimeSync(2, queue_size=2, slop=0.05)
    feed(sync, [(0, 2.0), (0, 3.0)])
    assert feed(sync, [(0, 1.0)]) == [] and sync.pending() == [2, 0]
    assert feed(sync, [(1, 1.0)]) == []  # 1.0 on input 0 is gone


def test_callbacks_receive_the_matched_messages():
    sync = ApproximateTimeSync(2, queue_size=10, slop=0.05)
    seen = []
    sync.register_callback(lambda a, b: seen.append((a, b)))
    sync.add(0, 1.0, "radar")
    sync.add(1, 1.01, "image")
    assert seen == [("radar", "image")]


def test_invalid_settings_are_rejected_naming_them():
    with pytest.raises(ValueError, match="sync.queue_size"):
        ApproximateTimeSync(2, queue_size=0, slop=0.1)
    with pytest.raises(ValueError, match="sync.slop"):
        ApproximateTimeSync(2, queue_size=5, slop=-0.1)


def test_mailbox_keeps_the_newest_item_and_counts_drops():
    box = LatestSlot()
    assert box.put(1) is False
    assert box.put(2) is True and box.put(3) is True
    assert box.take(timeout=0) == 3 and box.dropped == 2
    assert box.take(timeout=0.01) is None


def test_mailbox_wakes_a_waiting_worker_and_close_releases_it():
    box = LatestSlot()
    got = []
    worker = threading.Thread(target=lambda: got.extend([box.take(timeout=60), box.take(timeout=60)]))
    worker.start()
    box.put("frame")
    # give the worker the item before closing (a condition; 60 s is only a failure bound); close() then ends its
    # second wait
    end = time.monotonic() + 60
    while box._has and time.monotonic() < end:
        threading.Event().wait(0.01)
    box.close()
    worker.join(timeout=60)
    assert not worker.is_alive() and got == ["frame", None]


# ------------------------------------------------------------------------ the real message_filters, same sequences
MESSAGE_FILTERS = os.environ.get("RACALNET_MESSAGE_FILTERS", "")


@pytest.fixture(scope="module")
def message_filters():
    if MESSAGE_FILTERS:
        sys.path.insert(0, MESSAGE_FILTERS)
    try:
        import message_filters
    except ImportError as exc:
        pytest.skip(f"message_filters is not importable ({exc}): it comes with a ROS install "
                    "(ros-<distro>-message-filters) and is not on PyPI; set RACALNET_MESSAGE_FILTERS to the src/ "
                    "folder of a github.com/ros2/message_filters checkout to run this comparison")
    return message_filters


class Msg:
    """Enough of a ROS message for message_filters: a header with a builtin_interfaces/Time stamp."""

    def __init__(self, index: int, stamp_ns: int, n: int):
        from builtin_interfaces.msg import Time
        from std_msgs.msg import Header
        self.header = Header(stamp=Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9), frame_id=str(index))
        self.key = (index, stamp_ns, n)


def run_sequence(implementation: str, n_inputs: int, queue_size: int, slop: float, events) -> list:
    """(event number, matched message keys) for each set emitted while `events` [(input, stamp ns)] arrive."""
    got: list = []
    step = [0]
    sync = make_synchronizer(n_inputs, queue_size, slop, lambda *m: got.append((step[0], [x.key for x in m])),
                             implementation=implementation)
    for k, (i, stamp) in enumerate(events):
        step[0] = k
        sync.add(i, stamp, Msg(i, stamp, k))
    return got


def sensor_sequence(rng: random.Random, n_inputs: int, slop: float) -> list:
    """Frames at 10 Hz; each input stamps with its own jitter (none, exactly +-slop/2 so that spreads land on the
    slop, or up to 1.5 x slop), some messages drop or repeat a stamp, arrival order shuffled within a few messages;
    a bag loop (stamps jump back) now and then."""
    events = []
    base = 10**18
    half = int(slop * 1e9) // 2
    for f in range(rng.randint(5, 30)):
        t = base + f * 100_000_000
        for i in range(n_inputs):
            if rng.random() < 0.1:
                continue
            jitter = rng.choice([0, half, -half, int(rng.uniform(-1.5, 1.5) * slop * 1e9)])
            events.append((i, t + jitter))
            if rng.random() < 0.05:
                events.append((i, t + jitter))  # the same stamp again
        if rng.random() < 0.03:
            base -= 10**9
    for k in range(len(events) - 1):  # local reordering
        if rng.random() < 0.3:
            j = min(len(events) - 1, k + rng.randint(1, 3))
            events[k], events[j] = events[j], events[k]
    return events


@pytest.mark.parametrize("slop", [0.0, 0.005, 0.02, 0.05, 0.1])
def test_the_fallback_emits_what_message_filters_emits_on_the_same_sequences(message_filters, slop):
    """Queue eviction, slop boundary, which set is emitted and when: 200 random sensor sequences per slop, through
    message_filters (ApproximateTimeSynchronizer, or TimeSynchronizer at slop 0) and through the fallback."""
    rng = random.Random(int(slop * 1000))
    for trial in range(200):
        n_inputs, queue_size = rng.choice([2, 3, 4]), rng.choice([1, 2, 3, 5, 10])
        events = sensor_sequence(rng, n_inputs, slop if slop > 0 else 0.02)
        mf = run_sequence("message_filters", n_inputs, queue_size, slop, events)
        ours = run_sequence("fallback", n_inputs, queue_size, slop, events)
        assert ours == mf, (trial, n_inputs, queue_size, events)


def test_boundary_cases_agree_with_message_filters(message_filters):
    cases = [  # (slop, queue size, events in seconds)
        (0.02, 10, [(0, 2.01), (1, 2.03)]),                        # spread == slop: no match
        (0.02, 10, [(0, 2.01), (1, 2.0299999)]),                   # just below: match
        (0.57, 10, [(0, 1.0), (1, 1.57)]),                         # int(0.57e9) = 569999999 ns
        (0.05, 2, [(0, 2.0), (0, 3.0), (0, 1.0), (1, 1.0)]),       # evicted on arrival
        (0.1, 10, [(1, 0.95), (1, 1.01), (1, 1.08), (0, 1.0)]),    # nearest candidate
        (0.05, 10, [(1, 0.96), (2, 1.04), (0, 1.0), (2, 0.99)]),  # pairwise within slop, spread not
        (0.0, 10, [(0, 1.0), (1, 1.0 + 1e-9), (1, 1.0)]),          # exact
    ]
    for slop, q, events in cases:
        ev = [(i, ns(t)) for i, t in events]
        n = max(i for i, _ in ev) + 1
        assert run_sequence("fallback", n, q, slop, ev) == run_sequence("message_filters", n, q, slop, ev), events


def test_make_synchronizer_uses_message_filters_where_it_is_importable(message_filters):
    assert make_synchronizer(3, 10, 0.05, print).kind == "message_filters.ApproximateTimeSynchronizer"
    assert make_synchronizer(3, 10, 0.0, print).kind == "message_filters.TimeSynchronizer"
    assert make_synchronizer(3, 10, 0.0, print, implementation="fallback").kind.endswith("ExactTimeSync")
