"""Tokenizers from a spec: byte, trained SentencePiece, or a file (SentencePiece `.model`, HF `tokenizer.json`).

A tokenizer that is not `byte` has a file (the trained or loaded model). Caches and prepared
directories keep a copy of it next to the tokens (`TOKENIZER_FILES`), and its bytes enter the
fingerprint, so a run reads the exact tokenizer its tokens were made with, never the
original path (which may not exist on the training machine).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from lab.data.errors import DataError
from lab.data.tokenizers import (
    ByteTokenizer,
    HuggingFaceTokenizer,
    SentencePieceTokenizer,
    Tokenizer,
    train_sentencepiece,
)

# the name of the saved copy, by spec kind
TOKENIZER_FILES = {"sentencepiece": "tokenizer.model", "hf": "tokenizer.json"}


def spec_kind(spec: str) -> str:
    """'byte', 'sentencepiece' (trained or a .model) or 'hf'."""
    return "byte" if spec == "byte" else spec.partition(":")[0]


def tokenizer_path(spec: str) -> Path:
    """The file a 'sentencepiece:PATH.model' or 'hf:PATH' spec names (a directory means its tokenizer.json)."""
    path = Path(os.path.expanduser(spec.partition(":")[2]))
    if spec_kind(spec) == "hf" and path.is_dir():
        path = path / "tokenizer.json"
    return path


def tokenizer_from_bytes(spec: str, data: bytes) -> Tokenizer:
    """A SentencePiece or Hugging Face tokenizer from its file's bytes."""
    if spec_kind(spec) == "hf":
        return HuggingFaceTokenizer(data.decode("utf-8"), spec)
    return SentencePieceTokenizer(data, spec)


def load_tokenizer_file(spec: str) -> Tokenizer:
    """The tokenizer a file spec names, read from its path; DataError if it cannot be read."""
    path = tokenizer_path(spec)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DataError(
            f"cannot read the tokenizer file of {spec!r} ({error.strerror}: {path}); check the path"
        ) from error
    return tokenizer_from_bytes(spec, data)


def make_tokenizer(
    spec: str, train_texts: Callable[[], Iterable[str]]
) -> tuple[Tokenizer, bytes | None]:
    """The tokenizer of a spec and its file's bytes (None for byte); SentencePiece:N trains on `train_texts()`."""
    if spec == "byte":
        return ByteTokenizer(), None
    rest = spec.partition(":")[2]
    if spec_kind(spec) == "sentencepiece" and rest.isdigit():
        model = train_sentencepiece(train_texts(), int(rest))
        return SentencePieceTokenizer(model, spec), model
    tokenizer = load_tokenizer_file(spec)
    data = tokenizer_path(spec).read_bytes()
    return tokenizer, data


def saved_tokenizer(spec: str, directory: Path) -> Tokenizer:
    """The tokenizer saved next to tokens (cache or prepared directory) under `TOKENIZER_FILES`."""
    if spec == "byte":
        return ByteTokenizer()
    return tokenizer_from_bytes(spec, (directory / TOKENIZER_FILES[spec_kind(spec)]).read_bytes())
