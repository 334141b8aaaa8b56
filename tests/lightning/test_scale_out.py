"""Scale-out and safety: torchrun DDP on CPU, Hydra multirun, Comet offline, kill-and-resume, NaN guard."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch
import yaml

from kronos import KronosTokenizer
from kronos.experiment import Experiment
from kronos.lightning.base import NonFiniteLossError
from kronos.train import train
from tests.lightning.conftest import FAST

REPO = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMET_")}
    return {**env, "PYTHONPATH": str(REPO), "HYDRA_FULL_ERROR": "1", "OMP_NUM_THREADS": "1"}


def _cmd(tmp_path: Path, *overrides: str) -> list[str]:
    return [f"output_root={tmp_path / 'outputs'}", "name=s", *FAST, *overrides]


def _torchrun(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    cmd = ["torchrun", "--standalone", "--nproc_per_node=2", "-m", "kronos.train", *_cmd(tmp_path, *overrides)]
    return subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_torchrun_two_process_ddp_cpu(tmp_path: Path) -> None:
    """Two gloo processes: both stages stop at max_steps mid-epoch, validate, export once; a separate
    stage=backtest under torchrun writes its report from rank zero only."""
    proc = _torchrun(tmp_path, "stage=all", "stage.run=[tokenizer,predictor]", "trainer=ddp_cpu",
                     "trainer.max_steps=3", "trainer.max_epochs=5", "trainer.limit_train_batches=10")
    assert proc.returncode == 0, proc.stderr[-4000:]
    experiment = Experiment(tmp_path / "outputs" / "s")
    for kind in ("tokenizer", "predictor"):
        info = json.loads((experiment.export_dir(kind) / "training_info.json").read_text())
        assert info["world_size"] == 2 and info["strategy"] == "DDPStrategy"
        assert info["global_step"] == 3 and math.isfinite(info["best_validation"]["value"])
    KronosTokenizer.from_pretrained(experiment.tokenizer_dir)

    proc = _torchrun(tmp_path, "stage=backtest")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (proc.stdout + proc.stderr).count("backtest report written to") == 1
    assert json.loads((experiment.backtest_dir / "metrics.json").read_text())["weights"]["predictor"] == {
        "location": str(experiment.predictor_dir), "origin": "export"}


def test_hydra_multirun_over_two_values(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "kronos.train", "-m",
           *_cmd(tmp_path, "stage=tokenizer", "trainer.fast_dev_run=true", "optim.lr=1e-4,3e-4")]
    proc = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    sweeps = tmp_path / "outputs" / "s" / "sweeps"
    jobs = sorted(p for p in sweeps.iterdir() if p.is_dir())
    assert len(jobs) == 2  # one directory per job, so the jobs never overwrite each other
    lrs = sorted(json.loads((job / "tokenizer" / "training_info.json").read_text())["config"]["optim"]["lr"]
                 for job in jobs)
    assert lrs == [1e-4, 3e-4]


def test_comet_offline_archive_has_metrics(make_cfg, monkeypatch, tmp_path: Path) -> None:
    for key in ("COMET_API_KEY", "COMET_WORKSPACE", "COMET_PROJECT_NAME"):
        monkeypatch.delenv(key, raising=False)
    cfg = make_cfg("stage=tokenizer", "logger=comet")
    train(cfg)
    archives = list(Path(cfg.run_dir, "logs", "comet").glob("*.zip"))
    assert archives, "no offline Comet archive written"
    with zipfile.ZipFile(archives[0]) as zf:
        text = "\n".join(zf.read(n).decode("utf-8", "replace") for n in zf.namelist() if n.endswith(".json"))
    assert "train/loss" in text and "val/loss" in text


@pytest.mark.slow
def test_kill_and_resume(tmp_path: Path) -> None:
    """A run killed mid-way continues from last.ckpt when started again with ckpt_path=last."""
    args = _cmd(tmp_path, "stage=tokenizer", "trainer.max_epochs=40", "trainer.limit_train_batches=4",
                "callbacks.early_stopping=null", "ckpt_path=last")
    cmd = [sys.executable, "-m", "kronos.train", *args]
    last = tmp_path / "outputs" / "s" / "checkpoints" / "tokenizer" / "last.ckpt"
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        step_at_kill = 0
        while time.time() < deadline and proc.poll() is None:
            if last.is_file():
                try:
                    step_at_kill = torch.load(last, map_location="cpu", weights_only=False)["global_step"]
                except Exception:  # noqa: BLE001 - the file may be mid-write; try again
                    step_at_kill = 0
                if step_at_kill >= 8:
                    break
            time.sleep(0.5)
        assert proc.poll() is None, "the run finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert step_at_kill >= 8
    assert not (tmp_path / "outputs" / "s" / "tokenizer").exists()  # nothing exported by the killed run

    resumed = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert "Restored" in resumed.stderr + resumed.stdout or "Restoring" in resumed.stderr + resumed.stdout
    info = json.loads((tmp_path / "outputs" / "s" / "tokenizer" / "training_info.json").read_text())
    assert info["global_step"] == 40 * 4
    KronosTokenizer.from_pretrained(tmp_path / "outputs" / "s" / "tokenizer")


def test_nan_loss_stops_and_keeps_previous_export(make_cfg, monkeypatch) -> None:
    first = train(make_cfg("stage=tokenizer", "trainer.fast_dev_run=true"))
    export = Path(first["tokenizer"])
    before = (export / "model.safetensors").read_bytes()

    original = KronosTokenizer.compute_loss

    def nan_loss(self, x):  # noqa: ANN001, ANN202
        losses = original(self, x)
        losses["loss"] = losses["loss"] * float("nan")
        return losses

    monkeypatch.setattr(KronosTokenizer, "compute_loss", nan_loss)
    with pytest.raises(NonFiniteLossError, match="nan"):
        train(make_cfg("stage=tokenizer"))
    assert (export / "model.safetensors").read_bytes() == before


def test_optuna_sweep_over_lr_and_batch_size(tmp_path: Path) -> None:
    """The Optuna sweeper config runs trials that each train and report val/loss back; under stage=all
    every stage of a trial trains at the trial's optim.lr."""
    cmd = [sys.executable, "-m", "kronos.train", "-m", "hparams_search=optuna_lr_batch",
           "hydra.sweeper.n_trials=2", "hydra.sweeper.sampler.n_startup_trials=2",
           *_cmd(tmp_path, "stage=all", "stage.run=[tokenizer,predictor]", "trainer.limit_train_batches=2",
                 "trainer.limit_val_batches=1")]
    proc = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = list((tmp_path / "outputs" / "s" / "multirun").rglob("optimization_results.yaml"))
    assert results, "the Optuna sweeper wrote no optimization_results.yaml"
    text = results[0].read_text()
    assert "best_params" in text and "optim.lr" in text and "best_value" in text
    jobs = list((tmp_path / "outputs" / "s" / "sweeps").iterdir())
    assert len(jobs) == 2
    trained = set()
    for job in jobs:
        lrs = {json.loads((Experiment(job).export_dir(kind) / "training_info.json").read_text())["config"]["optim"]["lr"]
               for kind in ("tokenizer", "predictor")}
        assert len(lrs) == 1  # both stages of a trial train at one rate ...
        trained |= lrs
    suggested = {float(line.split("=", 1)[1]) for path in (tmp_path / "outputs" / "s" / "multirun").rglob("overrides.yaml")
                 for line in yaml.safe_load(path.read_text()) if line.startswith("optim.lr=")}
    assert trained == suggested and len(suggested) == 2  # ... the one Optuna suggested


@pytest.mark.slow
def test_torchrun_sweep_script_runs_one_ddp_job_per_override_set(tmp_path: Path) -> None:
    script = REPO / "scripts" / "torchrun_sweep.sh"
    cmd = ["bash", str(script), "2", "optim.lr=1e-4", "optim.lr=3e-4 data.batch_size=32", "--",
           *_cmd(tmp_path, "stage=tokenizer", "trainer=ddp_cpu")]
    proc = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    sweeps = tmp_path / "outputs" / "s" / "sweeps"
    found = {}
    for info_path in sweeps.glob("*/tokenizer/training_info.json"):
        info = json.loads(info_path.read_text())
        found[info_path.parts[-3]] = (info["world_size"], info["config"]["optim"]["lr"], info["config"]["data"]["batch_size"])
    assert found == {"optim.lr-1e-4": (2, 1e-4, 16), "optim.lr-3e-4_data.batch_size-32": (2, 3e-4, 32)}


@pytest.mark.slow
def test_torchrun_ddp_cpu_on_parquet_shares_one_memory_mapped_store(tmp_path: Path) -> None:
    """Two torchrun processes (trainer=ddp_cpu) on a fresh Parquet dataset build ONE store, both train on
    it, and neither rank's peak RSS is far above that of a single process on the same store."""
    work = tmp_path / "w"
    cmd = [sys.executable, str(REPO / "scripts" / "bench_data.py"), "--ddp", "--instruments", "40", "--rows", "200000",
           "--batches", "4", "--workdir", str(work), "--keep"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert len(result["store_dirs_on_disk"]) == 1
    store = str(work / "store" / result["store_dirs_on_disk"][0])
    ddp = result["runs"]["ddp2"]
    assert ddp["world_size"] == 2 and ddp["store"] == {"kind": "mmap", "path": store}
    assert sorted(r["rank"] for r in ddp["ranks"]) == [0, 1]
    assert {r["store"] for r in ddp["ranks"]} == {store} == {result["runs"]["single"]["ranks"][0]["store"]}
    assert not [p for p in (work / "store").iterdir() if ".tmp-" in p.name]  # no half-built store left behind
    assert all(ratio < 1.5 for ratio in result["ddp_peak_rss_over_single"]), result["ddp_peak_rss_over_single"]
