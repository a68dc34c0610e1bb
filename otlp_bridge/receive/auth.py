"""Bearer tokens for the OTLP transports; each token may stamp identity labels.

Tokens are compared by SHA-256 digest, so the config may hold the digest
instead of the secret. Header values are percent-decoded first: Claude Code
passes `OTEL_EXPORTER_OTLP_HEADERS` through unescaped (`Bearer%20tok`).
"""

from __future__ import annotations

import hashlib
import urllib.parse

from otlp_bridge.config import TokenSettings
from otlp_bridge.errors import ErrorKind, ExportError
from otlp_bridge.series import Labels
from otlp_bridge.translate.naming import label_name


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class TokenAuth:
    def __init__(self, tokens: list[TokenSettings]) -> None:
        self._labels: dict[bytes, Labels] = {}
        for entry in tokens:
            key = digest(entry.token.get_secret_value()) if entry.token else bytes.fromhex(entry.sha256 or "")
            self._labels[key] = tuple(sorted((label_name(k), v) for k, v in entry.labels.items()))

    @property
    def enabled(self) -> bool:
        return bool(self._labels)

    def identify(self, authorization: str | None) -> Labels:
        """The identity labels of a request's `Authorization` value; refuses a missing or unknown token."""
        if not self._labels:
            return ()
        if not authorization:
            raise ExportError(ErrorKind.UNAUTHENTICATED, "missing bearer token")
        scheme, _, token = urllib.parse.unquote(authorization).strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ExportError(ErrorKind.UNAUTHENTICATED, "expected 'Authorization: Bearer <token>'")
        labels = self._labels.get(digest(token.strip()))
        if labels is None:
            raise ExportError(ErrorKind.UNAUTHENTICATED, "unknown bearer token")
        return labels
