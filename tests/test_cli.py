"""The `scaling-lab` dispatcher: every package's commands are there, and analysis commands
run on a machine without JAX (the dispatcher must not import it to build its parser)."""

import subprocess
import sys

from experiments.main import build_parser

BLOCK_JAX = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('jax', 'jaxlib', 'flax', 'optax', 'orbax'):
            raise ImportError(f'{name} is blocked in this test')
sys.meta_path.insert(0, Block())
from experiments.main import main
sys.exit(main(sys.argv[1:]))
"""


def test_every_package_registers_its_commands():
    commands = set(build_parser()._subparsers._group_actions[0].choices)
    assert {"info", "data", "train", "sample", "sweep", "demo", "fit", "report", "plan"} <= commands


def test_fit_and_plan_run_with_jax_blocked(tmp_path):
    for argv in (
        ["plan", "--budget", "1e22", "--use", "besiroglu"],
        ["fit", "--example", "chinchilla", "--approach", "3", "--bootstrap-a3", "0"],
    ):
        done = subprocess.run(
            [sys.executable, "-c", BLOCK_JAX, *argv], capture_output=True, text=True, cwd=tmp_path
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert "N" in done.stdout
