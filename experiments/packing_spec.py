"""The sweep file's optional `[packing]` table, validated (no JAX, no other experiments
module: `sweep_file` reads it). What the keys do: `experiments.grouping`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from lab.errors import ConfigError

# bench/results/packing.json on this 2-core x86 CPU (jax 0.10, XLA:CPU): a group of 5 runs of
# one shape trained SLOWER per step than the same 5 runs one after another at every size
# measured (0.70x at 2.1e4 params, 0.31x at 9.8e4, 0.19x at 2.5e5: a step R times larger costs
# more per token on a CPU core, bench/results/group_scaling.json), and no faster in wall
# time: nothing is grouped by default. On GPU/TPU, where a small run leaves the chip idle,
# measure with bench/packing.py and set group_max_params.
MEASURED_GROUP_MAX_PARAMS = 0.0
MEASURED_SOURCE = "bench/results/packing.json (2-core x86 CPU: grouping never helped)"
GROUP_MODES = ("auto", "always", "never")


class PackingError(ConfigError):
    """The [packing] table is invalid; the message names the key and the fix."""


@dataclasses.dataclass(frozen=True)
class PackingSpec:
    group: str = "auto"
    group_max_params: float | None = None
    max_group_size: int = 8
    devices_per_run: Any = "all"  # "all", int, "rule" or a tuple of (max N, devices)
    params_per_device: float = 2.5e5

    def threshold(self) -> tuple[float, str]:
        """(largest N grouped, where that number comes from)."""
        if self.group == "never":
            return 0.0, "[packing] group = never"
        if self.group == "always":
            return float("inf"), "[packing] group = always"
        if self.group_max_params is not None:
            return self.group_max_params, "[packing] group_max_params"
        return MEASURED_GROUP_MAX_PARAMS, MEASURED_SOURCE

    def devices_for(self, num_params: float, total: int, batch: int) -> int:
        """How many of the `total` devices one run of `num_params` trains on."""
        from lab.packing import devices_for

        if self.devices_per_run == "all":
            return total
        if self.devices_per_run == "rule":
            return devices_for(num_params, self.params_per_device, total, batch)
        if isinstance(self.devices_per_run, int):
            return min(self.devices_per_run, total)
        for limit, devices in self.devices_per_run:
            if num_params <= limit:
                return min(devices, total)
        return total


def parse_packing(table: Mapping[str, Any] | None) -> PackingSpec:
    """Validate the optional [packing] table."""
    if table is None:
        return PackingSpec()
    keys = {f.name for f in dataclasses.fields(PackingSpec)}
    unknown = sorted(set(table) - keys)
    if unknown:
        raise PackingError(f"unknown [packing] key(s) {unknown}; valid keys: {sorted(keys)}")
    group = table.get("group", "auto")
    if group not in GROUP_MODES:
        raise PackingError(f"[packing] group must be one of {list(GROUP_MODES)}, got {group!r}")
    size = table.get("max_group_size", 8)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise PackingError(f"[packing] max_group_size must be an integer >= 1, got {size!r}")
    limit = table.get("group_max_params")
    if limit is not None and not (isinstance(limit, int | float) and limit > 0):
        raise PackingError(f"[packing] group_max_params must be a number > 0, got {limit!r}")
    per_device = table.get("params_per_device", 2.5e5)
    if not isinstance(per_device, int | float) or per_device <= 0:
        raise PackingError(f"[packing] params_per_device must be > 0, got {per_device!r}")
    return PackingSpec(
        group=group,
        group_max_params=float(limit) if limit is not None else None,
        max_group_size=size,
        devices_per_run=_devices_per_run(table.get("devices_per_run", "all")),
        params_per_device=float(per_device),
    )


def _devices_per_run(value: Any) -> Any:
    if value in ("all", "rule"):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    if isinstance(value, Mapping):
        try:
            pairs = sorted((float(k), v) for k, v in value.items())
        except ValueError:
            pairs = []
        if pairs and all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 1 for _, v in pairs
        ):
            return tuple(pairs)
    raise PackingError(
        f'[packing] devices_per_run must be "all", "rule", an integer >= 1, or a table of '
        f'N limits to device counts like {{"1e5" = 2, "1e6" = 4}}; got {value!r}'
    )
