"""Cloud TPU slices by name: `v5e-16`, `v5p-128`, `v5p-256x2` (two slices), as XLA needs them.

A target names what a user rents; compiling for it needs the physical topology string that
libtpu understands (`v5p:4x4x4`), the chips' HBM, datasheet peak and HBM bandwidth, and the
number of slices. Pure Python, so `sweep plan` can describe a target without JAX.

Naming (Google Cloud's accelerator types): for v4 and v5p the number counts TensorCores, two
per chip (v5p-128 = 64 chips); for v5e and v6e it counts chips (v5e-16 = 16 chips). `xK` asks
for K slices joined by the data-centre network (DCN), e.g. `v5p-256x2`.
"""

from __future__ import annotations

import dataclasses
import math
import re

from lab.errors import ConfigError

GIB = 1024**3


@dataclasses.dataclass(frozen=True)
class TpuGeneration:
    """One chip generation's datasheet (Google Cloud TPU system architecture pages)."""

    name: str  # as in target names: v4, v5e, v5p, v6e
    topology_prefix: str  # as libtpu spells it in topology names
    cores_per_name_unit: int  # TensorCores counted per chip in the accelerator-type name
    dims: int  # 2-D (v5e, v6e) or 3-D torus (v4, v5p)
    hbm_bytes: int  # per chip
    peak_bf16: float  # dense bf16 FLOP/s per chip
    hbm_bandwidth: float  # bytes/s per chip


GENERATIONS = {
    g.name: g
    for g in (
        TpuGeneration("v4", "v4", 2, 3, 32 * GIB, 275e12, 1228e9),
        TpuGeneration("v5e", "v5e", 1, 2, 16 * GIB, 197e12, 819e9),
        TpuGeneration("v5p", "v5p", 2, 3, 95 * GIB, 459e12, 2765e9),
        TpuGeneration("v6e", "v6e", 1, 2, 32 * GIB, 918e12, 1640e9),
    )
}

_NAME = re.compile(r"^(v4|v5e|v5p|v6e)-(\d+)(?:x(\d+))?$")


@dataclasses.dataclass(frozen=True)
class TpuTarget:
    """A TPU slice (or several) to compile for."""

    name: str
    generation: TpuGeneration
    chips_per_slice: int
    slices: int = 1

    @property
    def chips(self) -> int:
        return self.chips_per_slice * self.slices

    @property
    def topology(self) -> str:
        """libtpu's name of one slice's physical topology, e.g. 'v5p:4x4x4'."""
        dims = _torus_dims(self.chips_per_slice, self.generation.dims)
        return f"{self.generation.topology_prefix}:{'x'.join(map(str, dims))}"

    @property
    def peak_flops(self) -> float:
        """Datasheet dense bf16 FLOP/s of the whole target."""
        return self.generation.peak_bf16 * self.chips

    def describe(self) -> str:
        g = self.generation
        slices = f" x {self.slices} slices (DCN)" if self.slices > 1 else ""
        return (
            f"{self.name}: {self.chips_per_slice} {g.name} chips ({self.topology}){slices}, "
            f"{g.hbm_bytes / GIB:.0f} GiB HBM and {g.peak_bf16 / 1e12:.0f} TFLOP/s bf16 per chip"
        )


def parse_target(name: str) -> TpuTarget:
    """`v5p-128` -> TpuTarget; a clear error naming the accepted forms otherwise."""
    match = _NAME.match(name.strip().lower())
    if not match:
        raise ConfigError(
            f"unknown TPU target {name!r}; use GENERATION-SIZE[xSLICES] with a generation in "
            f"{sorted(GENERATIONS)}, e.g. v5e-16, v5p-128, v5p-256x2"
        )
    generation = GENERATIONS[match.group(1)]
    size, slices = int(match.group(2)), int(match.group(3) or 1)
    if size % generation.cores_per_name_unit or slices < 1:
        raise ConfigError(f"{name!r}: {generation.name} sizes count TensorCores, two per chip")
    chips = size // generation.cores_per_name_unit
    _torus_dims(chips, generation.dims, name)  # validates
    return TpuTarget(name.strip().lower(), generation, chips, slices)


def _torus_dims(chips: int, dims: int, name: str | None = None) -> tuple[int, ...]:
    """The slice shape Cloud TPU uses for `chips` (powers of two, most balanced, smallest
    dimension first: 64 chips -> 4x4x4 on v5p, 16 -> 4x4 on v5e; 4 chips of a 3-D torus ->
    2x2x1)."""
    if chips < 1 or chips & (chips - 1):
        raise ConfigError(f"{name or chips}: slices have a power-of-two number of chips")
    exponent = int(math.log2(chips))
    if dims == 3 and chips < 8:  # the smallest 3-D slices are flat: 2x2x1
        shape = [2, 2, 1] if chips == 4 else [chips, 1, 1]
        return tuple(shape)
    parts = [exponent // dims + (1 if i >= dims - exponent % dims else 0) for i in range(dims)]
    return tuple(2**p for p in parts)
