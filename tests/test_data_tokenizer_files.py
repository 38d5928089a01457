"""Existing tokenizers: a SentencePiece `.model` and a Hugging Face `tokenizer.json`, built here
offline; uint32 token ids when the vocabulary needs them."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from test_data_prepare import is_held_out, write_docs

from lab.data import DataConfig, DataError, load_corpus
from lab.data.config import tokenizer_vocab
from lab.data.prepare import PrepareOptions, prepare


def _docs_text(directory: Path) -> list[str]:
    return [p.read_text(encoding="utf-8") for p in sorted(directory.glob("*.txt"))]


def _sentencepiece_model(texts: list[str], path: Path) -> Path:
    """A unigram model with SentencePiece's default specials (UNK 0, BOS 1, EOS 2, no PAD)."""
    spm = pytest.importorskip("sentencepiece")
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts),
        model_writer=model,
        vocab_size=290,
        model_type="unigram",
        byte_fallback=True,
        normalization_rule_name="identity",  # lossless: no NFKC, whitespace kept
        remove_extra_whitespaces=False,
        minloglevel=2,
    )
    path.write_bytes(model.getvalue())
    return path


def _hf_tokenizer(texts: list[str], path: Path) -> Path:
    """A byte-level BPE tokenizer.json with </s> and <pad>, trained on `texts`."""
    tokenizers = pytest.importorskip("tokenizers")
    tok = tokenizers.Tokenizer(tokenizers.models.BPE())
    tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<pad>", "</s>"],
        initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer)
    tok.save(str(path))
    return path


def _wide_tokenizer(path: Path, size: int = 70_000) -> Path:
    """A word-level tokenizer.json whose words w0..w{size-1} have ids 3..size+2 (> 65,535)."""
    tokenizers = pytest.importorskip("tokenizers")
    vocab = {"<unk>": 0, "</s>": 1, "<pad>": 2, **{f"w{i}": i + 3 for i in range(size)}}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    tok.save(str(path))
    return path


def _packed(corpus, split: str) -> np.ndarray:
    tokens = corpus.train_N if split == "train" else corpus.eval_N
    return tokens.read(0, tokens.shape[0]) if hasattr(tokens, "read") else np.asarray(tokens)


@pytest.mark.parametrize("kind", ["sentencepiece", "hf"])
def test_tokenizer_file_in_memory_and_prepared(tmp_path: Path, kind: str) -> None:
    write_docs(tmp_path / "docs", n=20)
    texts = _docs_text(tmp_path / "docs")
    if kind == "sentencepiece":
        spec = f"sentencepiece:{_sentencepiece_model(texts, tmp_path / 'm.model')}"
        eos, vocab = 2, 290
    else:
        spec = f"hf:{_hf_tokenizer(texts, tmp_path / 'tokenizer.json')}"
        eos, vocab = 1, None
    config = DataConfig(
        corpus=f"text:{tmp_path / 'docs'}",
        tokenizer=spec,
        eval_fraction=0.2,
        data_dir=str(tmp_path / "d"),
    )
    corpus = load_corpus(config)
    tok = corpus.tokenizer
    assert tok.eos_id == eos and (vocab is None or tok.vocab_size == vocab)
    assert tokenizer_vocab(spec) == tok.vocab_size
    assert tok.decode(tok.encode(texts[3])) == texts[3]  # lossless on this text
    # the in-memory pack is each training document's ids + EOS, in order
    train_ids = set(corpus.doc_ids("train"))
    expected = np.concatenate(
        [
            np.append(tok.encode(t), eos)
            for t, p in zip(texts, sorted((tmp_path / "docs").glob("*.txt")), strict=True)
            if p.name in train_ids
        ]
    )
    assert corpus.train_N.dtype == np.uint16 and np.array_equal(corpus.train_N, expected)

    out = tmp_path / "p"
    manifest = prepare(
        PrepareOptions(
            corpus=config.corpus, out=str(out), tokenizer=spec, eval_fraction=0.2, shards=3
        )
    )
    saved = (
        out / ("tokenizer.model" if kind == "sentencepiece" else "tokenizer.json")
    ).read_bytes()
    assert saved == Path(spec.split(":", 1)[1]).read_bytes()
    assert manifest["tokenizer"]["vocab_size"] == tok.vocab_size and manifest["dtype"] == "uint16"
    prepared = load_corpus(DataConfig(corpus=f"prepared:{out}", tokenizer=spec, eval_fraction=0.2))
    assert prepared.tokenizer.eos_id == eos
    # same documents, same tokenizer: the prepared tokens are the packed docs of its own split
    ids = _packed(prepared, "train")
    assert (ids == eos).sum() == prepared.num_train_docs
    first_doc = ids[: int(np.argmax(ids == eos))]
    assert any(np.array_equal(first_doc, tok.encode(t)) for t in texts)


def test_vocab_above_65536_is_stored_as_uint32(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(12):
        words = rng.integers(60_000, 70_000, size=200)
        (docs / f"{i:02d}.txt").write_text(" ".join(f"w{w}" for w in words))
    spec = f"hf:{_wide_tokenizer(tmp_path / 'wide.json')}"
    assert tokenizer_vocab(spec) == 70_003
    config = DataConfig(
        corpus=f"text:{docs}", tokenizer=spec, eval_fraction=0.2, data_dir=str(tmp_path / "d")
    )
    memory = load_corpus(config)
    assert memory.train_N.dtype == np.uint32 and int(memory.train_N.max()) > 65_535
    manifest = prepare(
        PrepareOptions(
            corpus=config.corpus,
            out=str(tmp_path / "p"),
            tokenizer=spec,
            eval_fraction=0.2,
            shards=2,
        )
    )
    assert manifest["dtype"] == "uint32"
    prepared = load_corpus(
        DataConfig(corpus=f"prepared:{tmp_path / 'p'}", tokenizer=spec, eval_fraction=0.2)
    )
    expected = [
        [int(w[1:]) + 3 for w in p.read_text().split()] + [1]  # word ids + EOS
        for p in sorted(docs.glob("*.txt"))
    ]
    is_eval = [is_held_out(p.name, 0.2, 0) for p in sorted(docs.glob("*.txt"))]
    train_ids = np.concatenate([e for e, ev in zip(expected, is_eval, strict=True) if not ev])
    assert np.array_equal(_packed(prepared, "train"), train_ids)
    batch = prepared.train_stream(ctx=64, batch_size=2, num_tokens=128, seed=0).next_batch()
    assert batch.dtype == np.int32 and int(batch.max()) > 65_535


def test_bad_tokenizer_specs_are_clear(tmp_path: Path) -> None:
    for spec in ("sentencepiece:12", "sentencepiece:model.bin", "hf:", "gpt2"):
        with pytest.raises(DataError, match="unknown tokenizer"):
            DataConfig(tokenizer=spec)
    assert (
        tokenizer_vocab(f"hf:{tmp_path / 'missing.json'}") is None
    )  # parses; read where it exists
    (tmp_path / "bad.json").write_text("{}")
    (tmp_path / "docs").mkdir()
    for i in range(3):
        (tmp_path / "docs" / f"{i}.txt").write_text("abc")
    with pytest.raises(DataError, match=r"is not a Hugging Face tokenizer\.json"):
        load_corpus(
            DataConfig(
                corpus=f"text:{tmp_path / 'docs'}",
                tokenizer=f"hf:{tmp_path / 'bad.json'}",
                data_dir=str(tmp_path),
                eval_fraction=0.4,
            )
        )
    with pytest.raises(DataError, match="cannot read the tokenizer file"):
        load_corpus(
            DataConfig(
                corpus=f"text:{tmp_path / 'docs'}",
                tokenizer=f"sentencepiece:{tmp_path / 'no.model'}",
                data_dir=str(tmp_path),
                eval_fraction=0.4,
            )
        )
