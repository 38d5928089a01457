"""Training throughput and MFU of the lab's train step on this machine's devices.

    python bench/throughput.py                                  # ~1M and ~10M, ctx 128, batch 32
    python bench/throughput.py --cpu-devices 1                  # the same on one CPU device
    python bench/throughput.py --sizes 125m,350m --ctx 1024 --batch 32 --dtype bfloat16 \
        --vocab-size 50257   # GPU

On CPU the cores are split into one device each by default (`lab.runtime.cpu_devices`) and the batch
is sharded over them, as `scaling-lab train --cpu-devices auto` runs. First measures the
machine's matmul peak in this process (best jnp.dot of large square matrices in the compute
dtype: on CPU the better of one device using every core and every device multiplying at
once; on accelerators one device's, times the device count), then for each model size
compiles the train step (steps_per_call steps per call, one on-device loop), runs warm-up
calls, and times the rest.
Reports tokens/s, achieved FLOP/s with the detailed "causal" count (the useful work of causal
attention, `ModelConfig.flops_per_token("causal")`; the "full" T x T count is also given) and
MFU = achieved / measured peak, and on GPU/TPU also / datasheet peak. Writes
bench/results/throughput_<platform>.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lab.config import MeshConfig, OptimizerConfig
from lab.optim import make_optimizer
from lab.presets import model_for_params, preset
from lab.runtime.cpu_devices import use_cpu_devices
from lab.runtime.device_peak import datasheet_peak, make_peak_probe
from lab.sharding import batch_sharding, make_mesh, stacked_batch_sharding
from lab.train_step import init_train_state, make_train_step

SIZES = {"1m": 1e6, "10m": 1e7}


def peak_probes(dtype: str, size: int) -> dict[str, Any]:
    """Probes of the machine's matmul peak: one device alone and, with several devices,
    all at once. On CPU the devices share the host's cores, so both are whole-machine figures
    and the better one is the peak; on accelerators the peak is one device's times the count."""
    probes = {"one_device": make_peak_probe(dtype, size)}
    if jax.local_device_count() > 1:
        probes["all_devices"] = make_peak_probe(dtype, size, jax.local_devices())
    return probes


def machine_peak(probes: dict[str, Any], repeats: int) -> float:
    """Peak FLOP/s of all devices together from one reading of each probe."""
    readings = {name: probe(repeats) for name, probe in probes.items()}
    if jax.devices()[0].platform == "cpu":
        return max(readings.values())
    return readings["one_device"] * jax.device_count()


def bench_model(name: str, args: argparse.Namespace, probe) -> dict:
    """Compile, warm up, then time `args.calls` calls back to back. The peak is probed right
    before and after them (a probe between calls would evict the step's working set and slow
    the next call by ~15%), so MFU around the calls compares with the peak under the same
    load (other processes on a shared CPU slow both alike). The batch is split over all
    devices (data parallel)."""
    overrides = {"compute_dtype": args.dtype, "mlp": args.mlp}
    if args.vocab_size:
        overrides["vocab_size"] = args.vocab_size
    if name in SIZES:
        model = model_for_params(SIZES[name], ctx=args.ctx, **overrides)
    else:
        model = preset(name, **overrides)
        model = type(model).from_dict({**model.to_dict(), "ctx": args.ctx})
    mesh = make_mesh(MeshConfig(-1, 1, 1))
    k = args.steps_per_call
    optimizer, _ = make_optimizer(OptimizerConfig(peak_lr=1e-3), 10**6)
    state, shardings = init_train_state(model, optimizer, mesh, jax.random.key(0))
    step = make_train_step(model, optimizer, mesh, shardings, steps_per_call=k)
    chunk = (np.int32(k),) if k > 1 else ()
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, model.vocab_size, (k, args.batch, model.ctx + 1), dtype=np.int32)
    if k > 1:  # a k-step loop takes [k, B, T+1] and its length
        batch = jax.device_put(tokens, stacked_batch_sharding(mesh))
    else:
        batch = jax.device_put(tokens[0], batch_sharding(mesh))
    start = time.perf_counter()
    state, metrics = step(state, batch, *chunk)
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - start
    for _ in range(args.warmup_calls):
        state, metrics = step(state, batch, *chunk)
    jax.block_until_ready(metrics)
    peak_around = [machine_peak(probe, 5)]
    for _ in range(args.warmup_calls):  # the probe evicted the step's working set
        state, metrics = step(state, batch, *chunk)
    jax.block_until_ready(metrics)
    times = []
    for _ in range(args.calls):
        start = time.perf_counter()
        state, metrics = step(state, batch, *chunk)
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - start)
    peak_around.append(machine_peak(probe, 5))
    seconds = float(np.median(times))
    tokens_per_s = k * args.batch * model.ctx / seconds
    achieved = tokens_per_s * model.flops_per_token("causal")
    return {
        "name": name,
        "model": model.to_dict(),
        "num_params": model.num_params(),
        "num_nonembedding_params": model.num_nonembedding_params(),
        "batch_size": args.batch,
        "steps_per_call": k,
        "compile_plus_first_call_s": compile_s,
        "step_time_s": seconds / k,
        "tokens_per_s": tokens_per_s,
        "flops_per_token_causal": model.flops_per_token("causal"),
        "flops_per_token_full": model.flops_per_token("full"),
        "achieved_flops_causal": achieved,
        "achieved_flops_full": tokens_per_s * model.flops_per_token("full"),
        "call_times_s": times,
        "peak_probe_flops_before_after": peak_around,
        "mfu_vs_peak_around": achieved / max(peak_around),
        "final_loss": float(metrics["loss"][-1]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1m,10m", help="comma list: 1m, 10m or preset names")
    parser.add_argument("--ctx", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps-per-call", type=int, default=10)
    parser.add_argument("--warmup-calls", type=int, default=1)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument(
        "--peak-sizes", default=None, help="matmul sizes for the peak, e.g. 1024,2048"
    )
    parser.add_argument(
        "--cpu-devices", default="auto", help="CPU devices to split the cores into (or 'auto')"
    )
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument(
        "--vocab-size", type=int, help="default: the shape rule's; 50257 for GPT-2's 125M/350M"
    )
    parser.add_argument("--mlp", default="gelu", choices=("gelu", "swiglu"))
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args(argv)

    use_cpu_devices(args.cpu_devices)  # before any JAX computation; CPU devices only
    device = jax.devices()[0]
    n_devices = jax.device_count()
    peak_sizes = (1024, 2048) if device.platform == "cpu" else (4096, 8192)
    if args.peak_sizes:
        peak_sizes = tuple(int(n) for n in args.peak_sizes.split(","))
    load_before = os.getloadavg()[0]
    probes = {n: peak_probes(args.dtype, n) for n in peak_sizes}
    peak = max(machine_peak(p, 5) for p in probes.values())
    probe = probes[peak_sizes[0]]
    sheet = datasheet_peak(device.device_kind, args.dtype) if device.platform != "cpu" else None
    results = [bench_model(name.strip(), args, probe) for name in args.sizes.split(",")]
    # The best reading of the whole run is the peak: a busy moment only ever reads low.
    peak = max([peak] + [p for r in results for p in r["peak_probe_flops_before_after"]])
    for r in results:
        r["mfu_vs_measured_peak"] = r["achieved_flops_causal"] / peak
        if sheet:
            r["mfu_vs_datasheet_peak"] = r["achieved_flops_causal"] / (sheet * n_devices)
    report = {
        "platform": device.platform,
        "device_kind": device.device_kind,
        "device_count": n_devices,
        "cpu_count": os.cpu_count(),
        "host": platform.node(),
        "jax_version": jax.__version__,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "dtype": args.dtype,
        "flops_convention": "causal: detailed matmul count, causal attention as (T+1)/2 keys",
        "measured_peak_flops_all_devices": peak,
        "load_average_1min_before_after": [load_before, os.getloadavg()[0]],
        "datasheet_peak_flops_per_device": sheet,
        "results": results,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"throughput_{device.platform}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"{device.device_kind} x{n_devices}, {args.dtype}, measured peak {peak / 1e9:.1f} GFLOP/s "
        "(all devices)"
    )
    header = (
        f"{'model':>6} {'params':>10} {'tokens/s':>10} {'GFLOP/s':>9} {'MFU':>6} {'MFU/around':>10}"
    )
    print(header + ("  MFU(datasheet)" if sheet else ""))
    for r in results:
        line = (
            f"{r['name']:>6} {r['num_params']:>10,} {r['tokens_per_s']:>10,.0f} "
            f"{r['achieved_flops_causal'] / 1e9:>9.1f} {r['mfu_vs_measured_peak']:>6.1%} "
            f"{r['mfu_vs_peak_around']:>10.1%}"
        )
        if sheet:
            line += f"  {r['mfu_vs_datasheet_peak']:.1%}"
        print(line)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
