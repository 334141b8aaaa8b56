"""``python -m kronos.webui`` / ``kronos-webui``: serve the forecasting UI (uvicorn, no reload, no debugger).

The UI has no authentication: it is for the machine it runs on. It binds 127.0.0.1 by default; any
other ``--host`` prints a warning. The first SIGTERM/SIGINT cancels running forecasts (they stop at
their next decoding step) and the server exits without waiting for them.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Sequence

import uvicorn
from dotenv import find_dotenv, load_dotenv

from kronos.errors import KronosUserError
from kronos.inference.settings import DEFAULT_WORK_BUDGET
from kronos.webui.app import DEFAULT_MAX_CONCURRENT, DEFAULT_MAX_UPLOAD_BYTES, create_app
from kronos.webui.security import LOOPBACK_NAMES, host_name

DEFAULT_HOST = "127.0.0.1"  # local only: no authentication, so not for a network
DEFAULT_PORT = 7070
GRACEFUL_SHUTDOWN_S = 5  # backstop: cancelled forecasts end within a decoding step, far sooner


def build_parser() -> argparse.ArgumentParser:
    """Server options; the data directory defaults to $KRONOS_WEBUI_DATA_DIR, else ./data."""
    p = argparse.ArgumentParser(prog="kronos-webui", description="Kronos forecasting web UI (local, no authentication)")
    p.add_argument("--host", default=DEFAULT_HOST, help="interface to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--outputs-dir", default=os.environ.get("KRONOS_OUTPUT_ROOT", "outputs"),
                   help="where exported experiments live (<outputs>/<name>/..., default $KRONOS_OUTPUT_ROOT or "
                        "./outputs, as for training); any checkpoint directory inside it may be loaded")
    p.add_argument("--models-dir", default=None, help="a further directory whose checkpoints the page may load")
    p.add_argument(
        "--data-dir",
        default=os.environ.get("KRONOS_WEBUI_DATA_DIR", "data"),
        help="the folder whose CSV files the page lists (default $KRONOS_WEBUI_DATA_DIR or ./data)",
    )
    p.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_BYTES / 2**20, help="largest CSV upload")
    p.add_argument("--device", default=None, help="torch device for the models (default: the best available)")
    p.add_argument("--work-budget", type=int, default=DEFAULT_WORK_BUDGET,
                   help="cap on (history rows) x pred_len x samples of one forecast (0: no cap)")
    p.add_argument("--max-concurrent", type=int, default=DEFAULT_MAX_CONCURRENT, help="forecasts computed at once")
    p.add_argument("--allowed-host", action="append", default=[],
                   help="a further host name the server answers to (Host header), e.g. this machine's name")
    return p


class _Server(uvicorn.Server):
    """uvicorn's server, cancelling the app's forecasts on the first exit signal."""

    def __init__(self, config: uvicorn.Config, app: Any) -> None:
        super().__init__(config)
        self._app = app

    def handle_exit(self, sig: int, frame: Any) -> None:
        self._app.state.shutdown.set()
        super().handle_exit(sig, frame)


def allowed_hosts(host: str, extra: Sequence[str]) -> tuple[str, ...]:
    """Host names to accept: loopback names, the bound address unless a wildcard, and ``extra``."""
    names = list(LOOPBACK_NAMES)
    if host not in ("0.0.0.0", "::", ""):
        names.append(host_name(host))
    return tuple(dict.fromkeys([*names, *extra]))


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the options (after reading ``.env`` from the working directory) and serve until interrupted."""
    load_dotenv(find_dotenv(usecwd=True))
    args = build_parser().parse_args(argv)
    if host_name(args.host) not in LOOPBACK_NAMES:
        print(f"WARNING: binding {args.host}: the Kronos web UI has no authentication; anyone who can reach this "
              f"address can run forecasts and read the data directory. Prefer the default 127.0.0.1 "
              f"(e.g. through an SSH tunnel).", file=sys.stderr)
    try:
        app = create_app(args.outputs_dir, args.data_dir, int(args.max_upload_mb * 2**20), args.device,
                         models_dir=args.models_dir, work_budget=args.work_budget or None,
                         max_concurrent=args.max_concurrent, allowed_hosts=allowed_hosts(args.host, args.allowed_host))
    except (KronosUserError, ValueError) as err:
        print(f"kronos-webui: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"Kronos web UI on http://{args.host}:{args.port}  (outputs: {args.outputs_dir}, data: {args.data_dir})")
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="info",
                            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)
    _Server(config, app).run()


if __name__ == "__main__":
    main()
