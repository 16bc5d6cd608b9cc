"""The lm-eval adapter, run by lm-eval's own evaluator on local task YAMLs (offline)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from cocomix.data.tokenizers import Tokenizer
from cocomix.eval.loading import LoadedRun, run_info
from cocomix.eval.multiple_choice import load_mc_items, score_multiple_choice
from cocomix.eval.scoring import LogLikelihoodScorer
from cocomix.models import CocoMixLM

lm_eval_adapter = pytest.importorskip("cocomix.eval.lm_eval_adapter")

MC = [
    {"context": "The whale swam under the", "choices": ["ship.", "bank vault on Sunday."], "label": 0},
    {"context": "She opened the", "choices": ["window.", "door."], "label": 1},
    {"context": "Call me", "choices": ["Ishmael.", "a taxi, please."], "label": 0},
]
TEXTS = [{"text": "It was the best of times, it was the worst of times, it was the age of "
                  "wisdom, it was the age of foolishness, it was the epoch of belief."}]


def task_yaml(name: str, data: Path, cache: Path, body: str) -> str:
    return (f"task: {name}\ndataset_path: json\ndataset_kwargs:\n  data_files: {data}\n"
            f"  cache_dir: {cache}\ntest_split: train\n{body}")


@pytest.fixture
def tasks(tmp_path: Path) -> Path:
    folder = tmp_path / "tasks"
    folder.mkdir()
    mc, text = tmp_path / "mc.jsonl", tmp_path / "text.jsonl"
    mc.write_text("".join(json.dumps(r) + "\n" for r in MC))
    text.write_text("".join(json.dumps(r) + "\n" for r in TEXTS))
    cache = tmp_path / "hf"
    metric = "metric_list:\n  - metric: {m}\n    aggregation: {a}\n    higher_is_better: {h}\n"
    (folder / "mc.yaml").write_text(task_yaml("local_mc", mc, cache, (
        "output_type: multiple_choice\ndoc_to_text: '{{context}}'\ndoc_to_choice: '{{choices}}'\n"
        "doc_to_target: '{{label}}'\n" + metric.format(m="acc", a="mean", h="true")
        + "  - metric: acc_norm\n    aggregation: mean\n    higher_is_better: true\n")))
    (folder / "ppl.yaml").write_text(task_yaml("local_ppl", text, cache, (
        "output_type: loglikelihood_rolling\ndoc_to_text: ''\ndoc_to_target: '{{text}}'\n"
        + metric.format(m="bits_per_byte", a="bits_per_byte", h="false"))))
    (folder / "gen.yaml").write_text(task_yaml("local_gen", mc, cache, (
        "output_type: generate_until\ndoc_to_text: '{{context}}'\ndoc_to_target: '{{choices[0]}}'\n"
        "generation_kwargs:\n  until: ['\\n']\n  max_gen_toks: 5\n  do_sample: false\n"
        + metric.format(m="exact_match", a="mean", h="true"))))
    return folder


@pytest.fixture
def run(tmp_path: Path, tiny_lm: Callable[..., CocoMixLM], tokenizer: Tokenizer) -> LoadedRun:
    model = tiny_lm(mixer="add", num_concepts=16, concept_topk=4)
    return LoadedRun(run_info(tmp_path), model, tokenizer, 0, {"train": {"seq_len": 16}})


def test_simple_evaluate_runs_all_three_request_types(run: LoadedRun, tasks: Path, tmp_path: Path) -> None:
    results = lm_eval_adapter.run_lm_eval(run, ["local_mc", "local_ppl", "local_gen"],
                                          include_path=tasks, batch_size=4)
    assert set(results) == {"local_mc", "local_ppl", "local_gen"}
    # lm-eval's acc / acc_norm equal our own scorer's on the same items.
    ours = score_multiple_choice(LogLikelihoodScorer(run.model, max_len=16, pad_id=run.tokenizer.eos_id),
                                 run.tokenizer, load_mc_items(tmp_path / "mc.jsonl"))
    assert results["local_mc"]["acc"] == pytest.approx(ours.acc)
    assert results["local_mc"]["acc_norm"] == pytest.approx(ours.acc_norm)
    assert 0 < results["local_ppl"]["bits_per_byte"] < 20
    assert results["local_gen"]["exact_match"] in (0.0, 1 / 3, 2 / 3, 1.0)


def test_rolling_loglikelihood_scores_every_token_once(run: LoadedRun) -> None:
    class Req:
        def __init__(self, *args: object) -> None:
            self.args = args

    lm = lm_eval_adapter.CocomixEvalLM(loaded=run)
    text = TEXTS[0]["text"]
    [total] = lm.loglikelihood_rolling([Req(text)])
    ids = run.tokenizer.encode(text)
    assert len(ids) > 16  # spans several windows of the 16-token context
    # lm-eval's disjoint windows: [EOS] + ids[:15] predicts ids[:16]; then each window of 16
    # inputs predicts the next (up to) 16 tokens, the last one with a full 16-token input.
    eos, n, expected = run.tokenizer.eos_id, len(ids), 0.0
    windows = [([eos] + ids[:15], 16)]
    done = 16
    while done < n:
        count = min(n - done, 16)
        windows.append((ids[done + count - 17 : done + count - 1], count))
        done += count
    with torch.no_grad():
        for i, (inputs, count) in enumerate(windows):
            logp = torch.log_softmax(run.model.forward_lm(torch.tensor([inputs])).logits[0], -1)
            first = 16 * i if i < len(windows) - 1 else n - count
            for j in range(count):
                expected += float(logp[len(inputs) - count + j, ids[first + j]])
    assert total == pytest.approx(expected, abs=1e-3)
    [(lp, _)] = lm.loglikelihood([Req("Call me", " Ishmael.")])
    assert math.isfinite(lp) and lp < 0
    [generated] = lm.generate_until([Req("Call me", {"until": ["."], "max_gen_toks": 4})])
    assert isinstance(generated, str) and "." not in generated


def test_the_papers_tasks_offline_are_one_clear_error(run: LoadedRun, monkeypatch: pytest.MonkeyPatch) -> None:
    # lm-eval knows every task of the paper's suite; their data sets live on the hub, so offline
    # (and with an empty HF cache) the adapter says so in one line instead of a traceback.
    from cocomix.registry import CocomixError

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CocomixError, match=r"offline mode is on \(HF_DATASETS_OFFLINE=1") as info:
        lm_eval_adapter.run_lm_eval(run, list(lm_eval_adapter.PAPER_TASKS))
    message = str(info.value)
    assert "\n" not in message and "lambada_openai,wikitext,hellaswag" in message
