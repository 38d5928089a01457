"""`DataConfig`: which corpus, which tokenizer, which held-out split; plain data, no I/O.

Corpus names:
  stdlib                  Python standard library sources of the running interpreter (default)
  synthetic               a seeded sparse Markov language with closed-form entropy rate
  tfds:NAME[/CONFIG]      a prepared TFDS dataset in ArrayRecord format, read without TensorFlow
  text:PATH[,PATH...]     local text files (globs ok), built once into a TFDS ArrayRecord dataset
  prepared:DIR            token shards written by `scaling-lab data prepare` (read from disk,
                          never loaded whole: corpora larger than memory)

Tokenizers:
  byte                    UTF-8 bytes (default)
  sentencepiece:N         BPE with N pieces, trained on the training split
  sentencepiece:PATH      an existing SentencePiece model file (PATH ends in .model)
  hf:PATH                 a Hugging Face `tokenizers` file (tokenizer.json, or a directory with one)
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any, Self

from lab.data.errors import DataError

SYNTHETIC_DEFAULTS: dict[str, Any] = {
    "states": 128,  # symbols of the language (vocabulary without specials)
    "fanout": 16,  # successors per symbol (sparse transition rows)
    "zipf": 1.0,  # row weights proportional to 1 / rank**zipf
    "doc_len": 256,  # mean document length in tokens, EOS included (geometric)
    "n_docs": 16384,  # documents generated (about n_docs * doc_len tokens)
    "seed": 0,  # seed of the language (transition table) and of the sample
}


def default_data_dir() -> Path:
    """$SCALING_LAB_DATA, else ~/.cache/scaling-lab: datasets, builds and token caches live here."""
    env = os.environ.get("SCALING_LAB_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "scaling-lab"


def mirror_root(url: str) -> Path:
    """The local mirror of the data dir `url` (gs://...): its datasets, copied there by
    lab.data.remote_dir because array_record reads local files only, and its token caches."""
    scheme, rest = str(url).split("://", 1)
    return default_data_dir() / "mirror" / scheme / rest.strip("/")


CORPUS_KINDS = ("tfds", "text", "prepared")
MAX_VOCAB = 1 << 22  # ids above 65,535 are stored as uint32


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Which tokens a run trains and evaluates on; its dict goes into every run's provenance.

    `eval_seed` fixes the held-out documents and must stay fixed across a sweep (independent
    of the run seed) so that all runs are evaluated on the same text. `tfds_split` is the TFDS
    split the documents come from (TFDS slicing syntax, e.g. "train[:10%]"); the held-out
    documents are drawn from it, so eval and train never share a document. `unique_tokens`
    caps the training split at that many tokens (see `lab.data.pool`): runs longer than the
    pool repeat it, which is how a sweep measures the cost of repeated data.
    """

    corpus: str = "stdlib"
    tokenizer: str = "byte"
    eval_fraction: float = 0.02
    eval_seed: int = 0
    data_dir: str | None = None
    max_epochs: float = 1.0
    synthetic: dict | None = None
    tfds_split: str = "train"
    unique_tokens: int | None = None

    def __post_init__(self) -> None:
        kind = self.corpus.split(":", 1)[0]
        if self.corpus not in ("stdlib", "synthetic") and kind not in CORPUS_KINDS:
            raise DataError(
                f"unknown corpus {self.corpus!r}; use 'stdlib', 'synthetic', "
                "'tfds:NAME[/CONFIG]', 'text:PATH[,PATH...]' or 'prepared:DIR'"
            )
        if kind in CORPUS_KINDS and not self.corpus.split(":", 1)[1].strip():
            raise DataError(f"corpus {self.corpus!r} names nothing after '{kind}:'")
        check_tokenizer_spec(self.tokenizer)
        if not (isinstance(self.eval_fraction, int | float) and 0 < self.eval_fraction < 0.5):
            raise DataError(f"eval_fraction must be in (0, 0.5), got {self.eval_fraction!r}")
        if isinstance(self.eval_seed, bool) or not isinstance(self.eval_seed, int):
            raise DataError(f"eval_seed must be an integer, got {self.eval_seed!r}")
        if not (isinstance(self.max_epochs, int | float) and math.isfinite(self.max_epochs)):
            raise DataError(f"max_epochs must be a finite number, got {self.max_epochs!r}")
        if self.max_epochs <= 0:
            raise DataError(f"max_epochs must be > 0, got {self.max_epochs}")
        if self.unique_tokens is not None and (
            isinstance(self.unique_tokens, bool)
            or not isinstance(self.unique_tokens, int)
            or self.unique_tokens < 2
        ):
            raise DataError(
                f"unique_tokens must be an integer >= 2 (or absent), got {self.unique_tokens!r}"
            )
        if self.synthetic is not None:
            unknown = set(self.synthetic) - set(SYNTHETIC_DEFAULTS)
            if unknown:
                raise DataError(
                    f"unknown synthetic option(s) {sorted(unknown)}; known: {sorted(SYNTHETIC_DEFAULTS)}"
                )
            if self.corpus != "synthetic":
                raise DataError("synthetic options given but corpus is not 'synthetic'")

    @property
    def root(self) -> Path:
        """The local data directory actually used (for a gs:// data_dir, its local mirror:
        lab.data.remote_dir)."""
        if self.data_dir and "://" in str(self.data_dir):
            return mirror_root(self.data_dir)
        return Path(self.data_dir).expanduser() if self.data_dir else default_data_dir()

    def synthetic_options(self) -> dict[str, Any]:
        """Defaults overlaid with the user's synthetic options."""
        return {**SYNTHETIC_DEFAULTS, **(self.synthetic or {})}

    def __hash__(self) -> int:  # `synthetic` is a dict; hash the canonical JSON instead
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Self:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise DataError(f"unknown data config key(s) {sorted(unknown)}; known: {sorted(names)}")
        return cls(**d)


def check_tokenizer_spec(spec: str) -> str:
    """The tokenizer's kind ('byte', 'sentencepiece', 'sentencepiece-file', 'hf'); raises on a bad spec.

    Syntax only: no file is opened, so a config naming a tokenizer file that lives on another
    machine still parses.
    """
    if not isinstance(spec, str):
        raise DataError(f"tokenizer must be a string, got {spec!r}")
    if spec == "byte":
        return "byte"
    kind, _, rest = spec.partition(":")
    if kind == "sentencepiece" and rest.isdigit() and 300 <= int(rest) <= MAX_VOCAB:
        return "sentencepiece"
    if kind == "sentencepiece" and rest.endswith(".model"):
        return "sentencepiece-file"
    if kind == "hf" and rest.strip():
        return "hf"
    raise DataError(
        f"unknown tokenizer {spec!r}; use 'byte', 'sentencepiece:VOCAB_SIZE' (300..{MAX_VOCAB:,}, "
        "e.g. 4096), 'sentencepiece:PATH.model' (an existing model) or 'hf:PATH' "
        "(a Hugging Face tokenizer.json)"
    )


def tokenizer_vocab(spec: str) -> int | None:
    """Vocabulary size a tokenizer spec asks for (None for 'byte'); raises on a bad spec.

    For a tokenizer file the size is read from the file when it exists here, else None.
    """
    kind = check_tokenizer_spec(spec)
    if kind == "byte":
        return None
    if kind == "sentencepiece":
        return int(spec.partition(":")[2])
    from lab.data.tokenizer_files import load_tokenizer_file

    try:
        return load_tokenizer_file(spec).vocab_size
    except DataError:
        return None
