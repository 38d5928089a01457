"""What a run needs from the machine and the file system, kept apart from the model and loop.

- `atomic_io`: write-then-rename files, local or remote (etils.epath), and JSON reading
- `compile_cache`: JAX's persistent compilation cache, per user
- `compiler_options`: per-executable XLA options (YNNPACK dots and reductions on CPU)
- `cpu_devices`: split a CPU host's cores into one XLA device each
- `device_peak`: the FLOP/s that MFU divides by (measured on CPU, datasheet on GPU/TPU)
- `platforms`: which accelerators the host really has (an installed plugin is not a chip)
- `disk`: a full disk as one `DiskFullError` (path, free space), however orbax wraps it
- `provenance`: git commit, package version and versions, devices: what a result was made with
"""
