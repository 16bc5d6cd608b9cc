"""The command line as a user meets it: listing, dry runs, and one-line errors with exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "recipes.run", *args], capture_output=True, text=True, cwd=cwd
    )


def test_list_shows_recipes_and_registries() -> None:
    out = run_cli("--list")
    assert out.returncode == 0, out.stderr
    assert "pretrain/ntp" in out.stdout
    for key in ("model", "data", "tokenizer", "objective", "mixer", "concepts"):
        assert f"  {key} " in out.stdout
    assert "gpt2_386m_ntp" in out.stdout and "pd_english" in out.stdout


def test_dry_run_prints_config_and_parameters() -> None:
    out = run_cli("pretrain/ntp", "--dry-run", "steps=30")
    assert out.returncode == 0, out.stderr
    assert "steps: 30" in out.stdout
    assert "parameters: total=" in out.stdout and " active=" in out.stdout


def test_bad_input_is_one_line_without_traceback(tmp_path: Path) -> None:
    out = run_cli("pretrain/ntp", "objective=nope", "--runs-dir", str(tmp_path))
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0, out.stderr
    assert out.stderr.startswith("error: unknown objective 'nope'; known:")
    assert "Traceback" not in out.stderr
    missing = run_cli("no/such_recipe")
    assert missing.returncode == 2 and "unknown recipe" in missing.stderr
