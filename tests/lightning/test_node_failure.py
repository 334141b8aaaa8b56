"""Node failure: a two-node torchrun run (one rank per node, one working directory) loses a node
mid-epoch; both nodes relaunched with ckpt_path=last resume from the last checkpoint and finish, on the
memory-mapped store built once before the kill (issue 20)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import torch

from kronos import KronosTokenizer
from tests.lightning.test_scale_out import _cmd, _env

EPOCHS, BATCHES = 80, 4  # per rank; the relaunch must end at EPOCHS * BATCHES optimizer steps


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _launch(tmp_path: Path, node_rank: int, port: int, log: Path) -> subprocess.Popen:
    """One node: ``torchrun --nnodes=2 --nproc_per_node=1`` in its own process group (killable whole)."""
    cmd = ["torchrun", "--nnodes=2", "--nproc_per_node=1", f"--node_rank={node_rank}", "--master_addr=127.0.0.1",
           f"--master_port={port}", "-m", "kronos.train",
           *_cmd(tmp_path, "stage=tokenizer", "trainer=ddp_cpu", "data/store=mmap",
                 f"data.store.dir={tmp_path / 'store'}", f"trainer.max_epochs={EPOCHS}",
                 f"trainer.limit_train_batches={BATCHES}", "callbacks.early_stopping=null", "ckpt_path=last")]
    with open(log, "w") as out:
        return subprocess.Popen(cmd, cwd=tmp_path, env=_env(), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Linux /proc): torchrun starts its workers in sessions of their own,
    so killing the agent's process group alone would leave the rank running."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return [pid]
    return [pid] + [q for c in children for q in _tree(int(c))]


def _kill_node(proc: subprocess.Popen) -> None:
    """SIGKILL a node: its torchrun agent, the agent's process group and every worker below it."""
    pids = _tree(proc.pid)
    for pid in pids:
        for kill in (lambda: os.killpg(os.getpgid(pid), signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
            try:
                kill()
            except (ProcessLookupError, PermissionError):
                pass
    proc.wait(timeout=30)


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            _kill_node(p)


def _step(path: Path) -> int:
    try:
        return int(torch.load(path, map_location="cpu", weights_only=False)["global_step"])
    except Exception:  # noqa: BLE001 - absent or mid-write: try again
        return 0


def _stores(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir())


@pytest.mark.slow
def test_two_nodes_one_killed_mid_epoch_resume_from_last_checkpoint(tmp_path: Path) -> None:
    last = tmp_path / "outputs" / "s" / "checkpoints" / "tokenizer" / "last.ckpt"
    port = _free_port()
    nodes = [_launch(tmp_path, rank, port, tmp_path / f"node{rank}_a.log") for rank in (0, 1)]
    try:
        deadline, step_at_kill = time.time() + 150, 0
        while time.time() < deadline and all(p.poll() is None for p in nodes):
            step_at_kill = _step(last) if last.is_file() else 0
            if step_at_kill >= 2 * BATCHES:
                break
            time.sleep(0.3)
        logs = "".join((tmp_path / f"node{r}_a.log").read_text()[-2000:] for r in (0, 1))
        assert all(p.poll() is None for p in nodes), f"a node ended before the kill:\n{logs}"
        assert step_at_kill >= 2 * BATCHES, f"no checkpoint within the time limit:\n{logs}"
        store_before = _stores(tmp_path / "store")
        meta_before = next((tmp_path / "store").glob("*/meta.json")).stat()
        _kill_node(nodes[1])  # node 1: its torchrun agent and its rank, mid-epoch
        try:  # node 0 loses its peer; it fails (or is taken down, as a scheduler would)
            nodes[0].wait(timeout=90)
        except subprocess.TimeoutExpired:
            pass
    finally:
        _stop(nodes)
    assert not (tmp_path / "outputs" / "s" / "tokenizer").exists()  # nothing exported by the killed run
    assert _step(last) < EPOCHS * BATCHES

    port = _free_port()
    nodes = [_launch(tmp_path, rank, port, tmp_path / f"node{rank}_b.log") for rank in (0, 1)]
    try:
        for p in nodes:
            p.wait(timeout=300)
    finally:
        _stop(nodes)
    logs = {r: (tmp_path / f"node{r}_b.log").read_text() for r in (0, 1)}
    assert [p.returncode for p in nodes] == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    assert "Restoring states from the checkpoint" in logs[0] + logs[1] or "Restored" in logs[0] + logs[1]
    info = json.loads((tmp_path / "outputs" / "s" / "tokenizer" / "training_info.json").read_text())
    assert info["global_step"] == EPOCHS * BATCHES and info["num_nodes"] == 2 and info["world_size"] == 2
    KronosTokenizer.from_pretrained(tmp_path / "outputs" / "s" / "tokenizer")
    # One store, built before the kill and reused by the relaunch (not rebuilt), nothing half-built left.
    assert _stores(tmp_path / "store") == store_before and len(store_before) == 1
    meta_after = next((tmp_path / "store").glob("*/meta.json")).stat()
    assert (meta_after.st_ino, meta_after.st_mtime_ns) == (meta_before.st_ino, meta_before.st_mtime_ns)
    assert not list((tmp_path / "store").glob(".*.tmp-*"))
