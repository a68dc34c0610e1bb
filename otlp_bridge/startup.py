"""Start-up failures a valid config can still meet (a port in use, a TLS file that is not one), each
turned into one line that names the setting, its value and the cause, for `otlp-bridge serve` to print."""

from __future__ import annotations

import errno
import os
import socket
import ssl
from pathlib import Path

from otlp_bridge.config import TlsSettings


class SettingError(Exception):
    """A setting the machine refuses at start-up: `<setting> = <value>: <cause>`."""

    def __init__(self, setting: str, value: object, reason: str) -> None:
        super().__init__(f"{setting} = {value}: {reason}")
        self.setting = setting


_HINTS = {
    errno.EADDRINUSE: "another process is listening there (another bridge?); stop it or choose another port",
    errno.EACCES: "not allowed (ports below 1024 need privileges); choose a port above 1023",
    errno.EADDRNOTAVAIL: "server.host is not an address of this machine",
}


def _bind_errno(host: str, port: int) -> int | None:
    """Why the OS refuses (host, port), found by binding a plain socket the same way; gRPC does not say."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        return errno.EADDRNOTAVAIL
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do
        try:
            probe.bind(address)
        except OSError as exc:
            return exc.errno
    return None


def listen_failure(setting: str, host: str, port: int, exc: BaseException) -> SettingError:
    """A listener that could not bind, as the setting to change: its port, or `server.host`."""
    code = exc.errno if isinstance(exc, OSError) and exc.errno else _bind_errno(host, port)
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    cause = os.strerror(code).lower() if code else str(exc)
    if code in _HINTS:
        cause += f"; {_HINTS[code]}"
    if code == errno.EADDRNOTAVAIL:
        return SettingError("server.host", host, f"cannot listen on {where}: {cause}")
    return SettingError(setting, port, f"cannot listen on {where}: {cause}")


def tls_failure(tls: TlsSettings, exc: OSError) -> SettingError:
    """TLS files that cannot be loaded, named by the setting that points at them."""
    files = {"tls.cert_file": tls.cert_file, "tls.key_file": tls.key_file, "tls.client_ca_file": tls.client_ca_file}
    for setting, path in files.items():
        if path is not None and not _readable(path):
            return SettingError(setting, path, "cannot read it (missing, or no permission)")
    if tls.cert_file is not None and not _loads_as_certificate(tls.cert_file):
        return SettingError("tls.cert_file", tls.cert_file, "not a PEM certificate")
    if tls.client_ca_file is not None and not _loads_as_certificate(tls.client_ca_file):
        return SettingError("tls.client_ca_file", tls.client_ca_file, "not a PEM CA certificate")
    reason = exc.reason if isinstance(exc, ssl.SSLError) and exc.reason else str(exc)
    return SettingError("tls.key_file", tls.key_file, f"not the PEM private key of tls.cert_file ({reason})")


def _readable(path: Path) -> bool:
    try:
        with path.open("rb"):
            return True
    except OSError:
        return False


def _loads_as_certificate(path: Path) -> bool:
    try:
        ssl.create_default_context(cafile=str(path))
    except (ssl.SSLError, OSError):
        return False
    return True
