"""`analysis` must work where JAX, Flax and the training side are not installed."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import sys
    BLOCKED = ("jax", "jaxlib", "flax", "optax", "orbax", "lab", "experiments", "tensorflow", "grain")

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"blocked: {name}")
            return None

    sys.meta_path.insert(0, Blocker())
    import tempfile, pathlib
    import analysis, analysis.cli, analysis.plots, analysis.report, analysis.planner
    from analysis.examples import load_example
    from analysis.pipeline import run_fits
    from analysis.report import write_report
    ds = load_example("chinchilla")
    an = run_fits(ds, ("2", "3"), n_boot=20, n_boot_a3=50)
    out = pathlib.Path(tempfile.mkdtemp())
    write_report(an, out)
    assert (out / "figures" / "optimal_allocation.png").exists()
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    assert not leaked, leaked
    print("OK", round(an.approach3.params["E"], 3))
    """
)


def test_analysis_imports_fits_and_plots_with_jax_blocked():
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "OK 1.817"
