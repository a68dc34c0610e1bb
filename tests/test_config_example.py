"""Every commented example in config.example.toml works when uncommented where it stands, and the
examples agree with each other (a token's identity labels are what the budgets match)."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest

from otlp_bridge.config import Settings, load_settings

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.toml"


def _is_toml(line: str) -> bool:
    """A commented line that is TOML (a table header or a key = value), not prose."""
    if not line.startswith("# "):
        return False
    text = line[2:].strip()
    if text.startswith("[") and text.endswith("]"):
        return True
    try:
        return bool(tomllib.loads(text))
    except tomllib.TOMLDecodeError:
        return False


def _blocks(lines: list[str]) -> list[range]:
    """Line ranges of consecutive commented TOML lines: one example each."""
    out: list[range] = []
    start = None
    for number, line in enumerate([*lines, ""]):
        if _is_toml(line):
            start = number if start is None else start
        elif start is not None:
            out.append(range(start, number))
            start = None
    return out


LINES = EXAMPLE.read_text().splitlines()
BLOCKS = _blocks(LINES)


def _uncommented(blocks: list[range]) -> str:
    chosen = {number for block in blocks for number in block}
    return "\n".join(line[2:] if number in chosen else line for number, line in enumerate(LINES)) + "\n"


def _load(text: str, tmp_path: Path) -> Settings:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return load_settings(path)


@pytest.fixture(autouse=True)
def _no_env_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in os.environ:
        if key.startswith("OTLP_BRIDGE_"):
            monkeypatch.delenv(key)


def test_the_examples_are_found() -> None:
    headers = {LINES[block[0]] for block in BLOCKS}
    assert {"# [[budgets]]", '# [pricing."claude-sonnet-4-5"]', "# [[auth.tokens]]", "# [[remote_write]]"} <= headers
    assert len(BLOCKS) >= 6  # and the key-only ones: [auth.metrics], [tls]


@pytest.mark.parametrize("block", BLOCKS, ids=lambda block: LINES[block[0]][2:40])
def test_each_example_loads_uncommented_where_it_stands(block: range, tmp_path: Path) -> None:
    as_is = _load(EXAMPLE.read_text(), tmp_path)
    settings = _load(_uncommented([block]), tmp_path)
    assert settings != as_is, "uncommenting it changed nothing: it fell into another table"


def test_all_examples_together_agree(tmp_path: Path) -> None:
    settings = _load(_uncommented(BLOCKS), tmp_path)
    stamped = {name for token in settings.auth.tokens for name in token.labels}
    assert settings.budgets
    for budget in settings.budgets:
        assert set(budget.match) <= stamped, f"budget {budget.name} matches labels no token stamps"
    assert settings.budgets[0].match == {"team": "platform"}
    assert settings.auth.tokens[0].labels["team"] == "platform"
