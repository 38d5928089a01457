"""Compile a run's real train step for a TPU slice on a CPU host, and read XLA's verdict.

With `libtpu` installed, XLA compiles for a named TPU topology without a chip
(`jax.experimental.topologies`, as MaxText's `train_compile.py` does). The step compiled here
is the one `lab.train` runs: the same model, optimizer, mesh rules and shardings, laid over
the target's devices (over several slices, the data axis spans the slower DCN network, see
`lab.sharding.make_mesh`). What comes back are XLA's figures, not measurements:

- per-device bytes of arguments, outputs and temporaries against the chip's HBM;
- XLA's FLOPs of one step (all devices) against the lab's count of what the step executes
  (`lab.counting.executed_flops_per_token`: full attention plus remat's recomputation);
  XLA counts a loop body once, so a step with scanned layers or microbatches is costed from
  its unrolled 1- and 2-layer variants (`unrolled_cost`);
- an estimated step time: XLA's own `optimal_seconds` where its cost model gives one, else
  the roofline of XLA's per-device FLOPs at the datasheet peak and its bytes accessed at the
  HBM bandwidth, whichever is slower (communication is not in either), and from it tokens/s,
  MFU (causal count, as `lab.train` measures it) and the run's hours.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

from lab.config import ModelConfig
from lab.counting import executed_flops_per_token
from lab.errors import ConfigError
from lab.run_config import RunConfig
from lab.tpu_targets import TpuTarget, parse_target

# libtpu inspects the host at start-up; on a CPU host these keep it from probing for chips
# and printing warnings about hostnames it cannot find.
# ALLOW_MULTIPLE_LIBTPU_LOAD: without a chip to guard, libtpu's lockfile only stops a second
# compiling process (parallel tests, a bench beside a sweep plan).
_QUIET_LIBTPU = {
    "TPU_WORKER_HOSTNAMES": "localhost",
    "TPU_STDERR_LOG_LEVEL": "3",
    "ALLOW_MULTIPLE_LIBTPU_LOAD": "1",
}
FIT_FRACTION = 0.95  # XLA's own count: leave a little for the runtime
COST_KEYS = ("flops", "bytes accessed", "optimal_seconds")


@dataclasses.dataclass(frozen=True)
class CompileReport:
    """XLA's figures for one train step of one run shape on one target (per device unless
    the name says otherwise)."""

    target: str
    topology: str
    slices: int
    chips: int
    devices: int
    mesh: dict[str, int]
    params: int
    batch_size: int
    ctx: int
    argument_bytes: int
    output_bytes: int
    alias_bytes: int
    temp_bytes: int
    hbm_bytes: int
    xla_flops: float  # one step, all devices
    lab_flops: float  # one step: full attention count + remat recomputation (what runs)
    bytes_accessed: float  # per device
    step_seconds: float
    step_time_source: str  # "xla optimal_seconds" or "roofline"
    model_flops_causal: float  # one step, the MFU numerator
    peak_flops: float  # whole target
    compile_seconds: float
    num_steps: int

    @property
    def peak_bytes(self) -> int:
        """Live bytes at the step's high-water mark: arguments (donated into the outputs)
        plus outputs not aliased to them plus temporaries."""
        return self.argument_bytes + self.output_bytes - self.alias_bytes + self.temp_bytes

    @property
    def fits(self) -> bool:
        return self.peak_bytes <= FIT_FRACTION * self.hbm_bytes

    @property
    def flops_ratio(self) -> float:
        return self.xla_flops / self.lab_flops

    @property
    def tokens_per_second(self) -> float:
        return self.batch_size * self.ctx / self.step_seconds

    @property
    def mfu(self) -> float:
        return self.model_flops_causal / self.step_seconds / self.peak_flops

    @property
    def run_hours(self) -> float:
        return self.num_steps * self.step_seconds / 3600

    @property
    def chip_hours(self) -> float:
        return self.run_hours * self.chips

    def as_dict(self) -> dict[str, Any]:
        record = dataclasses.asdict(self)
        for name in ("peak_bytes", "fits", "flops_ratio", "tokens_per_second", "mfu"):
            record[name] = getattr(self, name)
        record["run_hours"], record["chip_hours"] = self.run_hours, self.chip_hours
        record["estimate"] = "XLA's cost model, not a measurement"
        return record


def topology_devices(target: TpuTarget) -> list[Any]:
    """The target's devices as libtpu describes them; a clear error without libtpu."""
    for key, value in _QUIET_LIBTPU.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("TPU_ACCELERATOR_TYPE", _accelerator_type(target))
    try:
        import libtpu  # noqa: F401
    except ImportError:
        raise ConfigError(
            "compiling for a TPU needs libtpu; install it with pip install 'scaling-lab[tpu]'"
        ) from None
    from jax.experimental import topologies

    topology = topologies.get_topology_desc(
        platform="tpu", topology_name=target.topology, num_slices=target.slices
    )
    return list(topology.devices)


def _accelerator_type(target: TpuTarget) -> str:
    per_slice = target.chips_per_slice * target.generation.cores_per_name_unit
    name = {"v5e": "v5litepod", "v6e": "v6e"}.get(target.generation.name, target.generation.name)
    return f"{name}-{per_slice}"


@dataclasses.dataclass(frozen=True)
class CompiledStep:
    """The compiled train step and what it was laid over (for tests and deeper inspection)."""

    compiled: Any  # jax.stages.Compiled
    mesh: Any  # jax.sharding.Mesh over the target's devices
    state_shardings: Any  # TrainState of NamedShardings
    seconds: float


def compile_train_step(config: RunConfig, target: TpuTarget | str) -> CompiledStep:
    """Lower and compile `config`'s train step (as `lab.train` builds it) for `target`."""
    import jax
    import jax.numpy as jnp

    from lab.optim import make_optimizer, schedule_arrays
    from lab.sharding import batch_sharding, check_batch_size, make_mesh
    from lab.train_step import make_init_state, make_train_step, state_shardings

    target = parse_target(target) if isinstance(target, str) else target
    mesh = make_mesh(config.mesh, devices=topology_devices(target), slices=target.slices)
    model, batch_size = config.model, config.train_batch_size
    check_batch_size(mesh, batch_size)
    optimizer_config = config.effective_optimizer()
    optimizer, _ = make_optimizer(optimizer_config, config.num_steps, model)
    shardings = state_shardings(model, optimizer, mesh)
    init = make_init_state(model, optimizer, shardings)
    schedule = schedule_arrays(optimizer_config, config.num_steps)
    abstract_state = jax.tree.map(
        lambda leaf, sharding: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=sharding),
        jax.eval_shape(init, jax.random.key(0), schedule),
        shardings,
    )
    batch = jax.ShapeDtypeStruct(
        (batch_size, model.ctx + 1), jnp.int32, sharding=batch_sharding(mesh)
    )
    step = make_train_step(model, optimizer, mesh, shardings, steps_per_call=1)
    tic = time.perf_counter()
    compiled = step.lower(abstract_state, batch).compile()
    return CompiledStep(compiled, mesh, shardings, time.perf_counter() - tic)


def compile_step(config: RunConfig, target: TpuTarget | str) -> CompileReport:
    """Compile `config`'s train step for `target` and return XLA's memory and cost figures."""
    target = parse_target(target) if isinstance(target, str) else target
    step = compile_train_step(config, target)
    cost, seconds = _single_cost(step.compiled), step.seconds
    if _has_loops(config.model):
        cost, extra_seconds = unrolled_cost(config, target)
        seconds += extra_seconds
    return _report(config, target, step, cost, seconds)


def _has_loops(model: ModelConfig) -> bool:
    return model.scan_layers or model.microbatches > 1


def _single_cost(compiled) -> dict[str, float]:
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list | tuple) else cost
    return {key: float(cost.get(key, -1.0)) for key in COST_KEYS}


def unrolled_cost(config: RunConfig, target: TpuTarget) -> tuple[dict[str, float], float]:
    """XLA's cost of `config`'s step, for a step with loops inside.

    XLA's cost analysis counts a loop body once, whatever its trip count, so a step with
    scanned layers or microbatches would read as one layer's and one microbatch's work. The
    cost is therefore read from the same step unrolled (no scan, one microbatch: the same
    batch in one piece) with 1 and 2 layers, and extrapolated linearly in depth: the blocks
    are identical, so each one adds the same cost. Memory still comes from the real step.
    """
    costs, seconds = [], 0.0
    for layers in (1, 2):
        model = dataclasses.replace(
            config.model, n_layers=layers, scan_layers=False, microbatches=1
        )
        step = compile_train_step(dataclasses.replace(config, model=model), target)
        costs.append(_single_cost(step.compiled))
        seconds += step.seconds
    one, two = costs
    depth = config.model.n_layers - 1
    cost = {key: one[key] + depth * (two[key] - one[key]) for key in ("flops", "bytes accessed")}
    both_timed = one["optimal_seconds"] > 0 and two["optimal_seconds"] > 0
    cost["optimal_seconds"] = (
        one["optimal_seconds"] + depth * (two["optimal_seconds"] - one["optimal_seconds"])
        if both_timed
        else -1.0
    )
    return cost, seconds


def _report(
    config: RunConfig, target: TpuTarget, step: CompiledStep, cost: dict, compile_seconds: float
) -> CompileReport:
    memory = step.compiled.memory_analysis()
    devices = step.mesh.devices.size
    per_device_peak = target.peak_flops / devices
    per_device_bandwidth = target.generation.hbm_bandwidth * target.chips / devices
    flops, accessed, optimal = (cost[key] for key in COST_KEYS)
    if optimal > 0:
        seconds, source = optimal, "xla optimal_seconds"
    else:  # libtpu's cost model leaves optimal_seconds unset (negative) for some programs
        seconds, source = max(flops / per_device_peak, accessed / per_device_bandwidth), "roofline"
    tokens = config.train_batch_size * config.model.ctx
    return CompileReport(
        target=target.name,
        topology=target.topology,
        slices=target.slices,
        chips=target.chips,
        devices=devices,
        mesh={name: int(size) for name, size in step.mesh.shape.items()},
        params=config.model.num_params(),
        batch_size=config.train_batch_size,
        ctx=config.model.ctx,
        argument_bytes=int(memory.argument_size_in_bytes),
        output_bytes=int(memory.output_size_in_bytes),
        alias_bytes=int(memory.alias_size_in_bytes),
        temp_bytes=int(memory.temp_size_in_bytes),
        hbm_bytes=int(target.generation.hbm_bytes * target.chips / devices),
        xla_flops=flops * devices,
        lab_flops=executed_flops_per_token(config.model) * tokens,
        bytes_accessed=accessed,
        step_seconds=seconds,
        step_time_source=source,
        model_flops_causal=config.model.flops_per_token("causal") * tokens,
        peak_flops=target.peak_flops,
        compile_seconds=compile_seconds,
        num_steps=config.num_steps,
    )
