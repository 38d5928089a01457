"""Data of the lab: corpora with content fingerprints, tokenizers, held-out splits, token streams.

Modules: `config` (DataConfig, tokenizer specs), `corpus` (in-memory corpora, cached),
`sources` (documents of stdlib / text / TFDS), `textds` (text files as a TFDS dataset),
`tokenizers` (byte, symbols, SentencePiece, Hugging Face), `tokenizer_files` (a spec -> a
tokenizer and its saved file), `stream` (TokenStream: exactly D tokens, resumable), `pool`
(capped unique-token pools), `synthetic`, `arrays` (host rows -> global jax.Arrays);
corpora larger than memory: `doc_table` (documents by index), `shards` (ArrayRecord token
shards: writer and random-access reader), `prepare` (`data prepare`: parallel, resumable),
`prepared` (`prepared:DIR` corpora and their grain-ordered stream); `remote_dir` (a TFDS
data dir on gs://, mirrored to local disk for array_record).

`import lab.data` is cheap: numpy only. TFDS, SentencePiece, tokenizers, grain and JAX load
inside the functions that need them (`global_batch` is the only JAX entry point).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lab.data.config import DataConfig, default_data_dir
from lab.data.corpus import Corpus, load_corpus
from lab.data.errors import DataError, DataWarning
from lab.data.stream import TokenStream
from lab.data.tokenizers import (
    ByteTokenizer,
    HuggingFaceTokenizer,
    SentencePieceTokenizer,
    SymbolTokenizer,
    Tokenizer,
)

if TYPE_CHECKING:
    import jax
    import numpy as np

__all__ = [
    "ByteTokenizer",
    "Corpus",
    "DataConfig",
    "DataError",
    "DataWarning",
    "HuggingFaceTokenizer",
    "SentencePieceTokenizer",
    "SymbolTokenizer",
    "TokenStream",
    "Tokenizer",
    "default_data_dir",
    "global_batch",
    "global_batch_stack",
    "load_corpus",
]


def global_batch(local_batch: np.ndarray, mesh: Any) -> jax.Array:
    """This process's [local_B, T] rows -> the global [B, T] jax.Array sharded on batch."""
    from lab.data.arrays import global_batch as impl

    return impl(local_batch, mesh)


def global_batch_stack(local_batches: np.ndarray, mesh: Any) -> jax.Array:
    """This process's [k, local_B, T] rows -> the global [k, B, T] jax.Array (steps_per_call > 1)."""
    from lab.data.arrays import global_batch_stack as impl

    return impl(local_batches, mesh)
