"""Benchmark: tokens/s of the input pipeline alone (byte-level stdlib corpus, ctx 128, batch 32).

The pipeline must never be the bottleneck: it has to beat 20x the training throughput of a
~1M-parameter model on this CPU (about 1e5 tokens/s at best; a measured value is used instead
when bench/results/throughput.json exists). Also times a warm corpus load, what each of a
sweep's runs pays at start-up. Writes bench/results/data_pipeline.json.

    .venv/bin/python bench/data_pipeline.py [--data-dir DIR] [--seconds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from lab.data import DataConfig, load_corpus

RESULTS = Path(__file__).resolve().parent / "results"
CTX, BATCH = 128, 32
ASSUMED_TRAIN_TOKENS_PER_S = 1e5  # ~1M-param model on this CPU, upper end


def _training_tokens_per_s() -> tuple[float, str]:
    """The lead's measured training throughput if recorded, else the stated upper bound."""
    path = RESULTS / "throughput.json"
    try:
        data = json.loads(path.read_text())
        value = float(data["tokens_per_s"])
        return value, str(path.relative_to(RESULTS.parent.parent))
    except (OSError, KeyError, TypeError, ValueError):
        return ASSUMED_TRAIN_TOKENS_PER_S, "assumed upper bound for a ~1M-param model on CPU"


def _rate(fn, tokens_per_call: int, seconds: float) -> float:
    fn()  # warm the page cache and permutation
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        fn()
        calls += 1
    return calls * tokens_per_call / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    config = DataConfig(corpus="stdlib", data_dir=args.data_dir, max_epochs=1000.0)

    start = time.perf_counter()
    corpus = load_corpus(config)  # builds the cache the first time
    first_load_s = time.perf_counter() - start
    code = (
        "import time; t = time.perf_counter(); from lab.data import DataConfig, load_corpus;"
        f"load_corpus(DataConfig(data_dir={args.data_dir!r})); print(time.perf_counter() - t)"
    )
    warm = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    warm_load_s = float(warm.stdout.strip())  # import lab.data + stat files + mmap, new process

    per_step = BATCH * CTX
    steps = corpus.train_tokens // per_step * 100  # ~100 epochs: never exhausted here
    stream = corpus.train_stream(ctx=CTX, batch_size=BATCH, num_tokens=steps * per_step, seed=0)
    single = _rate(stream.next_batch, per_step, args.seconds)
    stacked = _rate(lambda: stream.next_batches(8), 8 * per_step, args.seconds)
    train_rate, train_source = _training_tokens_per_s()
    result = {
        "benchmark": "data_pipeline",
        "corpus": "stdlib",
        "tokenizer": "byte",
        "fingerprint": corpus.fingerprint,
        "train_tokens": corpus.train_tokens,
        "ctx": CTX,
        "batch_size": BATCH,
        "tokens_per_s": single,
        "tokens_per_s_next_batches_8": stacked,
        "training_tokens_per_s_reference": train_rate,
        "training_reference_source": train_source,
        "ratio_to_training": single / train_rate,
        "required_ratio": 20.0,
        "passes": single >= 20 * train_rate,
        "first_load_s": first_load_s,
        "warm_load_s_new_process": warm_load_s,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "data_pipeline.json"
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, out)
    print(
        f"pipeline {single:,.0f} tokens/s (next_batches(8): {stacked:,.0f}); "
        f"{single / train_rate:,.0f}x training ({train_rate:,.0f} tokens/s, {train_source}); "
        f"warm load {warm_load_s * 1e3:.0f} ms; wrote {out}"
    )
    return 0 if result["passes"] else 1


if __name__ == "__main__":
    sys.exit(main())
