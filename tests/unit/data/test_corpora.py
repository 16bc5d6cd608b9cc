"""Corpora: the shipped pd_english slice, pystdlib, local files and the HF loaders, offline."""

from __future__ import annotations

import hashlib
import json
import shutil
import sysconfig
from collections import Counter
from pathlib import Path

import pytest

from cocomix.data.corpora import (
    Corpus,
    Document,
    HubTextConfig,
    LocalTextConfig,
    PdEnglishConfig,
    PyStdlibConfig,
    build_corpus,
)
from cocomix.registry import CORPORA, CocomixError, UnknownNameError

REPO = Path(__file__).resolve().parents[3]
SLICE = REPO / "assets" / "pd_english"
ALL_SOURCES = ("sotu", "brown", "shakespeare", "austen", "web_bible", "moby_dick")


@pytest.fixture(autouse=True)
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep HF's Arrow caches of test files out of the user's cache."""
    monkeypatch.delenv("COCOMIX_ASSETS", raising=False)
    try:
        import datasets.config
    except ImportError:  # pragma: no cover - the venv has datasets
        return
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_cache")


def texts(corpus: Corpus, split: str) -> list[str]:
    return [d.text for d in corpus.documents(split)]


# ---------------------------------------------------------------------------------- pd_english


@pytest.fixture(scope="module")
def pd() -> Corpus:
    return build_corpus("pd_english")


def test_pd_english_splits_sources_and_documents(pd: Corpus) -> None:
    assert pd.name == "pd_english"
    assert pd.splits() == ("train", "valid", "test")
    assert pd.sources() == ALL_SOURCES
    for split in pd.splits():
        docs = list(pd.documents(split))
        assert docs and all(isinstance(d, Document) and d.text.strip() for d in docs)
        assert {d.source for d in docs} == set(ALL_SOURCES)  # every source in every split
    valid = Counter(d.source for d in pd.documents("valid"))
    assert len(valid) >= 4 and all(n >= 2 for n in valid.values())
    assert valid["sotu"] < sum(valid.values()) / 2  # never SOTU alone, nor mostly


def test_pd_english_held_out_text_is_not_in_train(pd: Corpus) -> None:
    train = set(texts(pd, "train"))
    assert not train & set(texts(pd, "valid"))
    assert not train & set(texts(pd, "test"))
    assert not set(texts(pd, "valid")) & set(texts(pd, "test"))


def test_pd_english_is_deterministic_and_fingerprint_stable(pd: Corpus) -> None:
    again = build_corpus("pd_english")
    assert texts(again, "valid") == texts(pd, "valid")
    assert again.fingerprint() == pd.fingerprint()
    assert len(pd.fingerprint()) == 16 and int(pd.fingerprint(), 16) >= 0


def test_pd_english_options_filter_and_cut(pd: Corpus) -> None:
    only = build_corpus("pd_english", PdEnglishConfig(sources=["austen", "brown"]))
    assert only.sources() == ("brown", "austen")  # manifest order
    assert {d.source for d in only.documents("valid")} == {"austen", "brown"}
    cut = build_corpus("pd_english", PdEnglishConfig(max_train_docs=30))
    first = list(cut.documents("train"))
    assert [d.text for d in first] == texts(pd, "train")[:30]
    assert len({d.source for d in first}) >= 4  # train is interleaved across sources
    assert len(texts(cut, "valid")) == len(texts(pd, "valid"))  # held-out splits are never cut
    fingerprints = {pd.fingerprint(), only.fingerprint(), cut.fingerprint()}
    assert len(fingerprints) == 3
    # Options that do not change the text do not change the fingerprint.
    same = build_corpus(
        "pd_english", PdEnglishConfig(sources=list(ALL_SOURCES), max_train_docs=10**9)
    )
    assert same.fingerprint() == pd.fingerprint()


def test_pd_english_manifest_matches_the_shipped_files() -> None:
    manifest = json.loads((SLICE / "MANIFEST.json").read_text(encoding="utf-8"))
    assert set(manifest["files"]) == {"train.jsonl.xz", "valid.jsonl.xz", "test.jsonl.xz"}
    for name, entry in manifest["files"].items():
        data = (SLICE / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], name
        assert len(data) == entry["bytes"]
    total = sum(entry["bytes"] for entry in manifest["files"].values())
    assert total < 4_000_000  # the shipped asset stays small
    for source in ALL_SOURCES:
        src = manifest["sources"][source]
        assert len(src["sha256"]) == 64 and src["licence"] and src["version"]
    corpus = build_corpus("pd_english")
    for split in ("valid", "test"):
        counts = Counter(d.source for d in corpus.documents(split))
        assert counts == {
            s: manifest["sources"][s]["splits"][split]["documents"] for s in ALL_SOURCES
        }
    assert "pd_english" in (REPO / "assets" / "MANIFEST.md").read_text(encoding="utf-8")


def test_pd_english_refuses_a_changed_file(
    pd: Corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "assets" / "pd_english"
    shutil.copytree(SLICE, copy)
    monkeypatch.setenv("COCOMIX_ASSETS", str(tmp_path / "assets"))
    corpus = build_corpus("pd_english")
    assert texts(corpus, "test") == texts(pd, "test")  # COCOMIX_ASSETS moves the slice
    (copy / "valid.jsonl.xz").write_bytes(b"not the shipped file")
    with pytest.raises(CocomixError, match="valid.jsonl.xz does not match the sha256"):
        list(corpus.documents("valid"))
    monkeypatch.setenv("COCOMIX_ASSETS", str(tmp_path / "nowhere"))
    with pytest.raises(CocomixError, match="build_corpus.py"):
        build_corpus("pd_english")


def test_pd_english_errors_name_the_problem(pd: Corpus) -> None:
    with pytest.raises(
        CocomixError, match=r"no split 'validation'; its splits: train, valid, test"
    ):
        list(pd.documents("validation"))
    with pytest.raises(CocomixError, match=r"no source 'dickens'.*sotu"):
        build_corpus("pd_english", PdEnglishConfig(sources=["dickens"]))


def test_unknown_corpus_name_lists_the_known_ones() -> None:
    with pytest.raises(UnknownNameError, match=r"unknown data 'pd_englsh'.*pd_english") as info:
        build_corpus("pd_englsh")
    assert isinstance(info.value, CocomixError)
    assert {"pd_english", "pystdlib", "openwebtext", "openwebmath", "local"} <= set(CORPORA.names())


# ---------------------------------------------------------------------------------- pystdlib


def test_pystdlib_excludes_tests_and_is_deterministic() -> None:
    cfg = PyStdlibConfig(valid_fraction=0.2, test_fraction=0.2, max_files=150)
    corpus = build_corpus("pystdlib", cfg)
    assert corpus.splits() == ("train", "valid", "test")
    assert len(corpus.sources()) == 150
    for rel in corpus.sources():
        assert not {"test", "tests", "idle_test", "site-packages"} & set(Path(rel).parts[:-1])
    split_docs = {s: list(corpus.documents(s)) for s in corpus.splits()}
    assert all(split_docs.values())
    names = [d.source for docs in split_docs.values() for d in docs]
    assert len(names) == len(set(names))  # each file in one split only
    again = build_corpus("pystdlib", cfg)
    assert texts(again, "valid") == [d.text for d in split_docs["valid"]]
    assert again.fingerprint() == corpus.fingerprint()
    other = build_corpus(
        "pystdlib", PyStdlibConfig(valid_fraction=0.2, test_fraction=0.2, max_files=100)
    )
    assert other.fingerprint() != corpus.fingerprint()
    # A file keeps its split whatever else is in the corpus.
    where = {d.source: s for s, docs in split_docs.items() for d in docs}
    assert all(where[d.source] == s for s in other.splits() for d in other.documents(s))


def test_pystdlib_skips_non_utf8_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for rel, data in {
        "good.py": b"x = 1\n",
        "pkg/mod.py": "s = 'caf\u00e9'\n".encode(),
        "latin.py": "s = 'caf\u00e9'\n".encode("latin-1"),
        "empty.py": b"\n",
        "test/t.py": b"t = 1\n",
        "pkg/tests/t.py": b"t = 1\n",
        "idlelib/idle_test/t.py": b"t = 1\n",
        "site-packages/p.py": b"p = 1\n",
    }.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    monkeypatch.setattr(sysconfig, "get_paths", lambda *a, **k: {"stdlib": str(tmp_path)})
    corpus = build_corpus("pystdlib", PyStdlibConfig(valid_fraction=0.0, test_fraction=0.0))
    assert corpus.sources() == ("empty.py", "good.py", "latin.py", "pkg/mod.py")
    assert [d.source for d in corpus.documents("train")] == ["good.py", "pkg/mod.py"]
    assert corpus.skipped == ("latin.py",)


# ---------------------------------------------------------------------------------- local files


@pytest.fixture
def local_files(tmp_path: Path) -> dict[str, Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    text = tmp_path / "prose.txt"
    text.write_text(
        "\n\n".join(f"Paragraph {i} of the text file.\nIts second line." for i in range(40)) + "\n"
    )
    jsonl = tmp_path / "records.jsonl"
    jsonl.write_text(
        "".join(json.dumps({"body": f"json record {i}", "id": i}) + "\n" for i in range(30))
        + json.dumps({"body": "", "id": 30})
        + "\n"
    )
    parquet = tmp_path / "table.parquet"
    pq.write_table(pa.table({"body": [f"parquet row {i}" for i in range(25)]}), parquet)
    return {"text": text, "json": jsonl, "parquet": parquet}


def test_local_reads_text_jsonl_and_parquet(local_files: dict[str, Path]) -> None:
    prose = build_corpus(
        "local", LocalTextConfig(files=[str(local_files["text"])], valid_fraction=0.1)
    )
    train, valid = list(prose.documents("train")), list(prose.documents("valid"))
    assert (len(train), len(valid)) == (36, 4)  # one document per paragraph
    assert {d.source for d in train + valid} == {str(local_files["text"])}
    assert all(d.text.startswith("Paragraph") for d in train)

    cfg = LocalTextConfig(
        files=[str(local_files["json"]), str(local_files["parquet"])],
        text_field="body",
        valid_fraction=0.1,
        split_seed=3,
    )
    mixed = build_corpus("local", cfg)
    all_texts = texts(mixed, "train") + texts(mixed, "valid")
    assert len(all_texts) == 55 and "" not in all_texts  # the empty record is dropped
    assert len(texts(mixed, "valid")) == 6
    assert mixed.sources() == (str(local_files["json"]), str(local_files["parquet"]))
    again = build_corpus("local", cfg)
    assert texts(again, "valid") == texts(mixed, "valid")
    assert again.fingerprint() == mixed.fingerprint()
    reseeded = build_corpus("local", LocalTextConfig(**{**cfg.__dict__, "split_seed": 4}))
    assert reseeded.fingerprint() != mixed.fingerprint()
    local_files["json"].write_text(
        json.dumps({"body": "changed"}) + "\n" + json.dumps({"body": "x"}) + "\n"
    )
    assert build_corpus("local", cfg).fingerprint() != mixed.fingerprint()


def test_local_errors_name_the_file(tmp_path: Path, local_files: dict[str, Path]) -> None:
    missing = tmp_path / "nope.txt"
    with pytest.raises(CocomixError, match=f"{missing} does not exist"):
        build_corpus("local", LocalTextConfig(files=[str(missing)]))
    blank = tmp_path / "blank.txt"
    blank.write_text("\n\n   \n\n")
    with pytest.raises(CocomixError, match="empty"):
        list(build_corpus("local", LocalTextConfig(files=[str(blank)])).documents("train"))
    latin = tmp_path / "latin.txt"
    latin.write_bytes("Caf\u00e9 au lait.\n".encode("latin-1"))
    with pytest.raises(CocomixError, match=f"{latin} is not valid UTF-8.*re-encode"):
        list(build_corpus("local", LocalTextConfig(files=[str(latin)])).documents("train"))
    with pytest.raises(CocomixError, match="no field 'text'.*body"):
        list(
            build_corpus("local", LocalTextConfig(files=[str(local_files["json"])])).documents(
                "train"
            )
        )
    odd = tmp_path / "data.csv"
    odd.write_text("a,b\n")
    with pytest.raises(CocomixError, match="data.csv.*data.format"):
        build_corpus("local", LocalTextConfig(files=[str(odd)]))
    with pytest.raises(CocomixError, match="needs files"):
        build_corpus("local")


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        # A number among strings ({"text": 5}) was an AttributeError from `text.strip()`.
        (['{"text": "a"}', '{"text": 5}'], "line 2: field 'text' holds a JSON number (5), not a string"),
        (['{"text": 5}', '{"text": 6}'], "line 1: field 'text' holds a JSON number (5), not a string"),
        (['{"text": "a"}', '', '{"text": ["a", "b"]}'], 'line 3: field \'text\' holds a JSON array (["a", "b"]), not a string'),
        (['{"text": "a"}', '{"text": {"b": 1}}'], "line 2: field 'text' holds a JSON object ({\"b\": 1}), not a string"),
        (['{"text": "a"}', '{"text": true}'], "line 2: field 'text' holds a JSON boolean (true), not a string"),
    ],
)
def test_local_jsonl_text_that_is_not_a_string_names_the_line(
    tmp_path: Path, lines: list[str], expected: str
) -> None:
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(CocomixError) as info:
        list(build_corpus("local", LocalTextConfig(files=[str(path)])).documents("train"))
    assert str(info.value) == (f"{path} {expected}; write every record's 'text' as a string, or set "
                               f"data.text_field to the field that holds the text")


def test_local_parquet_text_that_is_not_a_string_names_the_record(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "numbers.parquet"
    pq.write_table(pa.table({"text": [3, 4]}), path)
    with pytest.raises(CocomixError, match=r"numbers.parquet record 1: field 'text' holds a number \(3\), not a string"):
        list(build_corpus("local", LocalTextConfig(files=[str(path)])).documents("train"))
    # A missing text (null) is an empty document, as before: dropped, not refused.
    kept = tmp_path / "with_null.jsonl"
    kept.write_text('{"text": "one document"}\n{"text": null}\n{"text": "another"}\n')
    assert len(list(build_corpus("local", LocalTextConfig(files=[str(kept)], valid_fraction=0.0)).documents("train"))) == 2


# ---------------------------------------------------------------------------------- HF loaders


def test_openwebtext_on_a_local_parquet_stand_in(tmp_path: Path) -> None:
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "owt"
    folder.mkdir()
    rows = [f"web page number {i}" for i in range(200)]
    pq.write_table(pa.table({"content": rows[:120], "url": ["u"] * 120}), folder / "part-0.parquet")
    pq.write_table(pa.table({"content": rows[120:], "url": ["u"] * 80}), folder / "part-1.parquet")
    cfg = HubTextConfig(
        path=str(folder), text_field="content", valid_fraction=0.05, split_seed=2357
    )
    corpus = build_corpus("openwebtext", cfg)
    assert corpus.name == "openwebtext" and corpus.splits() == ("train", "valid")
    train, valid = texts(corpus, "train"), texts(corpus, "valid")
    assert len(valid) == 10 and len(train) == 190
    assert sorted(train + valid) == sorted(rows)
    # The same split the paper's nanoGPT-style preparation makes.
    whole = datasets.load_dataset(
        "parquet", data_files=sorted(map(str, folder.glob("*.parquet"))), split="train"
    )
    expected = whole.train_test_split(test_size=0.05, seed=2357, shuffle=True)["test"]["content"]
    assert valid == expected
    assert build_corpus("openwebtext", cfg).fingerprint() == corpus.fingerprint()
    math = build_corpus(
        "openwebmath", HubTextConfig(path=str(folder), text_field="content", valid_fraction=0.05)
    )
    assert math.name == "openwebmath" and math.fingerprint() != corpus.fingerprint()
    assert CORPORA.get("openwebmath").default_config().path == "open-web-math/open-web-math"
    with pytest.raises(CocomixError, match="no field 'text'.*content"):
        list(build_corpus("openwebtext", HubTextConfig(path=str(folder))).documents("train"))


def test_openwebtext_paths_that_cannot_be_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(CocomixError, match="neither an existing file or folder nor a hub id"):
        build_corpus("openwebtext", HubTextConfig(path=str(tmp_path / "missing")))
    import datasets.config

    # Offline (as in CI): a hub id is a clear error that says how to use local files.
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    corpus = build_corpus("openwebtext")
    with pytest.raises(CocomixError, match=r"not available offline.*data.path="):
        list(corpus.documents("valid"))
