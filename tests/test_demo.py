"""`scaling-lab demo`, the README's main command, end to end in a subprocess.

The default suite runs cpu_tiny's own recipe shrunk (2 budgets x 3 sizes, a few steps each)
through the same command; the slow test runs cpu_tiny itself. Both check the ending the
README promises: the report's path and three summary lines that agree with `fit --json`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CPU_TINY = REPO / "experiments" / "configs" / "cpu_tiny.toml"


def scaling_lab(*args: str, timeout: float) -> str:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # one CPU device, as users
    env["JAX_PLATFORMS"] = "cpu"
    done = subprocess.run(
        [sys.executable, "-m", "experiments.main", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def reduced_cpu_tiny(path: Path) -> Path:
    """cpu_tiny with its budgets, widths and minimum steps cut down; everything else as is."""
    text = CPU_TINY.read_text()
    for old, new in (
        ('name = "cpu_tiny"', 'name = "cpu_tiny_reduced"'),
        (
            "budgets_flops = [1.25e11, 2.2e11, 4e11, 7e11, 1.2e12, 2e12]",
            "budgets_flops = [3e9, 6e9]",
        ),
        ("d_models = [16, 32, 48, 64, 80, 96]", "d_models = [16, 32, 48]"),
        ("min_steps = 200", "min_steps = 8"),
    ):
        assert old in text, f"cpu_tiny.toml no longer has {old!r}; update this test"
        text = text.replace(old, new)
    path.write_text(text)
    return path


def check_demo_ending(output: str, out: Path, largest: str) -> None:
    """Report path, then a, b and tokens/param lines matching the fit of the same directory."""
    lines = output.strip().splitlines()
    report_line = next(i for i, line in enumerate(lines) if line.startswith("report: "))
    assert Path(lines[report_line].split(": ", 1)[1]) == out / "report"
    assert (out / "report" / "report.md").exists() and (out / "report" / "report.html").exists()
    a_line, b_line, tpp_line = lines[report_line + 1 : report_line + 4]
    fit_args = ("--json", "--at", largest, "--bootstrap", "50", "--bootstrap-a3", "50")
    fit = json.loads(scaling_lab("fit", str(out), *fit_args, timeout=300))  # point estimates
    name = re.match(r"Approach (\d)", a_line)
    assert name, a_line
    approach = fit[f"approach{name.group(1)}"]
    a = float(re.search(r"a = (\S+)", a_line).group(1))
    b = float(re.search(r"b = (\S+)", b_line).group(1))
    assert a == pytest.approx(approach["a"], rel=5e-3) and b == pytest.approx(
        approach["b"], rel=5e-3
    )
    assert a + b == pytest.approx(1.0, abs=0.01)  # C = 6 N D: the exponents add up to 1
    assert tpp_line.startswith(f"tokens per parameter at the largest budget ({largest} FLOPs)")
    tpp = float(tpp_line.split("): ")[1].split()[0])
    assert tpp == pytest.approx(approach["tokens_per_param"][0]["value"], rel=5e-3)


def test_reduced_demo_runs_the_readme_path(tmp_path):
    sweep = reduced_cpu_tiny(tmp_path / "reduced.toml")
    out = tmp_path / "demo"
    output = scaling_lab(
        "demo", "--sweep", str(sweep), "--out", str(out), "--jobs", "1", timeout=600
    )
    rows = (out / "results.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 6 and all(",done," in r for r in rows[1:])
    assert (out / "samples.json").exists()
    check_demo_ending(output, out, "6e+09")


@pytest.mark.slow
def test_cpu_tiny_demo_end_to_end(tmp_path):
    out = tmp_path / "demo"
    output = scaling_lab("demo", "--out", str(out), timeout=1800)
    rows = (out / "results.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 32  # branches only: the trunks are no points of the study
    print(output)  # wall times, for the record
    check_demo_ending(output, out, "2e+12")
