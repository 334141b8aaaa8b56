"""``python -m kronos.webui`` / ``kronos-webui``: serve the forecasting UI (uvicorn, no reload, no debugger)."""

from __future__ import annotations

import argparse
import os
from typing import Sequence

import uvicorn
from dotenv import find_dotenv, load_dotenv

from kronos.webui.app import DEFAULT_MAX_UPLOAD_BYTES, create_app

DEFAULT_HOST = "127.0.0.1"  # local only: the UI loads arbitrary local checkpoint paths, so it is not for a network
DEFAULT_PORT = 7070


def build_parser() -> argparse.ArgumentParser:
    """Server options; the data directory defaults to $KRONOS_WEBUI_DATA_DIR, else ./data."""
    p = argparse.ArgumentParser(prog="kronos-webui", description="Kronos forecasting web UI")
    p.add_argument("--host", default=DEFAULT_HOST, help="interface to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--outputs-dir", default="outputs", help="where exported experiments live (outputs/<name>/{tokenizer,predictor})")
    p.add_argument(
        "--data-dir",
        default=os.environ.get("KRONOS_WEBUI_DATA_DIR", "data"),
        help="the folder whose CSV files the page lists (default $KRONOS_WEBUI_DATA_DIR or ./data)",
    )
    p.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_BYTES / 2**20, help="largest CSV upload")
    p.add_argument("--device", default=None, help="torch device for the models (default: the best available)")
    return p


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the options (after reading ``.env`` from the working directory) and serve until interrupted."""
    load_dotenv(find_dotenv(usecwd=True))
    args = build_parser().parse_args(argv)
    app = create_app(args.outputs_dir, args.data_dir, int(args.max_upload_mb * 2**20), args.device)
    print(f"Kronos web UI on http://{args.host}:{args.port}  (outputs: {args.outputs_dir}, data: {args.data_dir})")
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
