"""Checks that need an NVIDIA GPU; they skip elsewhere (CI has none).

Run on a GPU host with `JAX_PLATFORMS=cuda,cpu python -m pytest tests/test_gpu.py` (the
conftest defaults JAX_PLATFORMS to cpu): the model's fused attention path (cuDNN through
`jax.nn.dot_product_attention`, bf16 on GPU) against its explicit einsum path on the CPU.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lab.config import ModelConfig

pytestmark = pytest.mark.skipif(
    jax.default_backend() != "gpu", reason="needs an NVIDIA GPU (run with JAX_PLATFORMS=cuda,cpu)"
)


def test_fused_attention_on_gpu_equals_the_einsum_path_within_bf16_tolerance() -> None:
    """Same weights and tokens: the GPU forward (fused attention) and the CPU forward (einsums,
    fp32 softmax) give logits that agree to bf16 precision."""
    from lab.model import Transformer

    model = ModelConfig(
        n_layers=2, d_model=256, n_heads=4, d_ff=1024, vocab_size=512, ctx=512,
        position="rope", compute_dtype="bfloat16",
    )  # fmt: skip
    tokens = jax.random.randint(jax.random.key(1), (4, model.ctx), 0, model.vocab_size)
    params = jax.jit(Transformer(model).init)(jax.random.key(0), tokens)
    gpu_logits = jax.jit(Transformer(model).apply)(params, tokens)
    cpu = jax.devices("cpu")[0]
    with jax.default_device(cpu):
        cpu_logits = jax.jit(Transformer(model).apply)(
            jax.device_put(params, cpu), jax.device_put(tokens, cpu)
        )
    gpu_np = np.asarray(gpu_logits, np.float32)
    cpu_np = np.asarray(cpu_logits, np.float32)
    scale = float(np.abs(cpu_np).max())
    assert np.abs(gpu_np - cpu_np).max() <= 2e-2 * scale
    assert np.mean(np.argmax(gpu_np, -1) == np.argmax(cpu_np, -1)) > 0.99
    probs = jax.nn.softmax(jnp.asarray(cpu_np), -1)
    assert jnp.abs(probs - jax.nn.softmax(jnp.asarray(gpu_np), -1)).max() < 2e-2
