"""End-to-end NTP through the real runtime (Hydra -> fairseq2 trainer) on the shipped text.

Small enough for CI on 2 cores: a 2-layer, 64-wide model, a few dozen steps.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
import torch

from cocomix.registry import CocomixError
from cocomix.experiment import run_recipe

SMALL = [
    "model.num_layers=2",
    "model.model_dim=64",
    "model.num_heads=2",
    "model.ffn_inner_dim=256",
    "model.insert_layer=1",
    "train.seq_len=64",
    "train.micro_batch_size=8",
    "tokenizer.vocab_size=2000",
    "valid.max_batches=4",
    "log_every=2",
    "train.lr=1e-2",
]


def train_losses(run: Path) -> dict[int, float]:
    lines = (run / "metrics" / "train.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    return {int(r["Step"]): float(r["Loss"] if "Loss" in r else r["loss"]) for r in records}


def final_weights(run: Path) -> dict[str, torch.Tensor]:
    last = max((run / "checkpoints").glob("step_*"), key=lambda p: int(p.name[5:]))
    files = sorted((last / "model").rglob("*.pt"))
    assert files, f"no model files under {last}"
    state = torch.load(files[0], map_location="cpu", weights_only=False)
    return state.get("model", state)


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory, artifact_cache: Path) -> Path:
    runs = tmp_path_factory.mktemp("straight")
    overrides = SMALL + ["steps=12", "train.warmup_steps=2", "checkpoint_every=6", "validate_every=6"]
    [run] = run_recipe("pretrain/ntp", overrides, runs)
    return run.path


def test_run_folder_layout(straight: Path) -> None:
    for name in ("config.yaml", "env.json", "fairseq2_config.yaml"):
        assert (straight / name).is_file(), name
    assert list((straight / "tb").glob("events.out.tfevents.*"))
    assert (straight / "metrics" / "train.jsonl").is_file()
    assert (straight / "metrics" / "valid.jsonl").is_file()
    env = json.loads((straight / "env.json").read_text())
    assert env["packages"]["fairseq2"] == "0.8.1"
    # CPU bits depend on the thread count: the recipe's (`threads`, default 2), not the test
    # worker's one thread (tests/conftest.py), and recorded in both files.
    assert env["torch_threads"] == 2
    assert yaml.safe_load((straight / "config.yaml").read_text())["threads"] == 2


def test_loss_drops_and_tensorboard_has_project_tags(straight: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    losses = train_losses(straight)
    steps = sorted(losses)
    assert steps[0] == 2 and steps[-1] == 12
    assert losses[12] < losses[2] - 0.5, losses
    events = EventAccumulator(str(straight / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    for tag in ("train/loss", "train/loss_lm", "valid/loss", "valid/ppl", "optim/lr", "optim/grad_norm",
                "perf/tokens_per_s", "perf/tokens", "perf/flops"):
        assert tag in tags, (tag, sorted(tags))


def test_stop_at_then_resume_equals_straight_run(straight: Path, tmp_path: Path, artifact_cache: Path) -> None:
    overrides = SMALL + ["steps=12", "train.warmup_steps=2", "checkpoint_every=6", "validate_every=6"]
    run_recipe("pretrain/ntp", overrides + ["stop_at=6"], tmp_path)
    [resumed] = run_recipe("pretrain/ntp", overrides, tmp_path)
    assert train_losses(resumed.path) == train_losses(straight)
    a, b = final_weights(straight), final_weights(resumed.path)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_rerun_with_other_config_is_refused(straight: Path) -> None:
    runs = straight.parents[3]
    overrides = SMALL + ["steps=12", "train.warmup_steps=2", "checkpoint_every=6", "validate_every=6"]
    with pytest.raises(CocomixError, match="different config .*train.lr"):
        run_recipe("pretrain/ntp", overrides + ["train.lr=1e-4"], runs)


def test_plugin_objective_and_divergence_stop_with_last_good_checkpoint(
    tmp_path: Path, artifact_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    overrides = SMALL + [
        "plugins=[divergent_plugin]", "objective=divergent_ntp", "objective.nan_from_call=5",
        "steps=12", "train.warmup_steps=2", "checkpoint_every=2", "validate_every=2",
    ]
    with pytest.raises(CocomixError, match=r"the loss is nan at step 5; .*last good checkpoint: step 4"):
        run_recipe("pretrain/ntp", overrides, tmp_path)
    run = tmp_path / "pretrain" / "ntp" / "main" / "seed22"
    assert sorted(p.name for p in (run / "checkpoints").glob("step_*")) == ["step_2", "step_4"]
