"""Sweeps: many `lab` runs laid out, run, recorded and checked; the `scaling-lab` dispatcher.

- `main`: the `scaling-lab` console script; catches ConfigError/AnalysisError once
- `cli`: `sweep plan|run|status|table|verify|samples|export` and `demo`
- `sweep_file`, `tuning_spec`: the sweep TOML and its [tuning] table, validated
- `grid`: the IsoFLOP solver (budgets x sizes -> N, D, steps; dropped points with reasons)
- `context`: what the grid needs from this machine (corpus facts, device memory)
- `plan`: `sweep plan`'s table and time estimate
- `options`: RunnerOptions, shared by `runner` and `jobs`
- `runner`: claim, train (lab.train), record, repeat; exit codes from the runs' states
- `jobs`: `--jobs k` child workers pinned to cores
- `packing_spec`, `grouping`: the [packing] table; runs of one shape claimed and trained as a
  group (lab.group_train), `sweep plan`'s packing section, `sweep verify` of a group;
  `packed_loop`: the worker's runs side by side on sub-meshes (`devices_per_run`)
- `claims`: heartbeat claims so no run is trained twice at once
- `staging`: a run directory copied file by file (moved aside on gs://; no training copy)
- `sweep_dir`: DIR's layout and each run's state (lab.run_dir owns the run's own files)
- `results`: results.csv, curves.csv and their tables.json (row counts, checksums)
- `status`: `sweep status` counts, FLOPs and ETA (text or --json)
- `tuning`: the LR-tuning stage and the law it fits
- `branching`: trunk segments + cooldown branches of a `strategy = "branching"` sweep;
  `branch_plan`: their lines in `sweep plan` (trunks, branches, FLOPs saved)
- `verify`: re-run finished runs and compare (names an edited config.json)
- `samples`: per budget, the optimal, smallest and largest run complete a prompt
- `export`: a finished sweep's tables, sweep file and plan into a study data folder
- `demo`: cpu_tiny end to end
- `compile_command`, `target_plan`: a run or sweep compiled for a TPU slice (XLA's memory,
  FLOPs and estimated time per shape; chip-hours)

Imports `lab` and `analysis`; neither imports it back.
"""
