"""Per-executable XLA options for the train and eval steps.

On CPU, XLA's default dot emitter handles a transposed operand by first copying it: the weight
gradients of a step (x^T @ dy) then spend ~20% of its time in layout copies (profiled at ~1M
params). Routing every dot through the YNNPACK library (`xla_cpu_experimental_ynn_fusion_type`
= dots) reads transposed operands in place: ~15% more tokens/s at 1M params on 2 cores.

The option is passed to `jax.jit(compiler_options=...)`, not through XLA_FLAGS, so it only
touches the lab's steps (the matmul peak that MFU divides by is still measured with XLA's
default dots), and a jaxlib that does not know it is detected by compiling a tiny function,
after which the steps compile without it instead of aborting the process.
"""

from __future__ import annotations

import functools
from typing import Any

CPU_DOT_LIBRARY = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_DOT"}


@functools.cache
def _cpu_dot_library_supported() -> bool:
    import jax
    import jax.numpy as jnp

    try:
        probe = jax.jit(jnp.dot, compiler_options=CPU_DOT_LIBRARY)
        probe(jnp.ones((2, 2), jnp.float32), jnp.ones((2, 2), jnp.float32)).block_until_ready()
    except Exception:
        return False
    return True


def step_compiler_options(platform: str) -> dict[str, Any] | None:
    """Options for jitting the train/eval step on `platform` (None: XLA's defaults)."""
    if platform == "cpu" and _cpu_dot_library_supported():
        return dict(CPU_DOT_LIBRARY)
    return None
