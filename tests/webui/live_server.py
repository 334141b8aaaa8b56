"""Start the real web UI (``python -m kronos.webui``) in a subprocess on a free loopback port."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Iterator

from tests.conftest import REPO_ROOT

STARTUP_TIMEOUT_S = 60.0


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_server(outputs_dir: Path, data_dir: Path, extra_args: tuple[str, ...] = ()) -> Iterator[tuple[str, int]]:
    """Yield (base_url, port) of a server started with default host; stop it (our own process only) afterwards."""
    with running_server_process(outputs_dir, data_dir, extra_args) as (base, port, _):
        yield base, port


@contextlib.contextmanager
def running_server_process(
    outputs_dir: Path, data_dir: Path, extra_args: tuple[str, ...] = ()
) -> Iterator[tuple[str, int, subprocess.Popen]]:
    """Like running_server, also yielding the server's own Popen (to signal it)."""
    port = free_port()
    cmd = [sys.executable, "-m", "kronos.webui", "--port", str(port),
           "--outputs-dir", str(outputs_dir), "--data-dir", str(data_dir), *extra_args]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    # A file, not a pipe: an unread pipe would fill up with access logs and stall the server.
    log = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"web UI exited with {proc.returncode}:\n{log.read()}")
            try:
                with urllib.request.urlopen(f"{base}/api/models", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"web UI did not answer on {base} within {STARTUP_TIMEOUT_S} s") from None
                time.sleep(0.2)
        yield base, port, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
