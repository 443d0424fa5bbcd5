"""`racalnet bench --what threads`: rows for 1 and 2 torch threads (and the rule's choice) with the load recorded,
and the load generator it starts is gone afterwards. Timings are reported, never asserted."""

import json
import multiprocessing

from racalnet_ros.cli import main as racalnet


def test_the_thread_rows_record_threads_load_and_spread_and_leave_no_generator(tmp_path):
    out = tmp_path / "threads.json"
    assert racalnet(["bench", "--what", "threads", "--quick", "--load", "1", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["threads"]
    assert {r["threads"] for r in rows} >= {1, 2} and sum(r["rule"] == "yes" for r in rows) == 1
    for r in rows:
        assert r["load_generators"] == 1 and r["calls"] == 6 and r["p10_ms"] <= r["ms"] <= r["p90_ms"]
        assert r["loadavg_1m_start"] >= 0 and r["cpus"] >= 1
    assert multiprocessing.active_children() == []
