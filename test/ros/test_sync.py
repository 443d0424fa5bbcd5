"""Approximate-time synchronisation (message_filters' policy) on plain stamps, without ROS, and the single-slot
mailbox between executor and worker."""

from __future__ import annotations

import threading

import pytest

from racalnet_ros.ros.sync import ApproximateTimeSync, LatestSlot


def feed(sync: ApproximateTimeSync, events):
    """events: (input index, stamp) in arrival order; messages are (index, stamp). Returns the matched stamp sets."""
    out = []
    for i, t in events:
        m = sync.add(i, t, (i, t))
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


def test_zero_slop_matches_identical_stamps():
    sync = ApproximateTimeSync(2, queue_size=10, slop=0.0)
    assert feed(sync, [(0, 1.0), (1, 1.0 + 1e-9), (1, 1.0)]) == [(1.0, 1.0)]


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
    worker = threading.Thread(target=lambda: got.extend([box.take(timeout=5), box.take(timeout=5)]))
    worker.start()
    box.put("frame")
    # give the worker the item before closing; close() then ends its second wait
    for _ in range(500):
        if got or not box._has:
            break
        threading.Event().wait(0.01)
    box.close()
    worker.join(timeout=5)
    assert not worker.is_alive() and got == ["frame", None]
