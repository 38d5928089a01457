"""Tokenizers: byte-level (default), the synthetic language's symbols, SentencePiece, Hugging Face.

All share one small interface (`vocab_size`, `encode`, `decode`, `bos_id`, `eos_id`, `pad_id`,
`spec`). Token arrays are uint16 when every id fits (vocab <= 65,536), else uint32
(`token_dtype`). Documents are packed as
`doc_tokens + [EOS]`: the model learns where a document ends, and the token after an EOS is
the start of the next document (no BOS is inserted; `bos_id` exists for prompting).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from typing import Protocol

import numpy as np

from lab.data.errors import DataError


class Tokenizer(Protocol):
    """What the pipeline and the sampler need from a tokenizer."""

    spec: str
    vocab_size: int
    bos_id: int
    eos_id: int
    pad_id: int

    def encode(self, text: str) -> np.ndarray: ...

    def decode(self, ids: Iterable[int] | np.ndarray) -> str: ...


class ByteTokenizer:
    """UTF-8 bytes 0..255, then BOS=256, EOS=257, PAD=258 (vocab 259): lossless, needs no training."""

    spec = "byte"
    vocab_size = 259
    bos_id = 256
    eos_id = 257
    pad_id = 258

    def encode(self, text: str) -> np.ndarray:
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int32)

    def encode_bytes(self, text: str) -> np.ndarray:
        """uint8 view of the UTF-8 bytes, the cheap path used when building caches."""
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)

    def decode(self, ids: Iterable[int] | np.ndarray) -> str:
        ids_N = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids).reshape(-1)
        keep_N = ids_N[(ids_N >= 0) & (ids_N < 256) | (ids_N == self.eos_id)]
        # an EOS between packed documents reads as a blank line
        raw = np.where(keep_N == self.eos_id, 10, keep_N).astype(np.uint8).tobytes()
        return raw.decode("utf-8", errors="replace")


class SymbolTokenizer:
    """The synthetic language: symbols 0..states-1 written 't0 t17 ...', then BOS, EOS, PAD."""

    def __init__(self, states: int) -> None:
        self.states = states
        self.spec = f"symbols:{states}"
        self.bos_id = states
        self.eos_id = states + 1
        self.pad_id = states + 2
        self.vocab_size = states + 3

    def encode(self, text: str) -> np.ndarray:
        names = {"<bos>": self.bos_id, "<eos>": self.eos_id, "<pad>": self.pad_id}
        ids = []
        for word in text.split():
            if word in names:
                ids.append(names[word])
            elif word.startswith("t") and word[1:].isdigit() and int(word[1:]) < self.states:
                ids.append(int(word[1:]))
            else:
                raise DataError(
                    f"{word!r} is not a symbol of the synthetic language (t0..t{self.states - 1})"
                )
        return np.asarray(ids, dtype=np.int32)

    def decode(self, ids: Iterable[int] | np.ndarray) -> str:
        names = {self.bos_id: "<bos>", self.eos_id: "<eos>", self.pad_id: "<pad>"}
        return " ".join(names.get(int(i), f"t{int(i)}") for i in np.asarray(ids).reshape(-1))


def token_dtype(vocab_size: int) -> type[np.unsignedinteger]:
    """uint16 while every id fits (halves memory and disk), uint32 for larger vocabularies."""
    return np.uint16 if vocab_size <= 1 << 16 else np.uint32


class SentencePieceTokenizer:
    """A SentencePiece model. The lab trains BPE with PAD=0, UNK=1, BOS=2, EOS=3 and byte
    fallback (lossless); a loaded `.model` keeps its own special ids (it needs an EOS)."""

    def __init__(self, model_proto: bytes, spec: str) -> None:
        import sentencepiece as spm  # lazy: `import lab.data` stays cheap

        try:
            self._sp = spm.SentencePieceProcessor(model_proto=model_proto)
        except RuntimeError as error:
            raise DataError(f"{spec!r} is not a SentencePiece model ({error})") from error
        self.model_proto = model_proto
        self.spec = spec
        self.vocab_size = int(self._sp.vocab_size())
        self.eos_id = int(self._sp.eos_id())
        if self.eos_id < 0:
            raise DataError(
                f"SentencePiece model {spec!r} has no EOS piece; documents are packed as "
                "tokens + [EOS], so train it with eos_id >= 0"
            )
        bos, pad = int(self._sp.bos_id()), int(self._sp.pad_id())
        self.bos_id = bos if bos >= 0 else self.eos_id
        self.pad_id = pad if pad >= 0 else self.eos_id

    def encode(self, text: str) -> np.ndarray:
        return np.asarray(self._sp.encode(text), dtype=np.int32)

    def encode_many(self, texts: list[str], num_threads: int = 2) -> list[list[int]]:
        """Batch encode (SentencePiece threads it), used when building caches."""
        return self._sp.encode(texts, num_threads=num_threads)

    def decode(self, ids: Iterable[int] | np.ndarray) -> str:
        ids_N = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids).reshape(-1)
        return self._sp.decode([int(i) for i in ids_N if i != self.pad_id])


# special tokens looked up by name in a Hugging Face tokenizer, first match wins
HF_EOS_NAMES = ("</s>", "<|endoftext|>", "<|end_of_text|>", "<eos>", "[SEP]", "<|eos|>")
HF_BOS_NAMES = ("<s>", "<|begin_of_text|>", "<bos>", "[CLS]", "<|bos|>")
HF_PAD_NAMES = ("<pad>", "[PAD]", "<|pad|>")


class HuggingFaceTokenizer:
    """A Hugging Face `tokenizers` model (`tokenizer.json`); EOS/BOS/PAD found by their usual names.

    Encoding skips the post-processor's special tokens (`add_special_tokens=False`): the lab
    packs documents as tokens + [EOS] itself.
    """

    def __init__(self, json_text: str, spec: str) -> None:
        from tokenizers import Tokenizer as HFTokenizer  # lazy: only for this tokenizer

        try:
            self._tok = HFTokenizer.from_str(json_text)
        except Exception as error:  # the Rust side raises a plain Exception
            raise DataError(f"{spec!r} is not a Hugging Face tokenizer.json ({error})") from error
        self.json_text = json_text
        self.spec = spec
        self.vocab_size = int(self._tok.get_vocab_size(with_added_tokens=True))
        eos = self._find(HF_EOS_NAMES)
        if eos is None:
            raise DataError(
                f"Hugging Face tokenizer {spec!r} has none of the end-of-text tokens "
                f"{list(HF_EOS_NAMES)}; add one (documents are packed as tokens + [EOS])"
            )
        self.eos_id = eos
        self.bos_id = self._find(HF_BOS_NAMES) or eos
        pad = self._find(HF_PAD_NAMES)
        self.pad_id = eos if pad is None else pad

    def _find(self, names: tuple[str, ...]) -> int | None:
        for name in names:
            token_id = self._tok.token_to_id(name)
            if token_id is not None:
                return int(token_id)
        return None

    def encode(self, text: str) -> np.ndarray:
        return np.asarray(self._tok.encode(text, add_special_tokens=False).ids, dtype=np.int32)

    def encode_many(self, texts: list[str], num_threads: int = 2) -> list[list[int]]:
        """Batch encode (the Rust side parallelises it)."""
        return [e.ids for e in self._tok.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: Iterable[int] | np.ndarray) -> str:
        ids_N = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids).reshape(-1)
        return self._tok.decode([int(i) for i in ids_N], skip_special_tokens=False)


def _lines(docs: Iterable[str]) -> Iterator[str]:
    """Training sentences: lines of the documents (newlines become their own symbol)."""
    for doc in docs:
        yield from doc.split("\n")


def train_sentencepiece(
    docs: Iterable[str], vocab_size: int, *, max_sentences: int = 2_000_000
) -> bytes:
    """Train a BPE model on the training documents only (fixed RNG seed); returns the model."""
    import sentencepiece as spm

    spm.set_random_generator_seed(0)

    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=_lines(docs),
            model_writer=model,
            vocab_size=vocab_size,
            model_type="bpe",
            normalization_rule_name="identity",
            remove_extra_whitespaces=False,
            allow_whitespace_only_pieces=True,
            byte_fallback=True,
            user_defined_symbols=["\n"],
            character_coverage=1.0,
            pad_id=0,
            unk_id=1,
            bos_id=2,
            eos_id=3,
            input_sentence_size=max_sentences,
            shuffle_input_sentence=True,
            max_sentence_length=1 << 16,
            num_threads=2,
            minloglevel=2,
        )
    except RuntimeError as error:
        raise DataError(
            f"SentencePiece could not train a {vocab_size}-token vocabulary on this corpus "
            f"({error}); the vocabulary holds 256 byte pieces, 5 specials and every character "
            "of the corpus, and cannot exceed the pieces the corpus supports: pick another size"
        ) from error
    return model.getvalue()
