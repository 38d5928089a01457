"""Benchmark: the prepared-shard loader's resident memory and tokens/s on a small and a large corpus.

Generates a text corpus of each size (10 MB and 2.2 GB by default) in a temporary directory,
prepares it with `data prepare` (byte tokenizer, 2 worker processes), then reads training
batches (ctx 128, batch 32: the ~1M model's shape) for a few seconds in a fresh process per
size, sampling its RSS. The loader must keep memory flat (peak RSS of the large corpus
within 25% of the small one's) and read >= 20x the training tokens/s of the ~1M-param model,
measured in the same run with bench/throughput.py's method (`--sizes 1m`, its own process).
Supersedes bench/data_pipeline.py for prepared corpora (that one times the in-memory path).
Deletes the generated data afterwards. Writes bench/results/data_loader.json.

    .venv/bin/python bench/data_loader.py [--sizes 10e6,2.2e9] [--seconds 10] [--tmp DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
CTX, BATCH = 128, 32
FILE_BYTES = 8 << 20  # one document per 8 MB file (smaller for the small corpus)
REQUIRED_RATIO = 20.0
FLAT_RSS_LIMIT = 1.25  # peak RSS, large corpus / small corpus


def generate(directory: Path, total_bytes: int, seed: int = 0) -> int:
    """Text files of random words summing to ~total_bytes; returns the bytes written."""
    rng = np.random.default_rng(seed)
    pool_N = rng.integers(97, 123, size=64 << 20, dtype=np.uint8)  # a..z
    pool_N[rng.random(pool_N.size) < 0.17] = 32  # spaces: words of ~5 letters
    pool_N[rng.random(pool_N.size) < 0.01] = 10  # and lines
    pool = pool_N.tobytes()
    per_file = min(FILE_BYTES, max(1, total_bytes // 64))
    directory.mkdir(parents=True)
    written, index = 0, 0
    while written < total_bytes:
        start = int(rng.integers(0, len(pool) - per_file))
        (directory / f"{index:05d}.txt").write_bytes(pool[start : start + per_file])
        written, index = written + per_file, index + 1
    return written


def measure(prepared: str, seconds: float) -> dict:
    """In this (fresh) process: open the corpus and read batches for `seconds`, sampling RSS."""
    import grain  # noqa: F401  (imports jax: ~240 MB that training has loaded anyway)
    import psutil

    from lab.data import DataConfig, load_corpus

    process = psutil.Process()
    rss_import = process.memory_info().rss
    corpus = load_corpus(DataConfig(corpus=f"prepared:{prepared}", max_epochs=1e9))
    steps = 10**7  # never exhausted here
    stream = corpus.train_stream(ctx=CTX, batch_size=BATCH, num_tokens=steps * BATCH * CTX, seed=0)
    stream.next_batch()
    rss_first = process.memory_info().rss
    samples, batches, start = [], 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        stream.next_batch()
        batches += 1
        if batches % 50 == 0:
            samples.append(process.memory_info().rss)
    return {
        "train_tokens": corpus.train_tokens,
        "tokens_per_s": batches * BATCH * CTX / elapsed,
        "batches": batches,
        "rss_after_import_bytes": rss_import,
        "rss_after_first_batch_bytes": rss_first,
        "rss_samples_bytes": samples[:: max(1, len(samples) // 20)],
        "rss_max_sampled_bytes": max(samples, default=rss_first),
        "rss_growth_during_reads_bytes": max(samples, default=rss_first) - rss_first,
        "peak_rss_bytes": _peak_rss(),
        "loader_peak_rss_above_imports_bytes": _peak_rss() - rss_import,
    }


def _peak_rss() -> int:
    """VmHWM: this process's peak RSS (ru_maxrss would include the parent's, inherited at fork)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def training_rate(tmp: Path) -> dict:
    """bench/throughput.py --sizes 1m in its own process (results into tmp, not bench/results)."""
    out = tmp / "throughput"
    cmd = [sys.executable, str(REPO / "bench" / "throughput.py"), "--sizes", "1m", "--calls", "5"]
    subprocess.run([*cmd, "--out", str(out)], check=True, capture_output=True, text=True)
    result = json.loads((out / "throughput_cpu.json").read_text())["results"][0]
    return {"tokens_per_s": result["tokens_per_s"], "num_params": result["num_params"]}


def _recorded_training_rate() -> dict | None:
    """The ~1M model's rate in bench/results/throughput_cpu.json (a quieter host), for context."""
    try:
        data = json.loads((RESULTS / "throughput_cpu.json").read_text())
        result = next(r for r in data["results"] if r["name"] == "1m")
    except (OSError, KeyError, StopIteration, ValueError):
        return None
    return {"tokens_per_s": result["tokens_per_s"], "source": "bench/results/throughput_cpu.json"}


def _run_child(prepared: Path, seconds: float) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, __file__, "--measure", str(prepared), "--seconds", str(seconds)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10e6,2.2e9", help="corpus sizes in bytes, comma list")
    parser.add_argument("--seconds", type=float, default=10.0, help="reading time per size")
    parser.add_argument("--workers", type=int, default=2, help="data prepare processes")
    parser.add_argument("--tmp", default=None, help="where to generate (default: the system tmp)")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.seconds)))
        return 0

    from lab.data.prepare import PrepareOptions, prepare

    sizes = [int(float(s)) for s in args.sizes.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="scaling-lab-data-loader-", dir=args.tmp))
    free = shutil.disk_usage(tmp).free
    if free < 3.5 * max(sizes):  # text + uint16 shards + headroom
        shutil.rmtree(tmp)
        print(
            f"need {3.5 * max(sizes) / 1e9:.1f} GB free in {tmp.parent}, have {free / 1e9:.1f} GB"
        )
        return 2
    try:
        train = training_rate(tmp)
        rows = []
        for size in sizes:
            docs, out = tmp / f"docs-{size}", tmp / f"prepared-{size}"
            start = time.perf_counter()
            written = generate(docs, size)
            generate_s = time.perf_counter() - start
            start = time.perf_counter()
            options = PrepareOptions(corpus=f"text:{docs}", out=str(out), workers=args.workers)
            manifest = prepare(options)
            prepare_s = time.perf_counter() - start
            shard_bytes = sum(p.stat().st_size for p in (out / "shards").glob("*.array_record"))
            shutil.rmtree(docs)
            reading = _run_child(out, args.seconds)
            rows.append(
                {
                    "corpus_bytes": written,
                    "documents": manifest["totals"]["train"]["documents"]
                    + manifest["totals"]["eval"]["documents"],
                    "shards": len(manifest["shards"]),
                    "shard_bytes_on_disk": shard_bytes,
                    "generate_s": generate_s,
                    "prepare_s": prepare_s,
                    "prepare_bytes_per_s": written / prepare_s,
                    **reading,
                    "ratio_to_training": reading["tokens_per_s"] / train["tokens_per_s"],
                }
            )
            shutil.rmtree(out)
            print(
                f"{written / 1e9:8.3f} GB: {reading['tokens_per_s']:,.0f} tokens/s "
                f"({rows[-1]['ratio_to_training']:.0f}x training), peak RSS "
                f"{reading['peak_rss_bytes'] / 2**20:.0f} MiB, prepare {prepare_s:.0f} s"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rss_ratio = rows[-1]["peak_rss_bytes"] / rows[0]["peak_rss_bytes"]
    result = {
        "benchmark": "data_loader",
        "loader": "prepared:DIR (ArrayRecord shards, one read per shard per batch, grain index shuffle)",
        "tokenizer": "byte",
        "ctx": CTX,
        "batch_size": BATCH,
        "training_reference": {**train, "method": "bench/throughput.py --sizes 1m, same run"},
        "training_reference_quiet_host": _recorded_training_rate(),
        "sizes": rows,
        "peak_rss_ratio_large_to_small": rss_ratio,
        "flat_rss_limit": FLAT_RSS_LIMIT,
        "required_ratio": REQUIRED_RATIO,
        "passes": rss_ratio <= FLAT_RSS_LIMIT
        and all(r["ratio_to_training"] >= REQUIRED_RATIO for r in rows),
        "notes": "2 CPU cores shared with other jobs during the run; shards were just written, "
        "so reads come mostly from the page cache (not counted in RSS)",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average_1min_end": os.getloadavg()[0],
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "data_loader.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"peak RSS ratio {rss_ratio:.3f} (limit {FLAT_RSS_LIMIT}); wrote {path}")
    return 0 if result["passes"] else 1


if __name__ == "__main__":
    sys.exit(main())
