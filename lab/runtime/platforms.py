"""Which accelerators this host really has, decided before JAX starts a backend.

An installed plugin is not a chip: `libtpu` is installed on CPU hosts too, so that XLA can
compile for TPU topologies (`lab.aot`), and JAX would then probe for a TPU on every start,
print warnings about hostnames it cannot find and fall back to the CPU. A plugin counts only
where its device nodes exist (`/dev/accel*` or `/dev/vfio/*` for a TPU VM's chips,
`/dev/nvidia*` for NVIDIA GPUs, `/dev/kfd` for ROCm).
"""

from __future__ import annotations

import glob
import importlib.util
import os

PLUGIN_DEVICES = {
    "libtpu": ("/dev/accel*", "/dev/vfio/[0-9]*"),
    "jax_cuda12_plugin": ("/dev/nvidia[0-9]*",),
    "jax_cuda13_plugin": ("/dev/nvidia[0-9]*",),
    "jax_rocm60_plugin": ("/dev/kfd",),
}


def usable_plugins() -> list[str]:
    """Accelerator plugins that are installed and whose devices exist on this host."""
    return [
        name
        for name, patterns in PLUGIN_DEVICES.items()
        if importlib.util.find_spec(name) and any(glob.glob(p) for p in patterns)
    ]


def cpu_only() -> bool:
    """Will JAX run on the CPU here? `JAX_PLATFORMS` if set, else the usable plugins (decided
    without starting a backend, which on a GPU would preallocate its memory)."""
    platforms = os.environ.get("JAX_PLATFORMS", "")
    if platforms:
        return platforms.split(",")[0].strip() == "cpu"
    return not usable_plugins()


def skip_absent_tpu() -> None:
    """With libtpu installed but no TPU chips, tell JAX not to probe for one (a CPU host that
    compiles for TPU topologies); the user's own `JAX_PLATFORMS` always wins."""
    if os.environ.get("JAX_PLATFORMS") or importlib.util.find_spec("libtpu") is None:
        return
    if "libtpu" in usable_plugins():
        return
    gpus = [p for p in usable_plugins() if p != "libtpu"]
    backend = "rocm" if any("rocm" in p for p in gpus) else "cuda"
    os.environ["JAX_PLATFORMS"] = f"{backend},cpu" if gpus else "cpu"
