"""The sweep file's `[resources]` table: what each run asks a Ray cluster for (`--executor ray`).

    [resources]
    num_cpus = 1              # per process (per host of a multi-host run)
    num_gpus = 0
    custom = { TPU = 4 }      # any custom resource the cluster's nodes advertise
    hosts = 1                 # processes per run, one per host (> 1: a placement group)
    cpu_devices = 4           # CPU only: fake XLA devices per process (lab.runtime.cpu_devices)
    max_retries = 3           # attempts after a lost node or worker, resumed from the checkpoint

    [[resources.sizes]]       # overrides for some model sizes, applied in order
    d_model = 512             # exact width, or min_params = 1e8 (at least this many parameters)
    num_gpus = 8
    hosts = 2

The local executor ignores the table. Nothing here imports JAX or Ray.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from lab.config import ModelConfig
from lab.errors import ConfigError

FIELDS = ("num_cpus", "num_gpus", "custom", "hosts", "cpu_devices", "max_retries")
SELECTORS = ("d_model", "min_params")


class ResourcesError(ConfigError):
    """The `[resources]` table is invalid; the message names the key and the fix."""


@dataclasses.dataclass(frozen=True)
class RunResources:
    """What one run asks for: per process (bundle), times `hosts` processes."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    custom: tuple[tuple[str, float], ...] = ()
    hosts: int = 1
    cpu_devices: int | None = None
    max_retries: int = 3

    def bundle(self) -> dict[str, float]:
        """One process's demand in Ray's resource names (a placement-group bundle)."""
        demand = {"CPU": self.num_cpus, "GPU": self.num_gpus, **dict(self.custom)}
        return {name: amount for name, amount in demand.items() if amount > 0}

    def describe(self) -> str:
        per_host = ", ".join(f"{k}={v:g}" for k, v in self.bundle().items()) or "nothing"
        return per_host if self.hosts == 1 else f"{self.hosts} hosts x ({per_host})"


@dataclasses.dataclass(frozen=True)
class ResourceOverride:
    d_model: int | None
    min_params: float | None
    values: tuple[tuple[str, Any], ...]

    def matches(self, model: ModelConfig) -> bool:
        if self.d_model is not None:
            return model.d_model == self.d_model
        return model.num_params() >= (self.min_params or 0.0)


@dataclasses.dataclass(frozen=True)
class ResourceSpec:
    """The sweep's default request and its per-size overrides."""

    default: RunResources = RunResources()
    overrides: tuple[ResourceOverride, ...] = ()

    def for_model(self, model: ModelConfig) -> RunResources:
        resources = self.default
        for override in self.overrides:
            if override.matches(model):
                resources = dataclasses.replace(resources, **dict(override.values))
        return resources


def parse_resources(table: Mapping[str, Any] | None) -> ResourceSpec:
    """Validate a `[resources]` table (None or absent: one CPU per run, 3 retries)."""
    if table is None:
        return ResourceSpec()
    if not isinstance(table, Mapping):
        raise ResourcesError(f"[resources] must be a table, got {type(table).__name__}")
    table = dict(table)
    sizes = table.pop("sizes", [])
    default = RunResources(**_values(table, "[resources]"))
    if not isinstance(sizes, list) or not all(isinstance(s, Mapping) for s in sizes):
        raise ResourcesError("[resources] sizes must be an array of tables: [[resources.sizes]]")
    overrides = tuple(_override(dict(s), i) for i, s in enumerate(sizes))
    return ResourceSpec(default, overrides)


def _override(table: dict[str, Any], index: int) -> ResourceOverride:
    where = f"[[resources.sizes]] #{index + 1}"
    chosen = [key for key in SELECTORS if key in table]
    if len(chosen) != 1:
        raise ResourcesError(
            f"{where} needs exactly one of d_model = 512 (that width) or min_params = 1e8 "
            f"(models at least that large), got {chosen or 'neither'}"
        )
    d_model = table.pop("d_model", None)
    min_params = table.pop("min_params", None)
    if d_model is not None and (isinstance(d_model, bool) or not isinstance(d_model, int)):
        raise ResourcesError(f"{where} d_model must be an integer width, got {d_model!r}")
    if min_params is not None and not _positive(min_params):
        raise ResourcesError(f"{where} min_params must be a positive number, got {min_params!r}")
    values = _values(table, where)
    if not values:
        raise ResourcesError(f"{where} overrides nothing; set one of {', '.join(FIELDS)}")
    return ResourceOverride(d_model, min_params, tuple(values.items()))


def _values(table: dict[str, Any], where: str) -> dict[str, Any]:
    unknown = sorted(set(table) - set(FIELDS))
    if unknown:
        raise ResourcesError(f"unknown {where} key(s) {unknown}; valid keys: {', '.join(FIELDS)}")
    out: dict[str, Any] = {}
    for key in ("num_cpus", "num_gpus"):
        if key in table:
            if not _positive(table[key], allow_zero=True):
                raise ResourcesError(f"{where} {key} must be a number >= 0, got {table[key]!r}")
            out[key] = float(table[key])
    if "custom" in table:
        custom = table["custom"]
        if not isinstance(custom, Mapping) or not all(
            _positive(v, allow_zero=True) for v in custom.values()
        ):
            raise ResourcesError(
                f"{where} custom must be a table of resource amounts, e.g. custom = {{ TPU = 4 }}"
            )
        out["custom"] = tuple(sorted((str(k), float(v)) for k, v in custom.items()))
    for key, minimum in (("hosts", 1), ("cpu_devices", 1), ("max_retries", 0)):
        if key in table:
            value = table[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ResourcesError(
                    f"{where} {key} must be an integer >= {minimum}, got {value!r}"
                )
            out[key] = value
    return out


def _positive(value: Any, allow_zero: bool = False) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return False
    return value >= 0 if allow_zero else value > 0
