"""Run folders: `<runs>/<recipe>/<arm>/seed<k>/`, self-describing and resumable.

A folder holds the resolved `config.yaml`, `env.json` (versions, git revision of the invocation
that started it; later ones are appended to `env_history.jsonl`), TensorBoard events
under `tb/`, fairseq2's JSONL metrics under `metrics/`, logs and `checkpoints/`. Running the same
command again resumes; running a different config into a folder that has checkpoints is refused,
so a resumed run is always the same experiment. A key the schema gained after a run was started
counts as its default there (a new option's default keeps the old behaviour, by convention),
so finished runs stay resumable and summarisable across such additions. A folder is trusted
only whole: checkpoints without a `config.yaml` are refused, and the config of an attempt that
saved no checkpoint is replaced rather than blocking the corrected command.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cocomix.cache_files import atomic_write_text
from cocomix.registry import CocomixError
from cocomix.runtime.schema import RESUME_NEUTRAL_KEYS

CONFIG_FILE = "config.yaml"
ARTIFACTS_FILE = "artifacts.json"
ARTIFACT_CACHE = "_artifacts"
"""The artifact cache folder under a runs folder (tokenizers, shards, teachers, SAEs, labels)."""
ENV_FILE = "env.json"
ENV_HISTORY_FILE = "env_history.jsonl"


def checkpoint_steps(run_dir: Path) -> list[int]:
    """Steps with a complete model checkpoint (fairseq2 renames `step_N` into place when done)."""
    steps = []
    for path in (run_dir / "checkpoints").glob("step_*"):
        suffix = path.name.removeprefix("step_")
        if suffix.isdigit() and (path / "model").is_dir():
            steps.append(int(suffix))
    return sorted(steps)


@dataclass(frozen=True)
class RunDir:
    path: Path
    recipe: str
    arm: str
    seed: int

    @classmethod
    def of(cls, runs_dir: Path, recipe: str, arm: str, seed: int) -> RunDir:
        return cls(runs_dir / recipe / arm / f"seed{seed}", recipe, arm, seed)

    @property
    def config_file(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    def last_checkpoint_step(self) -> int | None:
        """Highest step with a complete checkpoint (fairseq2 writes `step_N` only when done)."""
        return max(checkpoint_steps(self.path), default=None)

    def check_same_config(self, resolved: dict[str, Any]) -> bool:
        """Whether ``config.yaml`` differs from ``resolved`` (keys added to the schema since count
        as their defaults); a difference in a folder with a checkpoint is refused. Reads only."""
        stored = yaml.safe_load(self.config_file.read_text()) or {}
        diff = config_diff(_comparable(with_added_defaults(stored, resolved)), _comparable(resolved))
        if diff and self.last_checkpoint_step() is not None:
            shown = "; ".join(diff[:5]) + ("; ..." if len(diff) > 5 else "")
            raise CocomixError(
                f"{self.path} holds a run with a different config ({shown}); "
                f"to start fresh, delete that folder or pass another --runs-dir"
            )
        return bool(diff)

    def logged_step(self) -> int | None:
        """The last step the run's metrics logged (train or valid), whether or not a checkpoint
        of it survives."""
        steps = []
        for name in ("train.jsonl", "valid.jsonl"):
            path = self.path / "metrics" / name
            if path.is_file():
                for line in path.read_text().splitlines():
                    try:
                        steps.append(int(json.loads(line)["Step"]))
                    except (ValueError, KeyError, TypeError):
                        continue  # a line cut by a crash: the other lines still say how far it got
        return max(steps, default=None)

    def _set_aside_checkpointless_metrics(self, resolved: dict[str, Any]) -> None:
        """No checkpoint, but metrics: a run that lost its checkpoints is refused (retraining would
        log every step a second time); an attempt that ended before its first checkpoint is
        trained again after saying so, its metrics and event files moved aside, never mixed in."""
        logged = self.logged_step()
        if logged is None:
            return
        first_checkpoint = min(int(resolved.get("checkpoint_every") or logged + 1),
                               int(resolved.get("stop_at") or resolved.get("steps") or logged + 1))
        if logged >= first_checkpoint:
            raise CocomixError(
                f"{self.path} logged training up to step {logged} but holds no checkpoint (was "
                f"checkpoints/ deleted?), so it cannot resume; restore its checkpoints/, or delete "
                f"{self.path} to train it again from scratch"
            )
        aside = self.path / f"attempt-{time.strftime('%Y%m%d-%H%M%S')}"
        aside.mkdir()
        for name in ("metrics", "tb"):
            if (self.path / name).exists():
                (self.path / name).rename(aside / name)
        print(f"{self.path}: an earlier attempt logged {logged} step(s) but saved no checkpoint; "
              f"training again from step 0 (its metrics are in {aside.name}/)")

    def prepare(self, resolved: dict[str, Any], *, owner: bool = True) -> bool:
        """Create the folder or check it holds the same experiment. Returns True on resume.

        Under torchrun only rank 0 owns the folder (``owner``): the others would read
        ``config.yaml`` while fairseq2 briefly holds its own dump there, and refuse the run."""
        if not owner:
            self.path.mkdir(parents=True, exist_ok=True)
            return self.last_checkpoint_step() is not None
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise CocomixError(
                f"cannot create run folder {self.path}: {err.strerror}; pass a writable --runs-dir"
            ) from None
        if not os.access(self.path, os.W_OK):
            raise CocomixError(f"run folder {self.path} is not writable; pass a writable --runs-dir")
        has_checkpoint = self.last_checkpoint_step() is not None
        if self.config_file.exists():
            if self.check_same_config(resolved):
                # An attempt that failed before its first checkpoint holds nothing to resume:
                # it must not block the corrected command.
                print(f"{self.path}: replacing the config of an earlier attempt that saved no checkpoint")
            if not has_checkpoint:
                self._set_aside_checkpointless_metrics(resolved)
        elif has_checkpoint:
            raise CocomixError(
                f"{self.path} holds checkpoints but no config.yaml, so they cannot be checked "
                f"against this run; restore its config.yaml to resume it, or delete the folder "
                f"(or pass another --runs-dir) to start fresh"
            )
        write_config(self.path, resolved)
        env = environment()
        if (self.path / ENV_FILE).exists():
            # Keep the environment that started the run; each later invocation (a resume, or a
            # rerun that finds the run finished) adds one line of its own.
            with open(self.path / ENV_HISTORY_FILE, "a") as history:
                history.write(json.dumps(env) + "\n")
        else:
            atomic_write_text(self.path / ENV_FILE, json.dumps(env, indent=2) + "\n")
        return self.last_checkpoint_step() is not None


def schema_defaults(resolved: dict[str, Any]) -> dict[str, Any]:
    """The default of every key of a run's config: the recipe schema's, and for each registry
    group (``objective``, ``concepts`` ...) the defaults of the option the run chose."""
    from omegaconf import OmegaConf

    from cocomix.registry import ALL_REGISTRIES
    from cocomix.runtime.builtins import load_builtins
    from cocomix.runtime.schema import RecipeSchema

    load_builtins()  # plugins were imported when the run was composed
    schema = OmegaConf.structured(RecipeSchema)
    defaults: dict[str, Any] = OmegaConf.to_container(schema, throw_on_missing=False)
    for registry in ALL_REGISTRIES:
        group = resolved.get(registry.key)
        name = group.get("name") if isinstance(group, dict) else None
        if name is not None and name in registry:
            options = registry.get(name).default_config()
            defaults[registry.key] = OmegaConf.to_container(OmegaConf.structured(options))
    return defaults


def with_added_defaults(previous: dict[str, Any], resolved: dict[str, Any]) -> dict[str, Any]:
    """``previous`` (a stored run config) plus, for each key of ``resolved`` it lacks, that key's
    schema default: the value the run was trained with before the key existed."""

    def fill(old: dict[str, Any], new: dict[str, Any], defaults: Any) -> dict[str, Any]:
        out = dict(old)
        for key, value in new.items():
            if not isinstance(defaults, dict) or key not in defaults:
                continue
            if key not in old:
                out[key] = defaults[key]
            elif isinstance(old[key], dict) and isinstance(value, dict):
                out[key] = fill(old[key], value, defaults[key])
        return out

    return fill(previous, resolved, schema_defaults(resolved))


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in RESUME_NEUTRAL_KEYS}


def config_diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Human-readable differences `key: old -> new` between two nested configs."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in list(old) + [k for k in new if k not in old]:
            out += config_diff(old.get(key, "<unset>"), new.get(key, "<unset>"), f"{prefix}{key}.")
        return out
    if old != new:
        return [f"{prefix.rstrip('.')}: {old!r} -> {new!r}"]
    return []


def git_revision() -> str | None:
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def environment() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for package in ("torch", "fairseq2", "fairseq2n", "hydra-core", "datasets", "sentencepiece"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    import torch

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
        "git": git_revision(),
        "cuda": torch.version.cuda,
        "devices": torch.cuda.device_count(),
        # CPU results are bit-identical only at the same intra-op thread count (reliability.md).
        "torch_threads": torch.get_num_threads(),
        "argv": sys.argv,
    }


# -- the run folder's files, read and written only here -------------------------------------------


def write_config(run_dir: Path, resolved: dict[str, Any]) -> None:
    """``config.yaml``: the resolved recipe (atomic: a run killed here still finds it whole)."""
    atomic_write_text(Path(run_dir) / CONFIG_FILE, yaml.safe_dump(resolved, sort_keys=False))


def write_artifacts(run_dir: Path, record: dict[str, Any]) -> None:
    """``artifacts.json``: where the run's tokenizer, shards, teacher, SAE and labels live."""
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(run_dir) / ARTIFACTS_FILE, json.dumps(record, indent=2) + "\n")



def read_config(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise CocomixError(f"{run_dir} has no {CONFIG_FILE}; is it a cocomix run folder?")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise CocomixError(f"{path} is not valid YAML ({err})") from None
    if not isinstance(data, dict):
        raise CocomixError(f"{path} does not hold a mapping")
    return data


def read_artifacts(run_dir: Path) -> dict[str, Any]:
    """``artifacts.json`` of a run, or ``{}`` when the run predates it (callers that need a path
    from it raise ``missing_artifact`` with the fix)."""
    path = Path(run_dir) / ARTIFACTS_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CocomixError(f"{path} is corrupt ({err}); rerun the recipe to rewrite it") from None
    if not isinstance(data, dict):
        return {}
    return {key: relocated(Path(run_dir), key, value) for key, value in data.items()}



def relocated(run_dir: Path, key: str, value: Any) -> Any:
    """A recorded artifact path, followed when the runs folder (with its ``_artifacts``) moved.

    ``artifacts.json`` records absolute paths. A path inside a ``_artifacts`` cache that no longer
    exists is looked up in the ``_artifacts`` folder of each parent of the run, so a runs folder
    copied to another machine or renamed still loads.
    """
    if not isinstance(value, str) or not value.startswith("/") or Path(value).exists():
        return value
    parts = Path(value).parts
    if ARTIFACT_CACHE not in parts:
        return value
    inside = Path(*parts[len(parts) - parts[::-1].index(ARTIFACT_CACHE):])
    for parent in Path(run_dir).resolve().parents:
        candidate = parent / ARTIFACT_CACHE / inside
        if candidate.exists():
            return str(candidate)
    return value  # gone: the reader that needs it says so (``gone_artifact``)


def gone_artifact(run_dir: Path, key: str, value: str, fix: str) -> CocomixError:
    """The error for a recorded artifact path that no longer exists anywhere."""
    return CocomixError(
        f"{run_dir} records its {key} at {value}, which no longer exists (a runs folder moved "
        f"without its {ARTIFACT_CACHE} folder, or a deleted cache); {fix}"
    )


def missing_artifact(run_dir: Path, key: str, fix: str) -> CocomixError:
    """The error for a path ``artifacts.json`` does not record; ``fix`` says what to do."""
    return CocomixError(
        f"{run_dir} records no {key!r} in {ARTIFACTS_FILE} (the run predates artifacts.json, or "
        f"has no such artifact); {fix}"
    )


def train_seq_len(config: dict[str, Any], model: Any = None) -> int:
    """``train.seq_len`` of a run's config, checked against ``model.max_seq_len`` when given."""
    try:
        seq_len = int(config["train"]["seq_len"])
    except (KeyError, TypeError, ValueError):
        raise CocomixError("config.yaml has no train.seq_len; is it a cocomix lm run?") from None
    if model is not None and seq_len > model.max_seq_len:
        raise CocomixError(
            f"train.seq_len={seq_len} exceeds the checkpoint's max_seq_len={model.max_seq_len}"
        )
    return seq_len
