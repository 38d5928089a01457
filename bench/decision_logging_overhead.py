"""What agreeing on saves across processes costs per chunk, and TensorBoard logging per step.

- Agreement: 2 processes joined by jax.distributed on 127.0.0.1 (the CPU rehearsal) call
  `lab.preemption.agree_or` back to back; its median latency is set against the chunk time
  (steps_per_call x median step time) of the 2-process x 4-device training run of
  tests/test_multihost.py, measured in the same bench run.
- TensorBoard: `TensorBoardLog.write_step` (6 scalars) per metrics line, flushes included,
  against the median step time of a ~1M-parameter model trained in this process.

Writes bench/results/decision_logging_overhead_<platform>.json and prints a summary.
    python bench/decision_logging_overhead.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def agreement_worker(port: int, process: int, calls: int, out: Path) -> None:
    """One of the 2 processes: `calls` agreements, their latencies written to `out`."""
    from lab.sharding import initialize_distributed

    initialize_distributed(f"127.0.0.1:{port}", 2, process)
    from lab.preemption import agree_or

    for _ in range(20):  # warm the connection
        agree_or(0)
    times = []
    for i in range(calls):
        tic = time.perf_counter()
        assert agree_or(process * (i % 2)) == i % 2
        times.append(time.perf_counter() - tic)
    out.write_text(json.dumps(times))


def two_processes(command: list[str], port_args: bool = True) -> list[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(JAX_PLATFORMS="cpu", SCALING_LAB_QUIET="1", PYTHONPATH=str(ROOT))
    processes = [
        subprocess.Popen(
            [*command, "--port", str(port), "--process", str(i)]
            if port_args
            else [
                *command,
                *("--coordinator", f"127.0.0.1:{port}", "--num-processes", "2"),
                *("--process-id", str(i), "--local-devices", "4"),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    for p, out in zip(processes, outputs, strict=True):
        if p.returncode:
            raise SystemExit(out[-3000:])
    return outputs


def percentile(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(values, q))


def bench_agreement(folder: Path, calls: int) -> dict:
    from test_multihost import CONFIG

    outs = [folder / f"agree{i}.json" for i in range(2)]
    two_processes(
        [sys.executable, __file__, "--worker", "--calls", str(calls), "--dir", str(folder)]
    )
    times = [t for out in outs for t in json.loads(out.read_text())]
    config = folder / "run.toml"
    config.write_text(CONFIG.replace("num_tokens = 4096", "num_tokens = 16384"))  # 128 steps
    command = [sys.executable, "-m", "experiments.main", "train", "--config", str(config)]
    two_processes([*command, "--out", str(folder / "run")], port_args=False)
    result = json.loads((folder / "run" / "result.json").read_text())
    chunk = result["throughput"]["median_step_time_s"] * 4  # steps_per_call = 4
    median = percentile(times, 50)
    return {
        "calls_per_process": calls,
        "median_s": median,
        "p90_s": percentile(times, 90),
        "rehearsal_chunk_s": chunk,
        "rehearsal": "tests/test_multihost.py's config, 128 steps, 2 processes x 4 CPU devices",
        "median_over_chunk": median / chunk,
    }


def bench_tensorboard(folder: Path, lines: int) -> dict:
    from lab.data import DataConfig
    from lab.presets import model_for_params
    from lab.run_config import RunConfig
    from lab.tensorboard_log import TensorBoardLog
    from lab.train import train

    model = model_for_params(1e6, vocab_size=260, ctx=64)
    config = RunConfig(
        model=model,
        num_tokens=48 * 16 * 64,
        batch_size=16,
        data=DataConfig(corpus="stdlib", data_dir=str(folder / "data")),
        eval_fractions=(1.0,),
        checkpoint_every_seconds=1e9,
        keep_final_checkpoint=False,
    )
    result = train(config, folder / "train", progress=False, compilation_cache=None)
    step = result["throughput"]["median_step_time_s"]
    line = json.loads((folder / "train" / "metrics.jsonl").read_text().splitlines()[-1])
    board = TensorBoardLog(folder / "board", resume_step=0, writer=True)
    tic = time.perf_counter()
    for i in range(1, lines + 1):
        board.write_step({**line, "step": i})
    board.close()  # everything on disk
    per_line = (time.perf_counter() - tic) / lines
    return {
        "lines": lines,
        "write_step_s": per_line,
        "model_params": model.num_params(),
        "median_step_time_s": step,
        "write_over_step": per_line / step,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", action="store_true")
    parser.add_argument("--port", type=int)
    parser.add_argument("--process", type=int)
    parser.add_argument("--dir")
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--lines", type=int, default=5000)
    args = parser.parse_args()
    if args.worker:
        agreement_worker(
            args.port, args.process, args.calls, Path(args.dir) / f"agree{args.process}.json"
        )
        return
    with tempfile.TemporaryDirectory() as tmp:
        record = {
            "machine": f"{platform.node()} {platform.processor() or platform.machine()}, "
            f"{os.cpu_count()} cores",
            "load_average_at_start": os.getloadavg()[0],
            "agreement": bench_agreement(Path(tmp), args.calls),
            "tensorboard": bench_tensorboard(Path(tmp), args.lines),
        }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "decision_logging_overhead_cpu.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    a, t = record["agreement"], record["tensorboard"]
    print(
        f"agreement: median {a['median_s'] * 1e3:.2f} ms (p90 {a['p90_s'] * 1e3:.2f} ms) per chunk "
        f"= {a['median_over_chunk']:.1%} of the rehearsal's {a['rehearsal_chunk_s'] * 1e3:.1f} ms chunk\n"
        f"tensorboard: {t['write_step_s'] * 1e6:.0f} us per step = {t['write_over_step']:.2%} of the "
        f"{t['model_params']:,}-param model's {t['median_step_time_s'] * 1e3:.1f} ms step\n-> {path}"
    )


if __name__ == "__main__":
    main()
