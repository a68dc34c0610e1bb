"""JSON answers that are always valid JSON: NaN and ±Infinity (which `json.dumps` writes by default,
and no JSON parser accepts) become null, and each one replaced is counted."""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)


def _finite(value: Any, replaced: list[int]) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        replaced[0] += 1
        return None
    if isinstance(value, dict):
        return {k: _finite(v, replaced) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v, replaced) for v in value]
    return value


def dumps(document: Any) -> tuple[str, int]:
    """`document` as JSON text, and how many non-finite numbers became null."""
    try:
        return json.dumps(document, allow_nan=False), 0
    except ValueError:  # only now walk it: the common case costs one dumps
        replaced = [0]
        return json.dumps(_finite(document, replaced), allow_nan=False), replaced[0]


def json_response(document: Any, omitted: Counter[tuple[str, str]], endpoint: str) -> web.Response:
    text, replaced = dumps(document)
    if replaced:
        if not omitted[endpoint, "non_finite_json"]:  # a line the first time, the counter after
            log.warning("%s had %d non-finite numbers; answered null (otlp_bridge_exposition_omitted_total)",
                        endpoint, replaced)
        omitted[endpoint, "non_finite_json"] += replaced
    return web.Response(text=text, content_type="application/json")
