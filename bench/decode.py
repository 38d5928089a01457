"""KV-cache decoding vs full recomputation, tokens/s, at ctx 128 on this machine.

    python bench/decode.py                       # cpu_tiny-sized and ~1M models, batch 1 and 8

Both decoders are one jitted `lax.while_loop` over greedy steps from a 16-token prompt to the
full context (112 new tokens). Cached: `lab.decode.make_generate` (prefill, then one token
per step against the cache). Recomputation: every step runs the whole model over the
[B, ctx] sequence buffer (causal, so the unfilled tail does not matter) and takes the argmax
at the last filled position: the cost of decoding without a cache. The two must produce
the same tokens (checked). Best of `--repeats` timed calls after a compile+warm-up call.
Writes bench/results/decode_<platform>.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lab.config import ModelConfig
from lab.decode import make_generate
from lab.model import Transformer
from lab.presets import model_for_params
from lab.sampling import SamplingConfig

PROMPT_LEN = 16


def recompute_fn(model: ModelConfig, max_new_tokens: int):
    """Jitted greedy decoding that re-runs the full [B, ctx] forward at every step."""

    def run(params, prompt_BxT):
        b, t = prompt_BxT.shape
        seq_BxC = jnp.zeros((b, model.ctx), jnp.int32).at[:, :t].set(prompt_BxT)

        def body(i, seq_BxC):
            logits_BxCxV = Transformer(model).apply({"params": params}, seq_BxC)
            last_BxV = jax.lax.dynamic_index_in_dim(logits_BxCxV, t + i - 1, 1, keepdims=False)
            token_B = jnp.argmax(last_BxV, axis=-1).astype(jnp.int32)
            return jax.lax.dynamic_update_slice(seq_BxC, token_B[:, None], (0, t + i))

        seq_BxC = jax.lax.fori_loop(0, max_new_tokens, body, seq_BxC)
        return seq_BxC[:, t : t + max_new_tokens]

    return jax.jit(run)


def best_time(fn, *args, repeats: int) -> tuple[float, np.ndarray]:
    out = np.asarray(fn(*args))  # compile + warm up
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        out = np.asarray(jax.block_until_ready(fn(*args)))
        times.append(time.perf_counter() - tic)
    return min(times), out


def bench(name: str, model: ModelConfig, batch: int, repeats: int) -> dict:
    params = nn.meta.unbox(
        Transformer(model).init(jax.random.key(0), jnp.zeros((1, model.ctx), jnp.int32))["params"]
    )
    new = model.ctx - PROMPT_LEN
    prompt = jnp.asarray(np.random.default_rng(0).integers(0, 256, (batch, PROMPT_LEN)), jnp.int32)
    cached = make_generate(model, max_new_tokens=new, sampling=SamplingConfig(greedy=True))
    t_cached, tok_cached = best_time(cached, params, prompt, jax.random.key(0), repeats=repeats)
    t_full, tok_full = best_time(recompute_fn(model, new), params, prompt, repeats=repeats)
    return {
        "name": name,
        "model": model.to_dict(),
        "params": model.num_params(),
        "batch": batch,
        "prompt_tokens": PROMPT_LEN,
        "new_tokens": new,
        "cached_s": t_cached,
        "recompute_s": t_full,
        "cached_tokens_per_s": batch * new / t_cached,
        "recompute_tokens_per_s": batch * new / t_full,
        "speedup": t_full / t_cached,
        "same_tokens": bool(np.array_equal(tok_cached, tok_full)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ctx", type=int, default=128)
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None, help="JSON path (default bench/results/...)")
    args = parser.parse_args()
    models = {
        "cpu_tiny d64": ModelConfig(
            n_layers=2, d_model=64, n_heads=4, d_ff=256, vocab_size=259, ctx=args.ctx
        ),
        "~1m": model_for_params(1e6, vocab_size=259, ctx=args.ctx),
    }
    load = os.getloadavg()[0]
    rows = [
        bench(name, model, int(b), args.repeats)
        for name, model in models.items()
        for b in args.batches.split(",")
    ]
    record = {
        "platform": jax.devices()[0].platform,
        "device_count": jax.device_count(),
        "cpu_count": os.cpu_count(),
        "host": platform.node(),
        "jax_version": jax.__version__,
        "ctx": args.ctx,
        "load_average_1min_before_after": [load, os.getloadavg()[0]],
        "results": rows,
    }
    out = Path(args.out or Path(__file__).parent / "results" / f"decode_{record['platform']}.json")
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(
        f"{'model':>13} {'params':>9} {'B':>3} {'cached tok/s':>13} {'recompute tok/s':>16} "
        f"{'speedup':>8} {'same':>5}"
    )
    for r in rows:
        print(
            f"{r['name']:>13} {r['params']:>9,} {r['batch']:>3} {r['cached_tokens_per_s']:>13,.0f} "
            f"{r['recompute_tokens_per_s']:>16,.0f} {r['speedup']:>7.1f}x {r['same_tokens']!s:>5}"
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
