"""A SentencePiece BPE ``.model`` as a Hugging Face fast tokenizer with the same ids.

``transformers``' own ``SpmConverter`` does not reproduce our tokenizer's ids: it splits the
text at every ``▁`` before BPE (so the whitespace-only pieces that
``allow_whitespace_only_pieces`` trains, e.g. ``▁▁▁``, can never form) and prepends ``▁`` after
every added token (our ``\\n`` piece). SentencePiece's BPE does neither: it normalises the whole
text once (``▁`` for each space, one dummy ``▁`` at the very start), keeps user-defined pieces
whole, and then merges adjacent symbols, the pair whose merged piece has the highest score
first (leftmost on ties), whenever that piece is in the vocabulary; characters left outside
the vocabulary become their UTF-8 byte pieces. The equivalent ``tokenizers`` pipeline, built
here:

- normaliser: prepend ``▁`` (only to a non-empty text), replace ``" "`` by ``▁``;
- pre-tokeniser: the user-defined pieces split out as words of their own, after normalising
  (so a text starting with ``\\n`` keeps the dummy ``▁`` in front of it, as SentencePiece
  does); between them the text stays one BPE word;
- model: BPE with every merge ``(a, b)`` whose pieces ``a``, ``b`` and ``ab`` are in the
  vocabulary, ranked by ``ab``'s score, with byte fallback;
- decoder: ``▁`` back to spaces, byte pieces fused back into characters, the dummy space cut.

Only BPE models with SentencePiece's ``identity`` normalisation (ours) are converted; anything
else is refused by name rather than converted approximately.
"""

from __future__ import annotations

import re
from pathlib import Path

from cocomix.registry import CocomixError

SPACE = "\u2581"
"""SentencePiece's escaped space, ``▁``."""

# sentencepiece_model.proto ModelProto.SentencePiece.Type
_NORMAL, _UNKNOWN, _CONTROL, _USER_DEFINED, _BYTE = 1, 2, 3, 4, 6


def _read_model(path: Path):  # noqa: ANN202 (protobuf message type)
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto()
    try:
        proto.ParseFromString(Path(path).read_bytes())
    except Exception as err:  # noqa: BLE001 (protobuf's DecodeError and I/O errors)
        raise CocomixError(f"{path} is not a SentencePiece model ({err})") from None
    return proto


def _check_convertible(proto, path: Path) -> None:  # noqa: ANN001
    trainer, normalizer = proto.trainer_spec, proto.normalizer_spec
    if trainer.model_type != trainer.BPE:
        kind = trainer.ModelType.Name(trainer.model_type).lower()
        raise CocomixError(f"{path} is a SentencePiece {kind} model; the export converts BPE models only")
    problems = []
    if normalizer.name not in ("identity", "") or normalizer.precompiled_charsmap:
        problems.append(f"normalisation {normalizer.name!r} (only 'identity' is converted)")
    if normalizer.remove_extra_whitespaces:
        problems.append("remove_extra_whitespaces")
    if not normalizer.escape_whitespaces:
        problems.append("escape_whitespaces off")
    if trainer.treat_whitespace_as_suffix:
        problems.append("treat_whitespace_as_suffix")
    if problems:
        raise CocomixError(f"{path} uses {', '.join(problems)}; the export cannot reproduce its ids")


def sentencepiece_to_fast(path: Path | str):  # noqa: ANN201 (tokenizers.Tokenizer)
    """The ``tokenizers.Tokenizer`` that encodes every text to the ids ``path`` gives."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import BPE

    path = Path(path)
    proto = _read_model(path)
    _check_convertible(proto, path)
    vocab = {piece.piece: i for i, piece in enumerate(proto.pieces)}
    mergeable = {p.piece: (i, p.score) for i, p in enumerate(proto.pieces) if p.type == _NORMAL}
    merges = []
    for piece, (index, score) in mergeable.items():
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in mergeable and right in mergeable:
                merges.append((-score, index, cut, left, right))
    merges.sort()  # highest score first; SentencePiece BPE scores are distinct per piece
    unk = next((p.piece for p in proto.pieces if p.type == _UNKNOWN), None)
    has_bytes = any(p.type == _BYTE for p in proto.pieces)
    tokenizer = Tokenizer(BPE(vocab=vocab, merges=[(m[3], m[4]) for m in merges], unk_token=unk,
                              byte_fallback=has_bytes, fuse_unk=True))
    dummy = proto.normalizer_spec.add_dummy_prefix
    tokenizer.normalizer = normalizers.Sequence(
        [*([normalizers.Prepend(SPACE)] if dummy else []), normalizers.Replace(" ", SPACE)]
    )
    # User-defined pieces (our "\n") are atomic in SentencePiece: split them out of the
    # normalised text as words of their own. (Added tokens would not do: tokenizers normalises
    # an added token's own text too, turning "\n" into "▁\n".)
    user = [p.piece for p in proto.pieces if p.type == _USER_DEFINED]
    if user:
        pattern = "|".join(re.escape(p) for p in sorted(user, key=len, reverse=True))
        tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(pattern), behavior="isolated")
    tokenizer.decoder = decoders.Sequence([
        decoders.Replace(SPACE, " "), decoders.ByteFallback(), decoders.Fuse(),
        *([decoders.Strip(" ", 1, 0)] if dummy else []),
    ])
    # Control pieces (<s>, </s>, <pad>) never come out of encoding text, only from the caller:
    # they are special tokens, and the same characters in a text are encoded as text.
    control = [p.piece for p in proto.pieces if p.type in (_CONTROL, _UNKNOWN)]
    tokenizer.add_special_tokens([AddedToken(p, normalized=False, special=True) for p in control])
    tokenizer.encode_special_tokens = True
    return tokenizer
