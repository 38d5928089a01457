"""One training run: a pure-functional Flax transformer, sharded over any device mesh.

The core, at the top:
- `config`: validated frozen dataclasses (model, optimizer, mesh); `run_config`: a whole run
- `presets`: the shape rule (params -> width, depth, heads); GPT-3's 125m and 350m
- `counting`: exact parameter counts and FLOPs per token (6N, detailed causal/full, executed)
- `memory`: the per-device preflight estimate (remat, microbatches, sharding counted)
- `model`: the linen decoder (scanned or looped blocks, remat); `mup`: muP scaling
- `sharding`: the mesh (hybrid over TPU slices), the logical axis rules, every sharding
- `optim`: AdamW and the schedule as optimizer-state data; `train_step`: jitted init/step/eval
- `step_cache`: a worker's jitted functions kept per shape; `step_meter`: per-step metrics
- `train`: setup, loop and result of one run (resumable, bitwise); `checkpoint`: orbax
- `preemption`: SIGTERM and time-based saves, one decision agreed by all processes
- `branch`: a run started from another's checkpoint with its own schedule (WSD cooldowns)
- `group_step`, `group_train`: runs of one shape trained by one vmapped step, each its own run
- `packing`: the devices split into sub-meshes, a small run training on each at once
- `run_dir`: the one owner of a run's files; `run_status`: done/diverged/failed/...;
  `metrics`: JSONL logs and the progress bar; `tensorboard_log`: the same scalars as
  TensorBoard event files (tensorboardX); `exit_codes`: the CLI's codes
- `decode`, `sampling`, `completion`: KV-cached generation from a run's checkpoint
- `tpu_targets`, `aot`: compile the real train step for a Cloud TPU topology on a CPU host
- `errors`, `units`: ConfigError and friends; FLOPs <-> PF-days <-> accelerator-hours

Subpackages: `data` (corpora, tokenizers, streams), `cli` (the info, data, train and sample
commands), `runtime` (compile cache, compiler options, CPU devices, device peak, platforms,
atomic IO, remote IO (retries, GCS preconditions), disk, provenance). `lab` never imports
`experiments` or `analysis`.
"""
