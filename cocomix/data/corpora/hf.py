"""Helpers shared by the corpora that read through HF ``datasets``: offline mode, file formats.

``datasets`` is imported only inside the functions here: importing it costs about two seconds,
which a run on ``pd_english`` should never pay.
"""

from __future__ import annotations

import codecs
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cocomix.registry import CocomixError

# File name endings -> the HF packaged builder that reads them.
BUILDERS: dict[str, str] = {
    ".txt": "text",
    ".text": "text",
    ".md": "text",
    ".json": "json",
    ".jsonl": "json",
    ".ndjson": "json",
    ".parquet": "parquet",
}
FORMATS = ("auto", "text", "json", "parquet")


def builder_for(path: Path, fmt: str = "auto") -> str:
    """The packaged builder for ``path``: ``fmt`` itself, or chosen from the file's ending."""
    if fmt not in FORMATS:
        raise CocomixError(f"data.format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt != "auto":
        return fmt
    builder = BUILDERS.get(path.suffix.lower())
    if builder is None:
        raise CocomixError(
            f"cannot tell the format of {path} from its ending; name it with data.format="
            f"text|json|parquet, or use one of {', '.join(sorted(BUILDERS))}"
        )
    return builder


def expand_files(paths: list[Path], patterns: list[str] | None = None) -> list[Path]:
    """Files as given, and the readable files inside folders (recursively, sorted).

    ``patterns`` (globs relative to a folder) narrow what a folder contributes.
    """
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            if patterns:
                found = sorted({f for p in patterns for f in path.glob(p) if f.is_file()})
            else:
                found = sorted(
                    f for f in path.rglob("*") if f.is_file() and f.suffix.lower() in BUILDERS
                )
            if not found:
                wanted = ", ".join(patterns) if patterns else ", ".join(sorted(BUILDERS))
                raise CocomixError(f"{path} holds no data file ({wanted})")
            out += found
        elif path.is_file():
            out.append(path)
        else:
            raise CocomixError(f"data file {path} does not exist")
    return out


def check_utf8(path: Path) -> None:
    """Stream-decode ``path``; a non-UTF-8 file is a clear error, not a traceback from Arrow."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as err:
                raise CocomixError(
                    f"{path} is not valid UTF-8 (byte {offset + err.start}); re-encode it to "
                    f"UTF-8, e.g. `iconv -f latin1 -t utf-8 {path} > {path}.utf8`"
                ) from None
            offset += len(block)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise CocomixError(
                f"{path} is not valid UTF-8 (it ends inside a character); re-encode it to UTF-8"
            ) from None


@contextmanager
def hf_offline() -> Iterator[None]:
    """HF offline mode for the duration of a local load, restored afterwards.

    ``datasets`` reads ``HF_DATASETS_OFFLINE`` once, at import, so the flag in its config module
    is set too: the environment alone would not stop an already-imported ``datasets`` from
    reaching for the hub.
    """
    import datasets.config as hf_config

    names = ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")
    saved_env = {n: os.environ.get(n) for n in names}
    saved_flag = hf_config.HF_HUB_OFFLINE
    os.environ.update({n: "1" for n in names})
    hf_config.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hf_config.HF_HUB_OFFLINE = saved_flag
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def load_local(files: list[Path], builder: str, *, text_field: str | None = None, **kwargs: Any) -> Any:
    """``datasets.load_dataset(builder, data_files=files, split="train")``, offline.

    ``text_field``: the field that holds the text, so that a failure caused by a record whose
    text is not a string names that line."""
    import datasets

    for f in files:
        if builder in ("text", "json"):
            check_utf8(f)
    # On a parse error `datasets` logs the full traceback itself before raising; the error
    # below says what is wrong (and --debug shows the traceback), so keep its log quiet.
    hf_log = logging.getLogger("datasets")
    level = hf_log.level
    with hf_offline():
        try:
            hf_log.setLevel(logging.CRITICAL)
            return datasets.load_dataset(
                builder, data_files=[str(f) for f in files], split="train", **kwargs
            )
        except Exception as err:  # Arrow/JSON parse errors: name the file and line, keep the cause
            names = ", ".join(str(f) for f in files)
            found = next((p for p in (unreadable_because(f, builder, text_field) for f in files) if p), None)
            raise CocomixError(found or f"could not read {names} as {builder}: {err}") from err
        finally:
            hf_log.setLevel(level)


def unreadable_because(path: Path, builder: str, text_field: str | None = None) -> str | None:
    """Why ``datasets`` failed on ``path``, down to the line (run only after it failed)."""
    if path.stat().st_size == 0:
        return f"{path} is empty (0 bytes); give it text or remove it from data.files"
    if builder not in ("text", "json"):
        return None
    with open(path, "rb") as fh:
        for number, line in enumerate(fh, start=1):
            if b"\x00" in line:
                return (f"{path} line {number} contains NUL bytes, so it is not a text file; "
                        f"remove it from data.files or strip the NULs")
            if builder == "json" and line.strip():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    return (f"{path} line {number} is not valid JSON ({err.msg}, column "
                            f"{err.colno}); each line of a .jsonl file must be one JSON object")
                if not isinstance(record, dict):
                    return (f"{path} line {number} holds a JSON {type(record).__name__}, not an "
                            f"object; each line of a .jsonl file must be one JSON object")
                value = record.get(text_field) if text_field else None
                if value is not None and not isinstance(value, str):
                    return _not_text_line(path, number, str(text_field), value)
    return None


TEXT_DTYPES = ("string", "large_string", "null")
"""Arrow types of a text column (``null``: every record lacks the text, so all are empty)."""


def text_column(dataset: Any, field: str, where: str, *, json_lines: Path | None = None) -> None:
    """Fail clearly when the records have no ``field``, or when it holds something other than
    text (a number, a list, an object): one line naming the file and, for JSON lines
    (``json_lines``), the first line at fault. A text column costs nothing more to check."""
    if field not in dataset.column_names:
        raise CocomixError(
            f"{where} has no field {field!r}; its fields: {', '.join(dataset.column_names)}. "
            f"Set data.text_field"
        )
    if getattr(dataset.features[field], "dtype", None) in TEXT_DTYPES:
        return
    if json_lines is not None:
        found = _first_non_text_line(json_lines, field)
        if found is not None:
            raise CocomixError(_not_text_line(json_lines, found[0], field, found[1]))
    row, value = next(((r, v) for r, v in enumerate(iter_texts(dataset, field))
                       if v is not None and not isinstance(v, str)), (None, None))
    if row is None:
        raise CocomixError(f"{where}: field {field!r} holds {dataset.features[field]}, not text; "
                           f"{_not_text_fix(field)}")
    raise CocomixError(f"{where} record {row + 1}: field {field!r} holds a {_json_kind(value)} "
                       f"({_short(value)}), not a string; {_not_text_fix(field)}")


def _not_text_line(path: Path, number: int, field: str, value: Any) -> str:
    return (f"{path} line {number}: field {field!r} holds a JSON {_json_kind(value)} "
            f"({_short(value)}), not a string; {_not_text_fix(field)}")


def _not_text_fix(field: str) -> str:
    return (f"write every record's {field!r} as a string, or set data.text_field to the field that "
            f"holds the text")


def _first_non_text_line(path: Path, field: str) -> tuple[int, Any] | None:
    """(line number, value) of the first JSON line whose ``field`` is neither a string nor
    missing; None when there is none or the file is one JSON document rather than JSON lines."""
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                return None
            value = record.get(field) if isinstance(record, dict) else None
            if value is not None and not isinstance(value, str):
                return number, value
    return None


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {list: "array", dict: "object"}.get(type(value), type(value).__name__)


def _short(value: Any, width: int = 40) -> str:
    text = json.dumps(value) if isinstance(value, bool | int | float | list | dict) else repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def iter_texts(dataset: Any, field: str, batch_size: int = 1000) -> Iterator[str | None]:
    """The ``field`` of every record in order, read in Arrow batches (much faster than rows)."""
    for batch in dataset.iter(batch_size=batch_size):
        yield from batch[field]
