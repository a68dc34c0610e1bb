"""`otlp-bridge serve|env|check`."""

from __future__ import annotations

import argparse
import asyncio
import base64
import logging
import os
import sys
from collections.abc import Sequence
from typing import get_args

# gRPC's core would print its own line (and a C++ source location) for a port in use, next to ours;
# read once, when grpc is first imported. GRPC_VERBOSITY=ERROR in the environment brings it back.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

from otlp_bridge import __version__
from otlp_bridge.app import serve
from otlp_bridge.check import run_check
from otlp_bridge.client_env import Agent, Shell, agent_setup, default_endpoint, reachable
from otlp_bridge.config import ConfigError, Settings, load_settings
from otlp_bridge.health import check_health
from otlp_bridge.logs import configure
from otlp_bridge.startup import SettingError
from otlp_bridge.store.persist import SqliteState, StateError
from otlp_bridge.store.statedir import StateDirError, start_fresh
from otlp_bridge.transcripts.command import add_import_command


def _serve(args: argparse.Namespace) -> int:
    """Run the bridge; a start-up failure is one line naming the setting to change, and exit code 2."""
    settings = _defaults(args)
    if settings is None:
        return 2
    configure(settings.log_level, settings.log_format)
    log = logging.getLogger("otlp_bridge")
    try:
        if args.fresh_state:
            aside = start_fresh(settings.state.dir, SqliteState.move_aside)  # under the directory's lock
            if aside is not None:
                log.warning("starting with empty state; the old state file is kept as %s", aside)
        asyncio.run(serve(settings))
    except (SettingError, StateError, OSError) as exc:
        problem = _state_dir_problem(exc, settings) if isinstance(exc, OSError) else exc
        log.error("cannot start: %s", problem, extra={"setting": getattr(problem, "setting", None)})
        return 2
    return 0


def _state_dir_problem(exc: OSError, settings: Settings) -> Exception:
    """The state directory's refusal, or an OS error about a path under it, is `state.dir`'s problem;
    any other stays as it is."""
    state_dir = settings.state.dir
    if isinstance(exc, StateDirError):
        return SettingError("state.dir", state_dir, str(exc))
    if exc.filename is not None and str(exc.filename).startswith(str(state_dir)):
        return SettingError("state.dir", state_dir, f"{exc.strerror or exc} ({exc.filename}); choose a directory "
                            "this user can create and write")
    return exc


def _defaults(args: argparse.Namespace) -> Settings | None:
    try:
        return load_settings(args.config)
    except ConfigError as exc:
        print(f"otlp-bridge: {exc}", file=sys.stderr)
        return None


def _endpoint(args: argparse.Namespace, settings: Settings) -> str:
    server = settings.server
    return args.endpoint or default_endpoint(args.protocol, server.host, server.grpc_port, server.http_port,
                                             tls=settings.tls.enabled)


def _env(args: argparse.Namespace) -> int:
    settings = _defaults(args)
    if settings is None:
        return 2
    endpoint = _endpoint(args, settings)
    if settings.auth.tokens and not args.token:
        print("otlp-bridge: warning: this config requires a token ([[auth.tokens]]); without --token every "
              "export will be refused (401 / UNAUTHENTICATED)", file=sys.stderr)
    try:
        sys.stdout.write(agent_setup(args.agent, args.protocol, endpoint, args.token, args.shell))
    except ValueError as exc:  # a protocol the agent cannot speak
        print(f"otlp-bridge: {exc}", file=sys.stderr)
        return 2
    return 0


def _metrics_auth(args: argparse.Namespace, settings: Settings) -> str | None:
    """The metrics port's Authorization value: --metrics-token or --metrics-user, else the config's [auth.metrics]."""
    given = settings.auth.metrics
    token = args.metrics_token or (given.bearer_token.get_secret_value() if given.bearer_token else None)
    pair = args.metrics_user
    if pair is None and not args.metrics_token and given.basic_username and given.basic_password:
        pair = f"{given.basic_username}:{given.basic_password.get_secret_value()}"
    if pair is not None and not args.metrics_token:
        return "Basic " + base64.b64encode(pair.encode()).decode()
    return f"Bearer {token}" if token else None


def _check(args: argparse.Namespace) -> int:
    settings = _defaults(args)
    if settings is None:
        return 2
    server = settings.server
    endpoint = _endpoint(args, settings)
    metrics_tls = settings.tls.enabled and settings.tls.metrics_port
    metrics_url = args.metrics_url or reachable(server.host, server.metrics_port, tls=metrics_tls) + "/metrics"
    result = run_check(endpoint, metrics_url, args.protocol, token=args.token,
                       metrics_auth=_metrics_auth(args, settings), wait=args.wait)
    print(result.message, file=sys.stdout if result.ok else sys.stderr)
    return 0 if result.ok else 1


def _health(args: argparse.Namespace) -> int:
    settings = _defaults(args)
    if settings is None:
        return 2
    healthy, seen = check_health(settings, args.timeout)
    print(seen, file=sys.stdout if healthy else sys.stderr)
    return 0 if healthy else 1


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="otlp-bridge", description=__doc__)
    root.add_argument("--version", action="version", version=f"otlp-bridge {__version__}")
    commands = root.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="receive OTLP and serve Prometheus metrics")
    serve_cmd.add_argument("--config", help="TOML config file (default: $OTLP_BRIDGE_CONFIG)")
    serve_cmd.add_argument("--fresh-state", action="store_true",
                           help="move an existing (e.g. corrupt) state file aside and start from zero")
    serve_cmd.set_defaults(run=_serve)

    protocols = ["grpc", "http/protobuf", "http/json"]
    env_cmd = commands.add_parser("env", help="print the variables that point Claude Code at this bridge")
    env_cmd.add_argument("--protocol", choices=protocols, default="grpc")
    env_cmd.add_argument("--endpoint", help="default: this bridge's address from the config")
    env_cmd.add_argument("--token", help="bearer token to send (see [[auth.tokens]])")
    env_cmd.add_argument("--shell", choices=list(get_args(Shell)), default="bash")
    env_cmd.add_argument("--config", help="TOML config file, for the default endpoint")
    env_cmd.add_argument("--agent", choices=list(get_args(Agent)), default="claude-code",
                         help="which coding agent to configure (codex: prints its config.toml table)")
    env_cmd.set_defaults(run=_env)

    check_cmd = commands.add_parser("check", help="send one export to a running bridge and find it on /metrics")
    check_cmd.add_argument("--protocol", choices=protocols, default="grpc")
    check_cmd.add_argument("--endpoint", help="OTLP endpoint; default from the config")
    check_cmd.add_argument("--metrics-url", help="default: http://HOST:METRICS_PORT/metrics from the config")
    check_cmd.add_argument("--token", help="bearer token for the OTLP port")
    check_cmd.add_argument("--metrics-token", help="bearer token for the metrics port (default: [auth.metrics])")
    check_cmd.add_argument("--metrics-user", metavar="USER:PASSWORD",
                           help="basic auth for the metrics port (default: [auth.metrics])")
    check_cmd.add_argument("--wait", type=float, default=5.0, help="seconds to wait for each step")
    check_cmd.add_argument("--config", help="TOML config file, for the default addresses")
    check_cmd.set_defaults(run=_check)

    health_cmd = commands.add_parser("health", help="exit 0 when this config's bridge answers /healthz")
    health_cmd.add_argument("--config", help="TOML config file (default: $OTLP_BRIDGE_CONFIG)")
    health_cmd.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the answer")
    health_cmd.set_defaults(run=_health)
    add_import_command(commands)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.run(args))
