"""What an export says about the run it came from: names and numbers, never a path.

An exported folder travels (to a colleague, to the Hub); the absolute paths a run folder records
(``artifacts.json``, ``teacher.path``, ``env.json``'s ``argv``) name the machine that trained it
and mean nothing elsewhere. So the export records the run by its recipe, arm, seed and step,
the options that made it, and file names only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cocomix.analysis.compare import read_jsonl
from cocomix.eval.loading import LoadedRun
from cocomix.registry import CocomixError
from cocomix.runtime.rundir import ENV_FILE


@dataclass(frozen=True)
class ValidRecord:
    """The run's own validation (``metrics/valid.jsonl``) at the exported step or the last before."""

    step: int
    loss: float
    ppl: float | None


@dataclass(frozen=True)
class RunFacts:
    recipe: str | None
    """``<recipe>`` of ``runs/<recipe>/<arm>/seed<k>`` (None when the folder is not laid out so)."""
    arm: str
    seed: int | None
    step: int
    """The exported checkpoint's step."""
    steps: int | None
    """The run's configured ``steps`` (its schedule's length); None when its config lacks it."""
    description: str | None
    objective: str
    mixer: str
    concepts: str
    data: str
    tokenizer: str
    tokenizer_files: tuple[str, ...]
    context: int
    tokens: int | None
    """Training tokens up to ``step`` (fairseq2's ``Total Number of Elements``), when recorded."""
    valid: ValidRecord | None
    git: str | None
    options: dict[str, Any] = field(default_factory=dict)
    """The concept options worth naming (objective weight, source, teacher, SAE), flat."""

    @property
    def finished(self) -> bool:
        """The exported step is the end of the run's schedule (unknown ``steps``: assumed so)."""
        return self.steps is None or self.step >= self.steps

    def record(self) -> dict[str, Any]:
        """``cocomix_export.json``'s description of the run (no paths)."""
        return {"recipe": self.recipe, "arm": self.arm, "seed": self.seed, "step": self.step,
                "steps": self.steps, "finished": self.finished, "objective": self.objective,
                "mixer": self.mixer, "concepts": self.concepts, "data": self.data,
                "tokenizer": self.tokenizer, "tokenizer_files": list(self.tokenizer_files),
                "context": self.context, "tokens": self.tokens,
                "valid_loss": None if self.valid is None else self.valid.loss,
                "valid_ppl": None if self.valid is None else self.valid.ppl,
                "valid_step": None if self.valid is None else self.valid.step,
                "git": self.git, "options": self.options}


def _name(config: dict[str, Any], key: str) -> str:
    group = config.get(key)
    return str(group.get("name", "?")) if isinstance(group, dict) else "?"


def _records(path: Path, step: int) -> list[dict[str, Any]]:
    """The records up to ``step`` of a metrics file; none when it is missing or unreadable (a
    model card without numbers beats a refused export)."""
    if not path.is_file():
        return []
    try:
        records = read_jsonl(path)
    except CocomixError:
        return []
    return [r for r in records if isinstance(r.get("Step"), int) and r["Step"] <= step]


def _valid(run_dir: Path, step: int) -> ValidRecord | None:
    valid = [r for r in _records(run_dir / "metrics" / "valid.jsonl", step) if "Loss" in r]
    if not valid:
        return None
    last = max(valid, key=lambda r: r["Step"])
    return ValidRecord(int(last["Step"]), float(last["Loss"]),
                       float(last["ppl"]) if isinstance(last.get("ppl"), (int, float)) else None)


def _tokens(run_dir: Path, step: int) -> int | None:
    train = [r for r in _records(run_dir / "metrics" / "train.jsonl", step) if "Total Number of Elements" in r]
    return int(max(train, key=lambda r: r["Step"])["Total Number of Elements"]) if train else None


def _git(run_dir: Path) -> str | None:
    import json

    try:
        env = json.loads((run_dir / ENV_FILE).read_text())
    except (OSError, ValueError):
        return None
    git = env.get("git") if isinstance(env, dict) else None
    return git if isinstance(git, str) else None


def _options(config: dict[str, Any], has_concepts: bool) -> dict[str, Any]:
    """Named options of the objective and concept source, plus where concepts came from; scalar
    values only, and never a path (``teacher.path``, ``sae.path``)."""
    out: dict[str, Any] = {}
    for group in ("objective", "concepts"):
        for key, value in (config.get(group) or {}).items():
            if key != "name" and isinstance(value, (int, float, str, bool)) and not str(value).startswith("/"):
                out[f"{group}.{key}"] = value
    if has_concepts:
        teacher, sae = config.get("teacher") or {}, config.get("sae") or {}
        out["teacher.source"] = teacher.get("source")
        if teacher.get("source") == "recipe":
            out["teacher.recipe"] = teacher.get("recipe")
        out["teacher.layer"] = teacher.get("layer")
        out["sae.source"] = sae.get("source")
        if sae.get("source") == "train":
            out["sae.n_latents"], out["sae.k"] = sae.get("n_latents"), sae.get("k")
    return {k: v for k, v in out.items() if v is not None}


def run_facts(run: LoadedRun) -> RunFacts:
    config, path = run.config, run.info.path
    steps = config.get("steps")
    tok_path = Path(run.tokenizer.path)
    files = tuple(sorted(p.name for p in tok_path.iterdir() if p.is_file())) if tok_path.is_dir() else (tok_path.name,)
    description = config.get("description")
    return RunFacts(
        recipe=run.info.recipe or None, arm=run.info.arm, seed=run.info.seed, step=run.step,
        steps=int(steps) if isinstance(steps, int) else None,
        description=description if isinstance(description, str) and description else None,
        objective=_name(config, "objective"), mixer=run.model.config.mixer,
        concepts=_name(config, "concepts"), data=_name(config, "data"),
        tokenizer=_name(config, "tokenizer"), tokenizer_files=files, context=run.seq_len,
        tokens=_tokens(path, run.step), valid=_valid(path, run.step), git=_git(path),
        options=_options(config, _name(config, "concepts") not in ("none", "?")),
    )
