"""lab.sampling on fixed logit vectors: each knob checked against hand-computed sets and
frequencies over many draws (one batched call draws thousands of tokens)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lab.errors import ConfigError
from lab.sampling import SamplingConfig, SamplingError, sample_logits, top_p_mask

PROBS = np.array([0.5, 0.25, 0.15, 0.06, 0.04])  # a fixed distribution, most probable first
DRAWS = 20000


def draws(config: SamplingConfig, probs=PROBS, seed: int = 0, n: int = DRAWS) -> np.ndarray:
    """n tokens from the same logit row (log probs, shuffled so order is not index order)."""
    perm = np.array([3, 0, 4, 1, 2])  # token perm[i] has probability probs[i]
    logits = np.empty(len(probs), np.float32)
    logits[perm] = np.log(probs)
    logits_BxV = jnp.broadcast_to(jnp.asarray(logits), (n, len(probs)))
    tokens = np.asarray(sample_logits(jax.random.key(seed), logits_BxV, config))
    inverse = np.argsort(perm)
    return inverse[tokens]  # back to rank: 0 = most probable


def test_plain_sampling_matches_the_softmax() -> None:
    freq = np.bincount(draws(SamplingConfig()), minlength=5) / DRAWS
    np.testing.assert_allclose(freq, PROBS, atol=0.015)


def test_greedy_and_top_k_1_are_the_argmax() -> None:
    assert set(draws(SamplingConfig(greedy=True), n=100)) == {0}
    rng = np.random.default_rng(0)
    logits_BxV = jnp.asarray(rng.normal(size=(512, 40)), jnp.float32)
    want = np.argmax(np.asarray(logits_BxV), axis=-1)
    for seed in range(3):  # top-k = 1 goes through the random path, yet is always the argmax
        got = sample_logits(jax.random.key(seed), logits_BxV, SamplingConfig(top_k=1))
        np.testing.assert_array_equal(np.asarray(got), want)


def test_top_k_keeps_exactly_the_k_most_probable_renormalised() -> None:
    ranks = draws(SamplingConfig(top_k=2))
    assert set(ranks) == {0, 1}
    assert np.mean(ranks == 0) == pytest.approx(0.5 / 0.75, abs=0.015)


def test_top_p_never_samples_outside_the_nucleus() -> None:
    # 0.5 + 0.25 = 0.75 < 0.8, so the nucleus needs the third token: {0, 1, 2}
    ranks = draws(SamplingConfig(top_p=0.8))
    assert set(ranks) == {0, 1, 2}
    freq = np.bincount(ranks, minlength=5)[:3] / DRAWS
    np.testing.assert_allclose(freq, PROBS[:3] / 0.9, atol=0.015)
    assert set(draws(SamplingConfig(top_p=0.7))) == {0, 1}  # 0.75 already reaches 0.7
    assert set(draws(SamplingConfig(top_p=0.3))) == {0}  # the top token alone
    assert set(draws(SamplingConfig(top_p=1.0))) == {0, 1, 2, 3, 4}


def test_top_p_mask_by_hand() -> None:
    logits = jnp.log(jnp.asarray([[0.1, 0.6, 0.3], [0.2, 0.2, 0.6]]))
    np.testing.assert_array_equal(
        np.asarray(top_p_mask(logits, 0.85)), [[False, True, True], [True, True, True]]
    )


def test_temperature_sharpens_and_flattens_and_goes_to_greedy() -> None:
    top = {t: np.mean(draws(SamplingConfig(temperature=t)) == 0) for t in (0.5, 1.0, 2.0)}
    assert top[0.5] > top[1.0] + 0.1 and top[1.0] > top[2.0] + 0.1
    # T = 0.5 squares the probabilities: p0 = 0.25 / sum(p^2)
    assert top[0.5] == pytest.approx(0.25 / np.sum(PROBS**2), abs=0.015)
    assert set(draws(SamplingConfig(temperature=0.01))) == {0}
    assert set(draws(SamplingConfig(temperature=0.0), n=10)) == {0}


def test_same_seed_same_draws_other_seed_other_draws() -> None:
    config = SamplingConfig(temperature=1.0, top_p=0.95)
    a, b = draws(config, seed=7, n=200), draws(config, seed=7, n=200)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, draws(config, seed=8, n=200))


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"top_p": 0.0}, "top_p must be in (0, 1]"),
        ({"top_p": 1.5}, "top_p must be in (0, 1]"),
        ({"top_p": -0.2}, "top_p"),
        ({"temperature": -1.0}, "temperature must be >= 0"),
        ({"temperature": float("nan")}, "temperature"),
        ({"top_k": 0}, "top_k must be an integer >= 1"),
        ({"top_k": 2.5}, "top_k"),
        ({"top_k": True}, "top_k"),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs: dict, fragment: str) -> None:
    with pytest.raises(SamplingError, match=fragment.replace("(", r"\(").replace("]", r"\]")):
        SamplingConfig(**kwargs)
    assert issubclass(SamplingError, ConfigError)
