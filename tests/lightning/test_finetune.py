"""Fine-tuning modes (model.finetune): full with layer-wise lr decay, freeze, LoRA through peft."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from kronos import Kronos, KronosTokenizer
from kronos.lightning.finetune import (
    FinetuneConfigError,
    FinetuneSettings,
    LoraSettings,
    add_lora,
    apply_finetune,
    depth_levels,
    published_copy,
)
from kronos.lightning.predictor_training import PredictorModule
from kronos.lightning.schedules import warmup_cosine
from kronos.lightning.tokenizer_training import TokenizerModule
from kronos.train import train
from tests.conftest import TINY_PREDICTOR_CONFIG, TINY_TOKENIZER_CONFIG

CLASSES = {"tokenizer": KronosTokenizer, "predictor": Kronos}
ADAPTED = ("q_proj", "k_proj", "v_proj", "out_proj", "w1", "w2", "w3")


def _info(path: Path) -> dict:
    return json.loads((path / "training_info.json").read_text())


def _pretrained(tiny_pair: tuple[Path, Path]) -> list[str]:
    tok, pred = tiny_pair
    return [f"model.tokenizer.pretrained={tok}", f"model.predictor.pretrained={pred}"]


def _batch(seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    stamp = torch.stack([torch.randint(0, n, (3, 20), generator=gen) for n in (60, 24, 7, 28, 12)], dim=-1)
    return {"x": torch.randn(3, 20, 6, generator=gen), "stamp": stamp}


def _predictor_logits(model: torch.nn.Module, tokenizer: KronosTokenizer, batch: dict) -> tuple[torch.Tensor, ...]:
    """Teacher-forced (s1, s2) logits [B, T-1, V] of ``model`` on ``batch`` tokenised by ``tokenizer``."""
    with torch.no_grad():
        s1, s2 = tokenizer.encode(batch["x"], half=True)
        return model(s1[:, :-1], s2[:, :-1], batch["stamp"][:, :-1], use_teacher_forcing=True, s1_targets=s1[:, 1:])


# ---------------------------------------------------------------- settings and unit behaviour


def test_code_defaults_equal_config_defaults() -> None:
    from tests.lightning.conftest import compose_config

    for model in ("tiny", "small"):
        cfg = compose_config([f"model={model}"])
        assert FinetuneSettings.from_config(cfg.model.finetune) == FinetuneSettings()


@pytest.mark.parametrize(
    ("finetune", "message"),
    [
        ({"mode": "adapters"}, "model.finetune.mode='adapters'"),
        ({"mode": "full", "layer_decay": 1.5}, "model.finetune.layer_decay=1.5"),
        ({"mode": "lora", "layer_decay": 0.8}, "layer_decay is an option of mode=full"),
        ({"mode": "lora", "lora": {"r": 0}}, "model.finetune.lora.r=0"),
        ({"mode": "lora", "lora": {"rank": 4}}, r"model.finetune.lora has unknown keys \['rank'\]"),
        ({"mode": "full", "freez": []}, r"unknown keys \['freez'\]"),
    ],
)
def test_bad_settings_name_the_key(finetune: dict, message: str) -> None:
    with pytest.raises(FinetuneConfigError, match=message):
        FinetuneSettings.from_config(finetune)


def test_bad_targets_name_what_the_model_has() -> None:
    model = Kronos(**TINY_PREDICTOR_CONFIG)
    with pytest.raises(FinetuneConfigError, match=r"target_modules \['qkv'\].*'q_proj'"):
        add_lora(model, LoraSettings(target_modules=("q_proj", "qkv")))
    module = PredictorModule(KronosTokenizer(**TINY_TOKENIZER_CONFIG), model, partial(torch.optim.AdamW, lr=1e-3))
    with pytest.raises(FinetuneConfigError, match="froze nothing in Kronos.*transformer.0"):
        apply_finetune(module, {"mode": "freeze", "freeze": ["encoder*"], "freeze_first_n_blocks": 0})
    with pytest.raises(FinetuneConfigError, match="freeze_first_n_blocks=5 but Kronos has 2 blocks"):
        apply_finetune(module, {"mode": "freeze", "freeze_first_n_blocks": 5})
    assert all(p.requires_grad for p in model.parameters())  # a refused setting leaves the model as it was


def _tokenizer_module(lr: float = 1e-3) -> TokenizerModule:
    torch.manual_seed(0)
    return TokenizerModule(KronosTokenizer(**TINY_TOKENIZER_CONFIG), partial(torch.optim.AdamW, lr=lr))


def test_depth_levels_follow_forward_order() -> None:
    levels, blocks, top = depth_levels(Kronos(**TINY_PREDICTOR_CONFIG))
    assert blocks == ["transformer.0", "transformer.1"]
    assert levels["embedding"] == levels["time_emb"] == 0
    assert (levels["transformer.0"], levels["transformer.1"]) == (1, 2)
    assert levels["norm"] == levels["dep_layer"] == levels["head"] == top == 3
    levels, blocks, top = depth_levels(KronosTokenizer(**TINY_TOKENIZER_CONFIG))
    assert blocks == ["encoder.0", "decoder.0"]
    assert levels["embed"] < levels["encoder.0"] < levels["quant_embed"] == levels["post_quant_embed"]
    assert levels["post_quant_embed"] < levels["decoder.0"] < levels["head"] == top


def test_layer_decay_scales_lr_by_depth_and_survives_the_schedule() -> None:
    lr, decay = 1e-3, 0.5
    module = apply_finetune(_tokenizer_module(lr), {"mode": "full", "layer_decay": decay})
    optimizer = module.configure_optimizers()
    levels, _, top = depth_levels(module.model)
    grouped = [p for g in optimizer.param_groups for p in g["params"]]
    assert len(grouped) == len(set(map(id, grouped))) == len(list(module.model.parameters()))
    for group in optimizer.param_groups:
        assert group["lr"] == pytest.approx(lr * decay ** (top - group["depth"]))
    head = next(g for g in optimizer.param_groups if g["depth"] == top)
    assert any(p is module.model.head.weight for p in head["params"])
    embed = next(g for g in optimizer.param_groups if g["depth"] == 0)
    assert embed["lr"] == pytest.approx(lr * decay**top) and any(p is module.model.embed.weight for p in embed["params"])

    schedule = warmup_cosine(optimizer, total_steps=20)
    for _ in range(7):
        optimizer.step()
        schedule.step()
    lrs = [g["lr"] for g in optimizer.param_groups]
    for group, value in zip(optimizer.param_groups, lrs):
        assert value / lrs[-1] == pytest.approx(decay ** (top - group["depth"]))


def test_full_mode_without_decay_is_one_group_of_every_weight() -> None:
    module = apply_finetune(_tokenizer_module(), None)
    optimizer = module.configure_optimizers()
    assert len(optimizer.param_groups) == 1
    assert len(optimizer.param_groups[0]["params"]) == len(list(module.model.parameters()))
    assert optimizer.param_groups[0]["lr"] == 1e-3


def test_lora_merged_copy_has_published_keys_and_same_outputs() -> None:
    torch.manual_seed(0)
    tokenizer = KronosTokenizer(**TINY_TOKENIZER_CONFIG).eval()
    base = Kronos(**TINY_PREDICTOR_CONFIG)
    published_keys = set(base.state_dict())
    adapted = add_lora(base, LoraSettings(r=4, alpha=8, dropout=0.0, modules_to_save=("head",))).eval()
    with torch.no_grad():  # peft starts B at zero (a no-op adapter): make the adapters do something
        for name, param in adapted.named_parameters():
            if "lora_B" in name or "modules_to_save" in name:
                param.add_(torch.randn_like(param) * 0.05)
    batch = _batch()
    expected = _predictor_logits(adapted, tokenizer, batch)

    merged = published_copy(adapted, adapted.state_dict())
    assert type(merged) is Kronos and set(merged.state_dict()) == published_keys
    for got, want in zip(_predictor_logits(merged.eval(), tokenizer, batch), expected):
        torch.testing.assert_close(got, want)
    # the adapted model itself is untouched (training goes on after an export)
    assert any("lora_A" in name for name, _ in adapted.named_parameters())


# ---------------------------------------------------------------- through train(): export, freeze, resume


def test_freeze_keeps_frozen_weights_bitwise(make_cfg, tiny_pair: tuple[Path, Path]) -> None:
    out = train(make_cfg(
        "stage=all", "stage.run=[tokenizer,predictor]", *_pretrained(tiny_pair),
        "model.finetune.mode=freeze", "model.finetune.freeze_first_n_blocks=1", "model.finetune.layer_decay=0.7",
    ))
    frozen_prefixes = {"tokenizer": ("embed.", "encoder.0."), "predictor": ("embedding.", "time_emb.", "transformer.0.")}
    for kind, start in zip(("tokenizer", "predictor"), tiny_pair):
        before = load_file(str(start / "model.safetensors"))
        after = load_file(str(Path(out[kind]) / "model.safetensors"))
        assert before.keys() == after.keys()
        frozen = [k for k in before if k.startswith(frozen_prefixes[kind])]
        trained = [k for k in before if not k.startswith(frozen_prefixes[kind])]
        assert frozen and all(torch.equal(before[k], after[k]) for k in frozen), kind
        assert any(not torch.equal(before[k], after[k]) for k in trained), f"{kind}: nothing trained"
        info = _info(Path(out[kind]))
        params = dict(CLASSES[kind].from_pretrained(start).named_parameters())
        assert info["parameters"] == sum(p.numel() for p in params.values())
        assert info["trainable_parameters"] == sum(
            p.numel() for k, p in params.items() if not k.startswith(frozen_prefixes[kind])
        )
        assert info["finetune"] == {
            "mode": "freeze", "layer_decay": 0.7, "freeze": ["embed", "embedding", "time_emb"],
            "freeze_first_n_blocks": 1,
        }


def test_lora_export_is_published_and_equals_the_adapted_model(make_cfg, tiny_pair: tuple[Path, Path]) -> None:
    out = train(make_cfg(
        "stage=all", "stage.run=[tokenizer,predictor]", *_pretrained(tiny_pair),
        "model.finetune.mode=lora", "model.finetune.lora.r=4", "model.finetune.lora.dropout=0.0",
    ))
    for kind, start in zip(("tokenizer", "predictor"), tiny_pair):
        exported = Path(out[kind])
        before = load_file(str(start / "model.safetensors"))
        after = load_file(str(exported / "model.safetensors"))
        assert after.keys() == before.keys()  # no base_model.model. prefixes, no lora tensors
        assert json.loads((exported / "config.json").read_text()) == json.loads((start / "config.json").read_text())
        adapted = {k for k in before if k.rsplit(".", 2)[-2] in ADAPTED and k.endswith(".weight")}
        assert any(not torch.equal(before[k], after[k]) for k in adapted), f"{kind}: adapters merged nothing"
        assert all(torch.equal(before[k], after[k]) for k in before if k not in adapted), kind
        info = _info(exported)
        assert info["finetune"]["mode"] == "lora" and info["finetune"]["lora"]["r"] == 4
        assert info["parameters"] == sum(p.numel() for p in CLASSES[kind].from_pretrained(exported).parameters())
        assert 0 < info["trainable_parameters"] < info["parameters"] / 4

    # The export (reference classes, from_pretrained) equals the adapted model of the best checkpoint.
    tokenizer = KronosTokenizer.from_pretrained(out["tokenizer"])
    merged = Kronos.from_pretrained(out["predictor"])
    ckpt = torch.load(Path(out["run_dir"]) / "checkpoints" / "predictor" / "best.ckpt", map_location="cpu",
                      weights_only=False)
    adapted = add_lora(Kronos.from_pretrained(tiny_pair[1]), LoraSettings(r=4, dropout=0.0))
    adapted.load_state_dict({k[len("model."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")})
    batch = _batch(1)
    for got, want in zip(_predictor_logits(merged, tokenizer, batch), _predictor_logits(adapted.eval(), tokenizer, batch)):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize(
    "mode",
    [
        ["model.finetune.mode=lora"],
        ["model.finetune.mode=freeze"],
        ["model.finetune.mode=full", "model.finetune.layer_decay=0.5"],
    ],
    ids=["lora", "freeze", "full+layer_decay"],
)
def test_every_mode_resumes_from_its_checkpoint(make_cfg, tiny_pair: tuple[Path, Path], mode: list[str]) -> None:
    run = ["stage=predictor", *_pretrained(tiny_pair), *mode]
    first = train(make_cfg(*run, "trainer.max_epochs=1"))
    steps = _info(Path(first["predictor"]))["global_step"]
    last = Path(first["run_dir"]) / "checkpoints" / "predictor" / "last.ckpt"
    ckpt = torch.load(last, map_location="cpu", weights_only=False)
    groups = [len(g["params"]) for g in ckpt["optimizer_states"][0]["param_groups"]]
    if "model.finetune.mode=lora" in mode:  # the trained adapters are what the checkpoint carries
        assert any("lora_B" in k and v.abs().sum() > 0 for k, v in ckpt["state_dict"].items())

    resumed = train(make_cfg(*run, "trainer.max_epochs=2", "ckpt_path=last"))
    info = _info(Path(resumed["predictor"]))
    assert info["global_step"] == 2 * steps
    assert info["finetune"]["mode"] == mode[0].split("=")[1]
    Kronos.from_pretrained(resumed["predictor"])
    ckpt = torch.load(last, map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 2 * steps
    assert [len(g["params"]) for g in ckpt["optimizer_states"][0]["param_groups"]] == groups


def test_bad_mode_stops_before_training(make_cfg) -> None:
    from kronos.errors import KronosUserError

    cfg = make_cfg("stage=tokenizer", "model.finetune.mode=adapter")
    with pytest.raises(FinetuneConfigError, match="model.finetune.mode='adapter'"):
        train(cfg)
    assert not (Path(cfg.run_dir) / "checkpoints").exists() and not (Path(cfg.run_dir) / "tokenizer").exists()
    assert issubclass(FinetuneConfigError, KronosUserError)  # the CLI prints it as one line, exit status 2


@pytest.mark.slow
@pytest.mark.realdata
def test_compare_script_on_csi300(data_dir: Path, tmp_path: Path, capsys) -> None:
    """scripts/compare_finetune.py end to end on the CSI300 CSV, smallest settings (about a minute)."""
    import importlib.util
    import sys

    from tests.conftest import REPO_ROOT

    spec = importlib.util.spec_from_file_location("compare_finetune", REPO_ROOT / "scripts" / "compare_finetune.py")
    script = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = script  # Hydra instantiates the script's StepTimer by its module name
    spec.loader.exec_module(script)
    argv = ["--data", str(data_dir / script.CSI300_CSV), "--output-root", str(tmp_path), "--stages", "predictor",
            "--variants", "full,lora", "--pretrain-epochs", "1", "--pretrain-batches", "3", "--epochs", "1",
            "--train-batches", "3", "--val-batches", "2"]
    assert script.main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    full, lora = result["rows"]
    assert (full["variant"], lora["variant"]) == ("full", "lora")
    assert full["trainable_parameters"] == full["parameters"] == lora["parameters"]
    assert 0 < lora["trainable_parameters"] < full["parameters"] / 5
    assert full["val_loss_pretrained"] == lora["val_loss_pretrained"] > 0  # one starting point for both rows
    assert all(r["steps"] == 3 and r["step_ms_median"] > 0 and r["val_loss_best"] > 0 for r in result["rows"])
    assert json.loads((tmp_path / "results.json").read_text())["rows"] == result["rows"]


@pytest.mark.slow
def test_torchrun_two_process_lora(tmp_path: Path, tiny_pair: tuple[Path, Path]) -> None:
    """LoRA under DDP (gloo, two processes): frozen base weights are no obstacle; rank zero exports merged."""
    import os
    import subprocess

    from tests.conftest import REPO_ROOT
    from tests.lightning.conftest import FAST

    env = {**{k: v for k, v in os.environ.items() if not k.startswith("COMET_")},
           "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "1"}
    cmd = ["torchrun", "--standalone", "--nproc_per_node=2", "-m", "kronos.train", f"output_root={tmp_path / 'out'}",
           "name=s", *FAST, "stage=predictor", "trainer=ddp_cpu", *_pretrained(tiny_pair), "model.finetune.mode=lora"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    exported = tmp_path / "out" / "s" / "predictor"
    info = _info(exported)
    assert info["world_size"] == 2 and info["finetune"]["mode"] == "lora"
    assert load_file(str(exported / "model.safetensors")).keys() == load_file(str(tiny_pair[1] / "model.safetensors")).keys()
