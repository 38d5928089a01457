"""The facts a grid needs from this machine: the corpus's vocabulary and size, device memory.

Kept apart from the pure solver so tests can solve grids with made-up numbers; here the
corpus is loaded (cached on disk after the first time) and `lab.memory` checks each shape
against the devices present.
"""

from __future__ import annotations

import dataclasses

from experiments.grid import Grid, MemoryCheck, solve_grid
from experiments.sweep_file import SweepSpec
from lab.config import MeshConfig, ModelConfig
from lab.errors import OutOfMemoryError


@dataclasses.dataclass(frozen=True)
class CorpusFacts:
    vocab_size: int
    train_tokens: int
    fingerprint: str
    name: str


def corpus_facts(spec: SweepSpec) -> CorpusFacts:
    """Vocabulary and unique train tokens of the sweep's corpus (loads/builds its cache)."""
    from lab.data import DataConfig, load_corpus

    corpus = load_corpus(DataConfig.from_dict(spec.template["data"]))
    return CorpusFacts(
        vocab_size=corpus.tokenizer.vocab_size,
        train_tokens=corpus.train_tokens,
        fingerprint=corpus.fingerprint,
        name=corpus.name,
    )


def memory_check(spec: SweepSpec) -> MemoryCheck:
    """A check that turns `lab.memory`'s refusal into a drop reason (imports JAX for devices)."""
    from lab import memory

    mesh = MeshConfig.from_dict(spec.template["mesh"])
    device_bytes = memory.device_memory_bytes()

    def check(model: ModelConfig, batch_size: int) -> str | None:
        try:
            memory.check_fits(memory.estimate_memory(model, mesh, batch_size), device_bytes)
        except OutOfMemoryError as error:
            return f"over memory: {error}"
        return None

    return check


def build_grid(spec: SweepSpec, *, check_memory: bool = True) -> tuple[Grid, CorpusFacts]:
    """The sweep's grid on this machine, with the corpus facts it was solved with."""
    facts = corpus_facts(spec)
    grid = solve_grid(
        spec,
        vocab_size=facts.vocab_size,
        train_tokens=facts.train_tokens,
        memory_check=memory_check(spec) if check_memory else None,
    )
    return grid, facts
