"""Per-executable XLA options for the train and eval steps.

On CPU, XLA's default dot emitter handles a transposed operand by first copying it: the weight
gradients of a step (x^T @ dy) then spend ~20% of its time in layout copies (profiled at ~1M
params). Routing every dot through the YNNPACK library (`xla_cpu_experimental_ynn_fusion_type`
= dots) reads transposed operands in place: ~15% more tokens/s at 1M params on 2 cores.
Adding reductions to the library's share replaces XLA's split reductions (a reduce-window of
32 then a reduce, for every softmax and LayerNorm statistic: ~10% of the step's thread time)
with YNNPACK's: another ~5% (paired A/B over 12 alternating calls, 1M params).

The options are passed to `jax.jit(compiler_options=...)`, not through XLA_FLAGS, so they
only touch the lab's steps (the matmul peak that MFU divides by is still measured with XLA's
default dots). A jaxlib that does not know them is detected by compiling a tiny function;
the steps then fall back to dots only, or to XLA's defaults, instead of aborting the process.
"""

from __future__ import annotations

import functools
from typing import Any

_YNN = "xla_cpu_experimental_ynn_fusion_type"
CPU_LIBRARY_CHOICES: tuple[dict[str, str], ...] = (
    {_YNN: "LIBRARY_FUSION_TYPE_DOT,LIBRARY_FUSION_TYPE_REDUCE"},
    {_YNN: "LIBRARY_FUSION_TYPE_DOT"},
)


@functools.cache
def _cpu_library_options() -> dict[str, str] | None:
    """The first of CPU_LIBRARY_CHOICES this jaxlib compiles (a dot and a reduction), or None."""
    import jax
    import jax.numpy as jnp

    x = jnp.ones((2, 2), jnp.float32)
    for options in CPU_LIBRARY_CHOICES:
        try:
            probe = jax.jit(lambda a, b: jnp.sum(a @ b, axis=-1), compiler_options=options)
            probe(x, x).block_until_ready()
        except Exception:
            continue
        return options
    return None


def step_compiler_options(platform: str) -> dict[str, Any] | None:
    """Options for jitting the train/eval step on `platform` (None: XLA's defaults)."""
    options = _cpu_library_options() if platform == "cpu" else None
    return dict(options) if options else None
