"""`otlp-bridge serve|env|check`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from otlp_bridge import __version__
from otlp_bridge.app import serve
from otlp_bridge.config import ConfigError, load_settings
from otlp_bridge.store.persist import SqliteState, StateError


def _serve(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"otlp-bridge: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("otlp_bridge")
    if args.fresh_state:
        aside = SqliteState.move_aside(settings.state.dir)
        if aside is not None:
            log.warning("starting with empty state; the old state file is kept as %s", aside)
    try:
        asyncio.run(serve(settings))
    except (OSError, StateError) as exc:
        log.error("cannot start: %s", exc)
        return 1
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="otlp-bridge", description=__doc__)
    root.add_argument("--version", action="version", version=f"otlp-bridge {__version__}")
    commands = root.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="receive OTLP and serve Prometheus metrics")
    serve_cmd.add_argument("--config", help="TOML config file (default: $OTLP_BRIDGE_CONFIG)")
    serve_cmd.add_argument("--fresh-state", action="store_true",
                           help="move an existing (e.g. corrupt) state file aside and start from zero")
    serve_cmd.set_defaults(run=_serve)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.run(args))
