"""`otlp-bridge health`: exit 0 when the bridge this config describes answers /healthz.

The image's HEALTHCHECK: it reads the same config and environment as `serve`, so a moved metrics
port or TLS on the metrics port keeps the check right. It probes the process itself over loopback:
a certificate made for the public name would never match 127.0.0.1, so the TLS handshake is not
verified here (nothing secret is sent; /healthz needs no credentials).
"""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request

from otlp_bridge.config import Settings

_LOOPBACK = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def healthz_url(settings: Settings) -> str:
    server, tls = settings.server, settings.tls
    host = _LOOPBACK.get(server.host, server.host)
    scheme = "https" if tls.enabled and tls.metrics_port else "http"
    return f"{scheme}://{f'[{host}]' if ':' in host else host}:{server.metrics_port}/healthz"


def check_health(settings: Settings, timeout: float = 3.0) -> tuple[bool, str]:
    """(healthy, what was seen)."""
    url = healthz_url(settings)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:
            return response.status == 200, f"{url}: HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return False, f"{url}: HTTP {exc.code}"
    except OSError as exc:
        return False, f"{url}: {exc}"
