"""A synthetic language with a known entropy rate: a seeded sparse Markov chain with an EOS state.

Each of `states` symbols moves to one of `fanout` random successors with Zipf weights
(1/rank**zipf), scaled by 1-q, or ends the document with probability q = 1/(doc_len - 1); the EOS
state's row (the distribution of a document's first symbol) is another Zipf row. A document is
one excursion from EOS back to EOS, so documents are i.i.d. and the packed stream
`doc + [EOS] + doc + [EOS] ...` is exactly a path of this chain, whichever documents are held
out. Hence the closed form H = -sum_i pi_i sum_j P_ij log P_ij (nats per token, the EOS
targets included) is exactly the loss a perfect model reaches on packed windows: no
boundary correction is needed, since every target's one-token context is inside its window.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from lab.data.errors import DataError


@dataclasses.dataclass(frozen=True)
class MarkovLanguage:
    """Transition table of the language; chain state `states` is EOS."""

    states: int
    succ_SxK: np.ndarray  # successor ids per row, (states + 1) x (fanout + 1)
    prob_SxK: np.ndarray  # their probabilities, rows sum to 1

    @property
    def eos(self) -> int:
        return self.states

    def dense(self) -> np.ndarray:
        """The full (states+1)^2 transition matrix."""
        n = self.states + 1
        p_SxS = np.zeros((n, n))
        np.add.at(p_SxS, (np.arange(n)[:, None], self.succ_SxK), self.prob_SxK)
        return p_SxS

    def stationary(self) -> np.ndarray:
        """pi with pi P = pi, sum(pi) = 1 (unique: every state reaches EOS)."""
        p_SxS = self.dense()
        n = p_SxS.shape[0]
        a_SxS = p_SxS.T - np.eye(n)
        a_SxS[-1] = 1.0
        b_S = np.zeros(n)
        b_S[-1] = 1.0
        pi_S = np.linalg.solve(a_SxS, b_S)
        return np.clip(pi_S, 0.0, None) / np.clip(pi_S, 0.0, None).sum()

    def entropy_rate(self) -> float:
        """Closed-form entropy rate in nats per token of the packed stream."""
        p_SxS = self.dense()
        with np.errstate(divide="ignore", invalid="ignore"):
            plogp_SxS = np.where(p_SxS > 0, p_SxS * np.log(p_SxS), 0.0)
        return float(-(self.stationary() * plogp_SxS.sum(axis=1)).sum())

    def sample_documents(self, n_docs: int, seed: int, chains: int = 4096) -> list[np.ndarray]:
        """n_docs i.i.d. documents (symbol ids, no EOS), from parallel chains started at EOS.

        Each chain keeps exactly its first quota of completed documents, so no length bias
        (a round cut mid-document never drops or keeps documents by their length).
        """
        rng = np.random.default_rng([seed, 1])
        chains = max(1, min(chains, n_docs))
        quota_C = np.full(chains, n_docs // chains)
        quota_C[: n_docs % chains] += 1
        cum_SxK = np.cumsum(self.prob_SxK, axis=1)
        cum_SxK[:, -1] = np.inf  # guards against round-off at the top of a row
        state_C = np.full(chains, self.eos)
        pieces: list[list[np.ndarray]] = [[] for _ in range(chains)]
        done_C = np.zeros(chains, dtype=np.int64)
        while (done_C < quota_C).any():
            steps = 512
            path_CxT = np.empty((chains, steps), dtype=np.int64)
            for t in range(steps):
                u_C = rng.random(chains)
                k_C = (u_C[:, None] >= cum_SxK[state_C]).sum(axis=1)
                state_C = self.succ_SxK[state_C, k_C]
                path_CxT[:, t] = state_C
            done_C += (path_CxT == self.eos).sum(axis=1)
            for c in range(chains):
                pieces[c].append(path_CxT[c])
        docs: list[np.ndarray] = []
        for c in range(chains):
            path = np.concatenate(pieces[c])
            ends = np.flatnonzero(path == self.eos)[: quota_C[c]]
            starts = np.concatenate([[0], ends[:-1] + 1])
            docs.extend(path[s:e] for s, e in zip(starts, ends, strict=True))
        return docs


def build_language(options: dict[str, Any]) -> MarkovLanguage:
    """The language of `options` (see `lab.data.config.SYNTHETIC_DEFAULTS`), seeded."""
    try:
        states, fanout = int(options["states"]), int(options["fanout"])
        zipf, doc_len, seed = (
            float(options["zipf"]),
            float(options["doc_len"]),
            int(options["seed"]),
        )
        n_docs = int(options["n_docs"])
    except (TypeError, ValueError) as error:
        raise DataError(f"synthetic options must be numbers, got {options}") from error
    if not 2 <= states <= 65_000:
        raise DataError(f"synthetic states must be in [2, 65000] (uint16 ids), got {states}")
    if not 1 <= fanout <= states:
        raise DataError(f"synthetic fanout must be in [1, states={states}], got {fanout}")
    if zipf < 0 or seed < 0:
        raise DataError(f"synthetic zipf and seed must be >= 0, got zipf={zipf}, seed={seed}")
    if doc_len < 3:
        raise DataError(
            f"synthetic doc_len (mean tokens per document, EOS included) must be >= 3, got {doc_len}"
        )
    if n_docs < 2:
        raise DataError("synthetic n_docs must be >= 2 (train and eval need a document each)")
    rng = np.random.default_rng([seed, 0])
    weights_K = 1.0 / np.arange(1, fanout + 1) ** zipf
    weights_K /= weights_K.sum()
    q = 1.0 / (doc_len - 1.0)  # documents have 1/q symbols on average, plus their EOS
    succ = np.empty((states + 1, fanout + 1), dtype=np.int64)
    prob = np.empty((states + 1, fanout + 1))
    for row in range(states + 1):
        succ[row, :fanout] = rng.choice(states, size=fanout, replace=False)
        if row < states:
            succ[row, fanout], prob[row, :fanout], prob[row, fanout] = (
                states,
                (1 - q) * weights_K,
                q,
            )
        else:  # EOS row: first symbol of a document; the extra slot is never taken
            succ[row, fanout], prob[row, :fanout], prob[row, fanout] = 0, weights_K, 0.0
    return MarkovLanguage(states=states, succ_SxK=succ, prob_SxK=prob)


def plugin_entropy(tokens_N: np.ndarray, vocab: int) -> float:
    """Plug-in conditional entropy H(X_t | X_{t-1}) of a sample, from bigram counts (nats)."""
    pair_N = tokens_N[:-1].astype(np.int64) * vocab + tokens_N[1:]
    counts_VxV = (
        np.bincount(pair_N, minlength=vocab * vocab).reshape(vocab, vocab).astype(np.float64)
    )
    rows_V = counts_VxV.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(counts_VxV > 0, counts_VxV * np.log(counts_VxV / rows_V), 0.0)
    return float(-terms.sum() / counts_VxV.sum())
