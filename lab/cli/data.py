"""`scaling-lab data NAME`: build (once) and describe a corpus; `data prepare SOURCE`: token shards."""

from __future__ import annotations

import argparse
import json

EPILOG = """\
corpora:
  stdlib                 Python standard library sources of this interpreter (default)
  synthetic              seeded sparse Markov language; prints its true entropy (nats/token)
  tfds:NAME[/CONFIG]     a TFDS dataset prepared as ArrayRecord in the data dir (no TensorFlow)
  text:PATH[,PATH...]    local text files or globs; one file = one document
  prepared:DIR           token shards written by `data prepare` (larger than memory is fine)

tokenizers: byte (default), sentencepiece:VOCAB_SIZE (trained), sentencepiece:PATH.model,
  hf:PATH (a Hugging Face tokenizer.json)

The first call tokenizes and caches the corpus under DATA_DIR/cache; later calls are instant.
`data prepare SOURCE --out DIR` instead tokenizes SOURCE once into ArrayRecord shards in DIR,
in --workers processes; rerun the same command to finish a killed prepare. Train on it with
[data] corpus = "prepared:DIR" (and the same tokenizer).
examples:
  scaling-lab data stdlib
  scaling-lab data synthetic --synthetic states=64 --synthetic fanout=8
  scaling-lab data 'text:~/books/*.txt' --tokenizer sentencepiece:4096
  scaling-lab data prepare 'text:~/books/*.txt' --tokenizer sentencepiece:4096 --out ~/books-sp
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data",
        help="describe a corpus: documents, bytes, tokens, fingerprint, split sizes",
        description="Load (building the token cache on first use) and summarise a corpus.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "name", nargs="?", default="stdlib", help="corpus name (default: stdlib), or 'prepare'"
    )
    parser.add_argument("source", nargs="?", help="with 'prepare': the corpus to prepare")
    parser.add_argument(
        "--tokenizer",
        help="byte (default), sentencepiece:VOCAB_SIZE, sentencepiece:PATH.model or hf:PATH "
        "(a prepared corpus: its own)",
    )
    parser.add_argument("--out", help="prepare: the output directory (local or gs://)")
    parser.add_argument("--workers", type=int, default=1, help="prepare: tokenizer processes")
    parser.add_argument("--shards", type=int, help="prepare: shard count (default: automatic)")
    parser.add_argument(
        "--tokenizer-train-docs",
        type=int,
        default=100_000,
        help="prepare with sentencepiece:N: training documents the tokenizer learns from",
    )
    parser.add_argument(
        "--data-dir", help="datasets and caches (default $SCALING_LAB_DATA or ~/.cache/scaling-lab)"
    )
    parser.add_argument(
        "--eval-fraction",
        type=float,
        help="held-out share of documents (default 0.02; a prepared corpus: its own)",
    )
    parser.add_argument(
        "--eval-seed", type=int, help="seed of the held-out split (default 0; prepared: its own)"
    )
    parser.add_argument("--tfds-split", default="train", help="TFDS split to read (slicing ok)")
    parser.add_argument(
        "--synthetic", action="append", default=[], metavar="KEY=VALUE", help="synthetic option"
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(func=run)


def _synthetic_options(pairs: list[str]) -> dict | None:
    from lab.data.errors import DataError

    options: dict = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise DataError(f"--synthetic takes KEY=VALUE, got {pair!r}")
        try:
            options[key.strip()] = float(value) if "." in value else int(value)
        except ValueError:
            raise DataError(f"--synthetic {key.strip()} takes a number, got {value!r}") from None
    return options or None


SPLIT_DEFAULTS = {"tokenizer": "byte", "eval_fraction": 0.02, "eval_seed": 0}


def _fill_defaults(args: argparse.Namespace) -> None:
    """Unset split options: a prepared corpus's own (from its manifest), else the defaults."""
    known: dict = {}
    if args.name.startswith("prepared:"):
        from lab.data.prepared import prepared_options

        known = prepared_options(args.name.split(":", 1)[1].strip())
    for key, default in SPLIT_DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, known.get(key, default))


def _prepare(args: argparse.Namespace) -> int:
    import sys

    from lab.data.errors import DataError
    from lab.data.prepare import PrepareOptions, prepare

    if not args.source or not args.out:
        raise DataError("usage: scaling-lab data prepare SOURCE --out DIR [--tokenizer SPEC]")
    options = PrepareOptions(
        corpus=args.source,
        out=args.out,
        tokenizer=args.tokenizer,
        data_dir=args.data_dir,
        eval_fraction=args.eval_fraction,
        eval_seed=args.eval_seed,
        tfds_split=args.tfds_split,
        shards=args.shards,
        workers=args.workers,
        tokenizer_train_docs=args.tokenizer_train_docs,
    )
    manifest = prepare(options, log=lambda line: print(line, file=sys.stderr))
    totals = manifest["totals"]
    summary = {
        "prepared": args.out,
        "corpus": f"prepared:{args.out}",
        "fingerprint": manifest["fingerprint"],
        "tokenizer": manifest["tokenizer"]["spec"],
        "vocab_size": manifest["tokenizer"]["vocab_size"],
        "token_dtype": manifest["dtype"],
        "shards": len(manifest["shards"]),
        "train_documents": totals["train"]["documents"],
        "eval_documents": totals["eval"]["documents"],
        "train_tokens": totals["train"]["tokens"],
        "eval_tokens": totals["eval"]["tokens"],
    }
    return _print(summary, args.json)


def run(args: argparse.Namespace) -> int:
    from lab.data import DataConfig, load_corpus
    from lab.data.errors import DataError

    if args.name == "prepare":
        for key, default in SPLIT_DEFAULTS.items():
            setattr(args, key, default if getattr(args, key) is None else getattr(args, key))
        return _prepare(args)
    if args.source is not None:
        raise DataError(f"unexpected argument {args.source!r}; only 'data prepare' takes a SOURCE")
    _fill_defaults(args)

    config = DataConfig(
        corpus=args.name,
        tokenizer=args.tokenizer,
        eval_fraction=args.eval_fraction,
        eval_seed=args.eval_seed,
        data_dir=args.data_dir,
        synthetic=_synthetic_options(args.synthetic),
        tfds_split=args.tfds_split,
    )
    return _print(load_corpus(config).summary(), args.json)


def _print(summary: dict, as_json: bool) -> int:
    if as_json:
        print(json.dumps(summary, indent=2))
        return 0
    width = max(len(k) for k in summary)
    for key, value in summary.items():
        if value is None:
            continue
        if isinstance(value, float):
            value = f"{value:.6f}"
        elif isinstance(value, int):
            value = f"{value:,}"
        print(f"{key:<{width}}  {value}")
    return 0
