"""Recipe composition: every recipe composes and dry-runs; bad input is one clear line."""

from __future__ import annotations

import pytest

from cocomix.registry import CocomixError
from cocomix.runtime.builtins import load_builtins
from cocomix.runtime.compose import compose_recipe
from cocomix.runtime.recipe_files import list_recipes
from cocomix.experiment import dry_run
from cocomix.experiment.plan import plan_runs

load_builtins()
RECIPES = [name for name, _ in list_recipes()]


def test_recipes_found_with_purpose() -> None:
    assert "pretrain/ntp" in RECIPES
    assert all(purpose for _, purpose in list_recipes()), "every recipe needs a header comment"


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_recipe_composes_and_dry_runs(recipe: str, paper_configs: list[str]) -> None:
    # One seed: every arm composes and counts its parameters; more seeds repeat the same arms.
    # The paper-faithful recipes read GPT-2 and OpenAI's SAE from the hub; offline, local configs.
    local = paper_configs if recipe.startswith("paper/faithful") else []
    text = dry_run(recipe, ["seeds=[0]", *local])
    assert "parameters: total=" in text
    composed = compose_recipe(recipe, [])
    if recipe.startswith(("scale/", "paper/faithful")):
        assert composed.preset == "paper"  # these recipes pin the paper's sizes
        return
    assert composed.preset == "tiny"  # no GPU in tests
    resolved = composed.resolved()
    assert resolved["model"]["name"] in ("tiny", "tiny_ntp")


def test_precedence_recipe_then_preset_then_user() -> None:
    composed = compose_recipe("pretrain/ntp", ["steps=7", "model.num_layers=3", "train.lr=1e-3"])
    cfg = composed.cfg
    assert cfg.steps == 7  # user beats preset
    assert cfg.train.seq_len == 128  # preset beats base
    assert cfg.model.num_layers == 3 and cfg.train.lr == 1e-3
    paper = compose_recipe("pretrain/ntp", ["preset=paper"])
    assert paper.choices["model"] == "gpt2_69m_ntp" and paper.cfg.train.seq_len == 1024


def test_dry_run_parameter_counts_match_paper_widened_69m() -> None:
    text = dry_run("pretrain/ntp", ["preset=paper", "tokenizer.vocab_size=50257"])
    total = int(text.split("parameters: total=")[1].split()[0])
    assert abs(total - 69.4e6) < 0.1e6  # paper brief §3: NTP (widened) 69.4M


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["modle=tiny"], "unknown key 'modle'"),
        (["model=tinyy"], "unknown model 'tinyy'; known:"),
        (["objective=nttp"], "unknown objective 'nttp'; known:"),
        (["data=nope"], "unknown data 'nope'; known:"),
        (["mixer=blend"], "unknown mixer 'blend'; known:"),
        (["steps=many"], "bad value in `steps=many`: steps takes an integer"),
        (["model.num_layers=two"], "bad value in `model.num_layers=two`: model.num_layers takes an integer"),
        (["model.depth=3"], "unknown key 'model.depth'"),
        (["preset=huge"], "unknown preset 'huge'"),
        (["plugins=[no_such_plugin_mod]"], "plugin module 'no_such_plugin_mod' not found"),
    ],
)
def test_bad_overrides_fail_at_compose_time_with_one_line(overrides: list[str], expected: str) -> None:
    with pytest.raises(CocomixError) as info:
        compose_recipe("pretrain/ntp", overrides)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message


def test_unknown_recipe_lists_known_ones() -> None:
    with pytest.raises(CocomixError, match="unknown recipe 'pretrain/ntq'; known recipes: .*pretrain/ntp"):
        compose_recipe("pretrain/ntq", [])


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["steps=0"], "steps=0"),
        (["stop_at=500"], "stop_at=500 must be in 1..steps"),
        (["model.insert_layer=9"], "insert_layer=9"),
        (["train.seq_len=4096"], "exceeds model.max_seq_len"),
    ],
)
def test_bad_values_are_refused_before_training(overrides: list[str], expected: str) -> None:
    with pytest.raises(CocomixError, match=expected):
        dry_run("pretrain/ntp", overrides)


def dry_run_counts(recipe: str, overrides: list[str]) -> dict[str, tuple[float, float]]:
    """Per arm: (total, active) parameters in millions, read from `--dry-run`'s output."""
    counts: dict[str, tuple[float, float]] = {}
    arm = ""
    for line in dry_run(recipe, overrides).splitlines():
        if line.startswith("# run: "):
            arm = line.split("/")[-2]
        elif line.startswith("parameters:"):
            total, active = (int(part.split("=")[1]) / 1e6 for part in line.split()[1:])
            counts[arm] = (total, active)
    return counts


@pytest.mark.parametrize(
    ("recipe", "ntp_total", "cocomix_total", "cocomix_active"),
    [  # paper brief §3, in millions; KD (faithful recipes) uses the NTP (widened) model
        ("scale/69m", 69.4, 85.1, 68.3),
        ("scale/386m", 386.3, 422.0, 388.4),
        ("scale/1b", 1373.4, 1447.9, 1380.8),
        ("paper/faithful_69m", 69.4, 85.1, 68.3),
        ("paper/faithful_386m", 386.3, 422.0, 388.4),
        ("paper/faithful_1b", 1373.4, 1447.9, 1380.8),
    ],
)
def test_paper_size_recipes_count_the_papers_parameters(
    recipe: str, ntp_total: float, cocomix_total: float, cocomix_active: float, paper_configs: list[str]
) -> None:
    counts = dry_run_counts(recipe, paper_configs if recipe.startswith("paper/faithful") else [])
    ntp, ntp_active = counts.pop("ntp")
    total, active = counts.pop("cocomix")
    assert abs(ntp - ntp_total) < 0.1 and ntp_active == ntp
    assert abs(total - cocomix_total) < 0.1 and abs(active - cocomix_active) < 0.1
    assert all(other == (ntp, ntp) for other in counts.values())  # kd: the NTP model


def test_user_group_switch_with_sub_key_reaches_every_arm() -> None:
    """`tokenizer=X tokenizer.<key of X>=...` in a multi-arm recipe: the sub-key is judged
    against the group the user selects, not the recipe's (which may lack that key)."""
    from cocomix.experiment import plan_runs

    plans = plan_runs("paper/faithful_69m", ["tokenizer=sentencepiece", "tokenizer.vocab_size=300"])
    assert {p.arm for p in plans} == {"ntp", "kd", "cocomix"}
    for plan in plans:
        assert plan.composed.cfg.tokenizer.vocab_size == 300


def test_a_paper_size_is_one_choice() -> None:
    """`size=386m` on scale/69m composes exactly what scale/386m does (recipes/size/*.yaml)."""
    switched = compose_recipe("scale/69m", ["size=386m"]).resolved()
    pinned = compose_recipe("scale/386m", []).resolved()
    assert switched.pop("description") != pinned.pop("description")
    assert switched == pinned
    assert not any(name.startswith("size/") for name in RECIPES)
    with pytest.raises(CocomixError, match="size= chooses a paper size"):
        compose_recipe("pretrain/ntp", ["size=386m"])


def test_planning_composes_each_run_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hydra composes each (arm, seed) once, after one probe per arm that its seeds share, and
    the top of the recipe twice (its probe, then with the preset, which may choose the seeds)."""
    import cocomix.runtime.compose as compose

    calls: list[list[str]] = []
    real = compose._compose

    def counting(path, name, overrides):  # type: ignore[no-untyped-def]
        calls.append(list(overrides))
        return real(path, name, overrides)

    monkeypatch.setattr(compose, "_compose", counting)
    plans = plan_runs("ablation/add_vs_mix", ["seeds=[0,1,2]"])
    assert len(plans) == 9
    assert len(calls) == 2 + 3 + 9
    width_matched = plan_runs("study/label_control", ["seeds=[0]", "only_arms=[ntp]"])
    assert width_matched[0].composed.choices["model"] == "tiny_ntp"  # the sibling, no recompose
    assert len(calls) == 14 + 2 + 1 + 1


def test_dry_run_names_every_artifact_before_the_runs() -> None:
    """--dry-run shows what the recipe builds or reuses, in build order, then its runs."""
    heads = [line for line in dry_run("ablation/add_vs_mix", ["seeds=[0]"]).splitlines()
             if line.startswith("# ")]
    kinds = [line.split(":")[0] for line in heads]
    assert kinds == ["# tokenizer", "# shards", "# teacher", "# sae", "# labels",
                     "# run", "# run", "# run"], heads
    assert heads[3].startswith("# sae: trained once, 1024 latents, k=16") and "of pretrain/teacher" in heads[3]
    assert heads[4] == "# labels: attribution (k_attr=2) of pretrain/teacher, cached per training window of seed 0"


def test_faithful_dry_run_shows_the_papers_teacher_and_sae(paper_configs: list[str]) -> None:
    text = dry_run("paper/faithful_69m", ["only_arms=[cocomix]", *paper_configs])
    assert "# teacher: hf " in text and "(gpt2, 12 blocks, width 768, vocab 50257, float32)" in text
    assert "# sae: SAELens topk SAE read from " in text and "(32768 latents, blocks.5.hook_resid_post)" in text


def test_faithful_recipes_read_the_hub_and_say_so_offline() -> None:
    """Their defaults are hub names (GPT-2, SAELens's registry); tests run with HF_HUB_OFFLINE=1."""
    with pytest.raises(CocomixError, match="teacher.path=gpt2 is not a local folder, so it is a Hugging Face "
                                           "hub name, and the hub cannot be reached"):
        dry_run("paper/faithful_69m", ["only_arms=[cocomix]"])
