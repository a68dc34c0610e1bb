"""HTTP framing details: chunked bodies, health endpoints."""

from __future__ import annotations

import http.client
import urllib.request

from tests.support import CLAUDE, RunningBridge

BODY = (CLAUDE / "t7_write_edit_acceptEdits" / "0014_http_metrics.pb").read_bytes()


def test_chunked_body_like_claude_code_2_1_191(bridge: RunningBridge) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", bridge.ports.http, timeout=10)
    chunks = (BODY[i:i + 1000] for i in range(0, len(BODY), 1000))
    connection.request("POST", "/v1/metrics", body=chunks, encode_chunked=True,
                       headers={"Content-Type": "application/x-protobuf", "Transfer-Encoding": "chunked"})
    response = connection.getresponse()
    assert response.status == 200
    assert response.getheader("Content-Type") == "application/x-protobuf"
    connection.close()
    assert bridge.scrape().total("claude_code_token_usage_tokens_total", type="cacheRead") == 3 * 4567


def test_health_and_readiness(bridge: RunningBridge) -> None:
    base = f"http://127.0.0.1:{bridge.ports.metrics}"
    with urllib.request.urlopen(base + "/healthz", timeout=5) as response:
        assert response.status == 200
    with urllib.request.urlopen(base + "/readyz", timeout=5) as response:
        assert response.read() == b"ready\n"
    with urllib.request.urlopen(base + "/", timeout=5) as response:
        assert b"otlp_bridge" in response.read()
