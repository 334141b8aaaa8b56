"""logger=mlflow: a local store under the experiment's logs dir; report directories logged as artifacts
(MLflow, and Comet's offline archive)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from lightning.pytorch.loggers import CSVLogger

from kronos.lightning.comet import end_comet_runs, make_comet_logger
from kronos.lightning.tracking import log_report_artifacts, make_mlflow_logger
from kronos.train import train

mlflow = pytest.importorskip("mlflow")


def _client(store: Path) -> "mlflow.MlflowClient":
    return mlflow.MlflowClient(tracking_uri=store.resolve().as_uri())


def test_training_run_is_tracked_in_the_experiment_dir(make_cfg, monkeypatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = make_cfg("stage=tokenizer", "logger=mlflow", "trainer.log_every_n_steps=1")
    assert cfg.logger.mlflow.tracking_uri == f"file:{cfg.run_dir}/logs/mlflow"
    out = train(cfg)

    store = Path(out["run_dir"]) / "logs" / "mlflow"
    client = _client(store)
    experiment = client.get_experiment_by_name("t")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "tokenizer" and run.info.status == "FINISHED"
    history = client.get_metric_history(run.info.run_id, "val/loss")
    assert history and all(m.value > 0 for m in history)
    assert client.get_metric_history(run.info.run_id, "train/loss_step")
    assert run.data.params["model/finetune/mode"] == "full"
    assert run.data.params["data/lookback"] == "24"


def test_report_directory_is_logged_as_artifacts(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    report = tmp_path / "outputs" / "t" / "backtest"
    (report / "plots").mkdir(parents=True)
    (report / "metrics.json").write_text(json.dumps({"ic": 0.05}))
    (report / "report.html").write_text("<html></html>")
    (report / "plots" / "equity.png").write_bytes(b"\x89PNG fake")
    store = tmp_path / "outputs" / "t" / "logs" / "mlflow"

    mlf = make_mlflow_logger("t", "backtest", f"file:{store}")
    csv = CSVLogger(tmp_path / "csv")
    assert log_report_artifacts([csv, mlf], report) == ["MLFlowLogger"]
    mlf.finalize("success")

    client = _client(store)
    listed = {a.path for a in client.list_artifacts(mlf.run_id, "backtest")}
    assert listed == {"backtest/metrics.json", "backtest/report.html", "backtest/plots"}
    assert [a.path for a in client.list_artifacts(mlf.run_id, "backtest/plots")] == ["backtest/plots/equity.png"]
    local = Path(client.download_artifacts(mlf.run_id, "backtest/metrics.json", str(tmp_path)))
    assert json.loads(local.read_text()) == {"ic": 0.05}

    with pytest.raises(FileNotFoundError, match="missing"):
        log_report_artifacts([mlf], tmp_path / "missing")


def test_backtest_with_mlflow_logs_headline_metrics_and_report(make_cfg, monkeypatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    train(make_cfg("stage=all", "stage.run=[tokenizer,predictor]", "trainer.fast_dev_run=true"))
    out = train(make_cfg("stage=backtest", "logger=mlflow"))

    client = _client(Path(out["run_dir"]) / "logs" / "mlflow")
    (run,) = client.search_runs([client.get_experiment_by_name("t").experiment_id])
    assert run.info.run_name == "backtest" and run.info.status == "FINISHED"
    assert run.data.metrics["backtest/model_rank_ic"] == pytest.approx(
        out["backtest"]["model"]["ic"][out["backtest"]["headline_label"]]["rank_ic"]
    )
    logged = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "backtest")}
    on_disk = {p.name for p in (Path(out["run_dir"]) / "backtest").iterdir()}
    assert "metrics.json" in logged and logged == on_disk


def test_report_directory_goes_into_the_comet_offline_archive(tmp_path: Path, monkeypatch) -> None:
    for key in ("COMET_API_KEY", "COMET_WORKSPACE", "COMET_PROJECT_NAME"):
        monkeypatch.delenv(key, raising=False)
    report = tmp_path / "evaluate"
    report.mkdir()
    (report / "metrics.json").write_text(json.dumps({"mase": 0.9}))
    (report / "per_origin.csv").write_text("origin,mae\n2024-01-02,0.1\n")
    comet = make_comet_logger(None, None, "kronos", "t-evaluate", str(tmp_path / "comet"))
    assert log_report_artifacts([comet], report) == ["_OfflineCapableCometLogger"]
    end_comet_runs([comet])

    (archive,) = (tmp_path / "comet").glob("*.zip")
    with zipfile.ZipFile(archive) as zf:
        payload = {zf.read(n) for n in zf.namelist()}
    assert json.dumps({"mase": 0.9}).encode() in payload
    assert b"origin,mae\n2024-01-02,0.1\n" in payload
