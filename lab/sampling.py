"""Next-token selection from logits: greedy, temperature, top-k, top-p; pure jnp, jit-friendly.

    config = SamplingConfig(temperature=0.8, top_k=40, top_p=0.95)
    tokens_B = sample_logits(rng, logits_BxV, config)

The knobs behave as in LLM playgrounds: temperature divides the logits before the softmax
(below 1 sharper, above 1 flatter; 0 means greedy), top-k keeps the k most probable tokens,
top-p keeps the smallest set of most probable tokens whose probability reaches p (the most
probable token is always kept), and greedy takes the argmax. Filters apply after temperature,
top-k before top-p. Exactly k tokens are kept by top-k even when logits tie (ties by index).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from lab.errors import ConfigError


class SamplingError(ConfigError):
    """A sampling argument is out of range; the message names it and the valid range."""


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
    """How to pick each token. Hashable, so a jitted decoder can take it as a static argument.

    temperature: >= 0 (0 = greedy); top_k: None or >= 1; top_p: None or in (0, 1];
    greedy: argmax, ignoring the other three.
    """

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    greedy: bool = False

    def __post_init__(self) -> None:
        t = self.temperature
        if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t):
            raise SamplingError(f"temperature must be a finite number >= 0, got {t!r}")
        if t < 0:
            raise SamplingError(
                f"temperature must be >= 0 (0 = greedy, 1 = the model's distribution), got {t}"
            )
        k = self.top_k
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise SamplingError(f"top_k must be an integer >= 1 (1 = greedy), got {k!r}")
        p = self.top_p
        if p is not None and (
            isinstance(p, bool) or not isinstance(p, int | float) or not 0 < p <= 1
        ):
            raise SamplingError(f"top_p must be in (0, 1] (1 = no nucleus filter), got {p!r}")

    @property
    def is_greedy(self) -> bool:
        return self.greedy or self.temperature == 0


def top_k_mask(logits_BxV: jax.Array, k: int) -> jax.Array:
    """bool [B, V]: True for exactly the k largest logits of each row."""
    k = min(k, logits_BxV.shape[-1])
    _, idx_BxK = jax.lax.top_k(logits_BxV, k)
    rows_Bx1 = jnp.arange(logits_BxV.shape[0])[:, None]
    return jnp.zeros(logits_BxV.shape, bool).at[rows_Bx1, idx_BxK].set(True)


def top_p_mask(logits_BxV: jax.Array, p: float) -> jax.Array:
    """bool [B, V]: the nucleus, the fewest most probable tokens with total probability >= p."""
    order_BxV = jnp.argsort(-logits_BxV, axis=-1, stable=True)
    probs_BxV = jax.nn.softmax(jnp.take_along_axis(logits_BxV, order_BxV, axis=-1), axis=-1)
    before_BxV = jnp.cumsum(probs_BxV, axis=-1) - probs_BxV  # mass strictly more probable
    keep_sorted_BxV = before_BxV < p
    keep_sorted_BxV = keep_sorted_BxV.at[:, 0].set(True)  # never empty
    rows_Bx1 = jnp.arange(logits_BxV.shape[0])[:, None]
    return jnp.zeros(logits_BxV.shape, bool).at[rows_Bx1, order_BxV].set(keep_sorted_BxV)


def filtered_logits(logits_BxV: jax.Array, config: SamplingConfig) -> jax.Array:
    """fp32 logits / temperature with the tokens outside top-k / top-p set to -inf."""
    logits_BxV = logits_BxV.astype(jnp.float32) / jnp.float32(config.temperature)
    if config.top_k is not None:
        logits_BxV = jnp.where(top_k_mask(logits_BxV, config.top_k), logits_BxV, -jnp.inf)
    if config.top_p is not None and config.top_p < 1:
        logits_BxV = jnp.where(top_p_mask(logits_BxV, config.top_p), logits_BxV, -jnp.inf)
    return logits_BxV


def sample_logits(rng: jax.Array, logits_BxV: jax.Array, config: SamplingConfig) -> jax.Array:
    """int32 [B]: one token per row, drawn as `config` says (greedy uses no randomness)."""
    if config.is_greedy:
        return jnp.argmax(logits_BxV, axis=-1).astype(jnp.int32)
    logits_BxV = filtered_logits(logits_BxV, config)
    return jax.random.categorical(rng, logits_BxV, axis=-1).astype(jnp.int32)


DEFAULT_SAMPLING = SamplingConfig()  # plain softmax sampling at temperature 1
