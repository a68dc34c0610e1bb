"""kill -9 in the middle of a stream of exports: every acknowledged point survives, none twice."""

from __future__ import annotations

import os
import signal
import threading
import time
import urllib.error
from pathlib import Path

from tests.bridge_process import BridgeProcess
from tests.support import CLAUDE, shifted

EXPORTS = 240
SENDERS = 4
INPUT_PER_EXPORT = 123  # t1: one API request per export


def test_kill_9_mid_stream_loses_no_acknowledged_point(tmp_path: Path) -> None:
    base = (CLAUDE / "t1_http_protobuf_sayhi" / "0002_http_metrics.pb").read_bytes()
    bodies = [shifted(base, (i + 1) * 1_000_000_000) for i in range(EXPORTS)]
    state = tmp_path / "state"
    bridge = BridgeProcess(tmp_path, state)
    acked: list[int] = []  # in the order the answers came
    lock = threading.Lock()

    def send(indices: list[int]) -> None:
        for i in indices:
            try:
                status = bridge.post(bodies[i])
            except (urllib.error.URLError, ConnectionError, OSError):
                return  # the bridge is gone: this one and the rest are unacknowledged
            if status == 200:
                with lock:
                    acked.append(i)

    threads = [threading.Thread(target=send, args=(list(range(k, EXPORTS, SENDERS)),)) for k in range(SENDERS)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while len(acked) < EXPORTS // 3 and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(bridge.pid, signal.SIGKILL)
    for thread in threads:
        thread.join(30)
    bridge.stop()
    acknowledged = set(acked)
    last_acknowledged = acked[-1]
    assert EXPORTS // 3 <= len(acknowledged) < EXPORTS, "the kill did not land mid-stream"

    restarted = BridgeProcess(tmp_path, state)
    try:
        survived = restarted.scrape().total("claude_code_token_usage_tokens_total", type="input") / INPUT_PER_EXPORT
        # everything acknowledged survived; at most the exports in flight at the kill were
        # committed without their answer reaching the client
        assert len(acknowledged) <= survived <= len(acknowledged) + SENDERS
        # the client retries what it never saw acknowledged, and the last one it did (an answer lost
        # on the way is indistinguishable to it); replay memory covers a series' last 8 exports
        for i in [last_acknowledged, *sorted(set(range(EXPORTS)) - acknowledged)]:
            assert restarted.post(bodies[i]) == 200
        scrape = restarted.scrape()
        assert scrape.total("claude_code_token_usage_tokens_total", type="input") == EXPORTS * INPUT_PER_EXPORT
        assert scrape.total("claude_code_session_count_total") == EXPORTS
    finally:
        assert restarted.stop() == 0
