"""Test session setup: 8 fake CPU devices, so sharding tests exercise real meshes.

Must run before JAX initialises its backends, hence at import time of conftest.
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
