"""Published checkpoint format: key names, save/load round trip and every load error."""

from __future__ import annotations

import json
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch
from safetensors.torch import load_file, save_file

from kronos import Kronos, KronosTokenizer
from kronos.models import CheckpointError
from kronos.models.hub import fetch_hub_checkpoint
from tests.inference.conftest import TINY_PREDICTOR, TINY_TOKENIZER


def test_fixed_time_embedding_uses_published_key_names() -> None:
    keys = Kronos(**{**TINY_PREDICTOR, "learn_te": False}).state_dict().keys()
    assert {f"time_emb.{f}_embed.weight" for f in ("minute", "hour", "weekday", "day", "month")} <= set(keys)
    assert "dep_layer.cross_attn.rotary.inv_freq" in keys and "head.proj_s2.bias" in keys


def test_tokenizer_builds_one_block_fewer_and_saves_bsq_buffers() -> None:
    state = KronosTokenizer(**TINY_TOKENIZER).state_dict()
    assert {k.split(".")[1] for k in state if k.startswith("encoder.")} == {"0", "1"}
    assert state["tokenizer.bsq.basis"].tolist() == [2**i for i in range(11, -1, -1)]
    assert state["tokenizer.bsq.group_basis"].tolist() == [8, 4, 2, 1]


@pytest.mark.parametrize("cls,kwargs", [(Kronos, TINY_PREDICTOR), (KronosTokenizer, TINY_TOKENIZER)])
def test_save_load_round_trip(tmp_path: Path, cls, kwargs) -> None:
    torch.manual_seed(1)
    model = cls(**kwargs)
    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text()) == kwargs
    loaded = cls.from_pretrained(tmp_path)
    assert loaded.config == model.config == kwargs
    assert not loaded.training
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_shape_mismatch_names_key_and_shapes(tmp_path: Path) -> None:
    Kronos(**TINY_PREDICTOR).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "ff_dim": 80}))
    with pytest.raises(CheckpointError, match=r"transformer\.0\.ffn\.w1\.weight.*\(96, 48\).*\(80, 48\)"):
        Kronos.from_pretrained(tmp_path)


def test_missing_key_is_reported(tmp_path: Path) -> None:
    Kronos(**TINY_PREDICTOR).save_pretrained(tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    del state["norm.weight"]
    save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError, match="missing keys.*norm.weight"):
        Kronos.from_pretrained(tmp_path)


def test_missing_directory_and_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        Kronos.from_pretrained(tmp_path / "nowhere")
    (tmp_path / "config.json").write_text(json.dumps(TINY_PREDICTOR))
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        Kronos.from_pretrained(tmp_path)


def test_offline_hub_id_explains_local_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError, match=r"NeoQuasar/Kronos-small.*local directory") as info:
        Kronos.from_pretrained("NeoQuasar/Kronos-small")
    assert "from_pretrained('DIR')" in str(info.value)


def test_fetch_hub_checkpoint_never_reads_a_same_named_local_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    Kronos(**TINY_PREDICTOR).save_pretrained(tmp_path / "owner" / "name")
    assert Kronos.from_pretrained("owner/name").config == TINY_PREDICTOR  # the CLI's rule: local directory first
    with pytest.raises(CheckpointError, match=r"could not fetch predictor checkpoint 'owner/name' from the Hugging "
                                              r"Face Hub \(HF_HUB_OFFLINE is set\)") as info:
        fetch_hub_checkpoint("owner/name", "predictor")
    assert "no local directory" not in str(info.value)
    with pytest.raises(CheckpointError, match=r"tokenizer 'owner/\.\.' is not a valid Hugging Face hub id"):
        fetch_hub_checkpoint("owner/..", "tokenizer")
    # In the cache's layout it is found there, as the hub's copy.
    commit = "89abcdef0123456789abcdef0123456789abcdef"
    snapshot = tmp_path / "cache" / "models--owner--name" / "snapshots" / commit
    KronosTokenizer(**TINY_TOKENIZER).save_pretrained(snapshot)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text(commit)
    assert fetch_hub_checkpoint("owner/name", "tokenizer") == snapshot
    assert KronosTokenizer.from_pretrained(fetch_hub_checkpoint("owner/name")).config == TINY_TOKENIZER


def test_swapped_pair_is_a_checkpoint_error_naming_the_swap(tiny_pair) -> None:
    """A tokenizer directory loaded as the predictor (and the reverse) is one CheckpointError, not a TypeError."""
    from kronos.errors import KronosUserError
    from kronos.inference.loading import load_predictor

    tok, pred = tiny_pair
    with pytest.raises(CheckpointError, match="swapped"):
        Kronos.from_pretrained(tok)
    with pytest.raises(CheckpointError, match="swapped"):
        KronosTokenizer.from_pretrained(pred)
    with pytest.raises(KronosUserError, match="swap"):  # the pair loader names the swap before loading
        load_predictor(str(pred), str(tok))
