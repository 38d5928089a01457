"""Per-device memory of a training run, estimated before compiling, and a refusal if it won't fit.

The seed arithmetic (fp32 Adam: weights 4 B + gradients 4 B + two moments 8 B per parameter,
plus activations) refined by sharding: every parameter's shard shape comes from its logical
axes and the rules (`lab.sharding`, its JAX-free part), so fsdp/tensor splitting is counted
exactly. Gradients and Adam moments are fp32 like the params (they take the params' sharding);
with `microbatches` > 1 the step also holds the gradient accumulator (one more fp32 copy).

Activations, bytes per token per layer (a = compute-dtype bytes), as the backward pass keeps
them under each `remat` policy of `lab.model`:
- "none": norms 2 x 2d a, QKV 3d a, RoPE'd q/k 2d a, attention output and projection 2d a,
  residual d a, MLP hidden 2f a (3f for SwiGLU), attention scores + probabilities H T (4 + a);
- "save-dots": the block input d a and the weight matmuls' outputs: QKV 3d a, projection d a,
  MLP in f a (2f SwiGLU) and out d a;
- "full": the block input d a only;
and under either remat policy one layer's "none" set, less what is saved, live while it is
recomputed. Plus fp32
logits, log-softmax and their gradient 3 V 4 per token (outside the blocks, never remat).
Head/MLP/vocab terms are divided by the tensor axis, tokens by data x fsdp x microbatches
(one microbatch's activations are alive at a time). A test compares each policy's estimate
with XLA's `memory_analysis` of the compiled step on CPU.
"""

from __future__ import annotations

import dataclasses
import math
import os

from lab.config import MESH_AXES, MeshConfig, ModelConfig
from lab.counting import param_specs
from lab.errors import OutOfMemoryError
from lab.sharding import shard_shape

FIT_FRACTION = 0.9  # leave room for the runtime, fragmentation and XLA's own workspace


@dataclasses.dataclass
class MemoryEstimate:
    """Bytes per device."""

    weights: int
    gradients: int
    optimizer: int
    activations: int
    total: int

    def describe(self) -> str:
        parts = ("weights", "gradients", "optimizer", "activations", "total")
        return ", ".join(f"{p} {format_bytes(getattr(self, p))}" for p in parts)


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    raise AssertionError


def _mesh_sizes(mesh: MeshConfig | tuple | str, num_devices: int | None) -> tuple[int, int, int]:
    """Concrete mesh sizes; a -1 axis without `num_devices` takes JAX's device count."""
    config = MeshConfig.from_spec(mesh)
    if num_devices is None and -1 in config.shape_spec:
        import jax

        num_devices = jax.device_count()
    return config.resolve(num_devices or math.prod(config.shape_spec))


def estimate_memory(
    model: ModelConfig,
    mesh: MeshConfig | tuple | str,
    batch_size: int,
    num_devices: int | None = None,
) -> MemoryEstimate:
    """Bytes per device for weights, gradients, Adam state and activations of one train step."""
    sizes = dict(zip(MESH_AXES, _mesh_sizes(mesh, num_devices), strict=True))
    param_bytes = 4 * sum(
        math.prod(shard_shape(shape, names, sizes)) for shape, names in param_specs(model).values()
    )
    tokens = math.ceil(batch_size / (sizes["data"] * sizes["fsdp"] * model.microbatches))
    activations = int(tokens * model.ctx * activation_bytes_per_token(model, sizes["tensor"]))
    weights, optimizer = param_bytes, 2 * param_bytes
    gradients = param_bytes * (2 if model.microbatches > 1 else 1)  # + the accumulator
    total = weights + gradients + optimizer + activations
    return MemoryEstimate(weights, gradients, optimizer, activations, total)


def activation_bytes_per_token(model: ModelConfig, tensor: int = 1) -> float:
    """Bytes the backward pass keeps per token (see the module docstring), `tensor`-way split."""
    a = 2 if model.compute_dtype == "bfloat16" else 4
    d, f, h, t = model.d_model, model.d_ff, model.n_heads, model.ctx
    mlp_in = (2 if model.mlp == "swiglu" else 1) * f
    rope = 2 * d if model.position == "rope" else 0
    scores = math.ceil(h / tensor) * t * (4 + a)
    full_layer = a * (7 * d + (3 * d + rope + mlp_in + f) / tensor) + scores
    saved_layer = {
        "none": full_layer,
        "save-dots": a * (3 * d + (3 * d + mlp_in) / tensor),
        "full": a * d,
    }[model.remat]
    # One layer rebuilt at a time in the backward pass: all of it, less the saved dots.
    recompute = 0.0 if model.remat == "none" else full_layer - saved_layer + a * d
    logits = 3 * 4 * math.ceil(model.vocab_size / tensor)
    return model.n_layers * saved_layer + recompute + logits


def device_memory_bytes() -> int:
    """Memory of one local device: the accelerator's limit, or host RAM shared by CPU devices."""
    import jax

    device = jax.local_devices()[0]
    stats = None
    try:
        stats = device.memory_stats()
    except (AttributeError, NotImplementedError, RuntimeError):
        stats = None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"])
    host = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return int(host // max(1, jax.local_device_count()))


def check_fits(estimate: MemoryEstimate, device_bytes: int | None = None) -> None:
    """Raise OutOfMemoryError (a ConfigError) if the estimate exceeds 90% of device memory."""
    if device_bytes is None:
        device_bytes = device_memory_bytes()
    budget = FIT_FRACTION * device_bytes
    if estimate.total <= budget:
        return
    biggest = "activations" if estimate.activations > estimate.weights * 4 else "parameter state"
    advice = (
        "reduce the batch size (or raise data/fsdp so each device gets fewer sequences), "
        "use compute_dtype='bfloat16', or a shorter ctx"
        if biggest == "activations"
        else "shard the parameters over more devices (raise fsdp or tensor in the mesh) or "
        "choose a smaller model"
    )
    raise OutOfMemoryError(
        f"this run needs about {format_bytes(estimate.total)} per device but only "
        f"{format_bytes(budget)} ({FIT_FRACTION:.0%} of {format_bytes(device_bytes)}) is "
        f"available: {estimate.describe()}. Most of it is {biggest}: {advice}."
    )
