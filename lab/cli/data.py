"""`scaling-lab data NAME`: build (once) and describe a corpus."""

from __future__ import annotations

import argparse
import json

EPILOG = """\
corpora:
  stdlib                 Python standard library sources of this interpreter (default)
  synthetic              seeded sparse Markov language; prints its true entropy (nats/token)
  tfds:NAME[/CONFIG]     a TFDS dataset prepared as ArrayRecord in the data dir (no TensorFlow)
  text:PATH[,PATH...]    local text files or globs; one file = one document

The first call tokenizes and caches the corpus under DATA_DIR/cache; later calls are instant.
examples:
  scaling-lab data stdlib
  scaling-lab data synthetic --synthetic states=64 --synthetic fanout=8
  scaling-lab data 'text:~/books/*.txt' --tokenizer sentencepiece:4096
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data",
        help="describe a corpus: documents, bytes, tokens, fingerprint, split sizes",
        description="Load (building the token cache on first use) and summarise a corpus.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", nargs="?", default="stdlib", help="corpus name (default: stdlib)")
    parser.add_argument("--tokenizer", default="byte", help="'byte' or 'sentencepiece:VOCAB_SIZE'")
    parser.add_argument(
        "--data-dir", help="datasets and caches (default $SCALING_LAB_DATA or ~/.cache/scaling-lab)"
    )
    parser.add_argument(
        "--eval-fraction", type=float, default=0.02, help="held-out share of documents"
    )
    parser.add_argument("--eval-seed", type=int, default=0, help="seed of the held-out split")
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


def run(args: argparse.Namespace) -> int:
    from lab.data import DataConfig, load_corpus

    config = DataConfig(
        corpus=args.name,
        tokenizer=args.tokenizer,
        eval_fraction=args.eval_fraction,
        eval_seed=args.eval_seed,
        data_dir=args.data_dir,
        synthetic=_synthetic_options(args.synthetic),
        tfds_split=args.tfds_split,
    )
    summary = load_corpus(config).summary()
    if args.json:
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
