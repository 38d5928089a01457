"""`scaling-lab demo`: the README's main job. Run the cpu_tiny sweep, then the analysis report.

The analysis is reached through `analysis.cli.run` (`scaling-lab report DIR --out DIR/report` and
`scaling-lab fit DIR --json`), imported lazily; if the analysis package is not installed
the demo prints the results table instead and says so.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
from typing import Any

from experiments.results import RESULTS_FILE, read_csv
from lab.errors import ConfigError
from lab.run_status import RunStatus


def run_demo(sweep: str, out: str, *, jobs: int = 0) -> int:
    from experiments.runner import RunnerOptions, run_sweep
    from experiments.status import format_duration, format_status

    started = time.perf_counter()
    print(f"demo: sweep {sweep} into {out} (run the same command again to resume)", flush=True)
    run_sweep(sweep, out, RunnerOptions(jobs=jobs, progress=False))
    print(format_status(out))
    print(f"sweep wall time {format_duration(time.perf_counter() - started)}", flush=True)
    report_dir = os.path.join(out, "report")
    if not _analysis_available():
        print(
            "demo: the analysis package is not installed, so no report; the results table:\n"
            + results_text(out)
        )
        return 0
    from analysis import cli as analysis_cli
    from analysis.errors import AnalysisError
    from experiments.samples import write_samples

    try:  # DIR/samples.json, which the report shows per budget; the fits do not need it
        write_samples(out)
    except ConfigError as error:
        print(f"demo: no samples ({error})")
    try:
        code = analysis_cli.run(["report", out, "--out", report_dir])
    except AnalysisError as error:
        print(f"demo: `scaling-lab report` failed: {error}")
        code = 2
    if code:
        print("demo: no report; the results table:")
        print(results_text(out))
        return code
    print(f"report: {report_dir}")
    for line in summary_lines(out):
        print(line)
    print(f"demo total wall time {format_duration(time.perf_counter() - started)}")
    return 0


def _analysis_available() -> bool:
    try:
        from analysis import cli  # noqa: F401
    except ImportError:
        return False
    return True


def summary_lines(out: str) -> list[str]:
    """Three lines from `scaling-lab fit DIR --json --at LARGEST_BUDGET`: a, b, tokens/param."""
    from analysis import cli as analysis_cli
    from analysis.errors import AnalysisError

    rows = read_csv(os.path.join(out, RESULTS_FILE))
    largest = max(float(r["budget"]) for r in rows)
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            code = analysis_cli.run(["fit", out, "--json", "--at", repr(largest)])
    except AnalysisError as error:
        return [f"(fit failed: {error}; see the report)"]
    if code:
        return [f"(fit exited with {code}; see the report)"]
    try:
        return describe_fit(json.loads(buffer.getvalue()), largest)
    except (json.JSONDecodeError, KeyError, IndexError, TypeError) as error:
        return [f"(could not read the fit summary: {error!r}; see the report)"]


def _interval(value: float, ci: list[float] | None) -> str:
    return f"{value:.3g} [{ci[0]:.3g}, {ci[1]:.3g}]" if ci else f"{value:.3g}"


def describe_fit(doc: dict[str, Any], largest: float) -> list[str]:
    """a, b and tokens/param at the largest budget, from the IsoFLOP fit (Approach 2) if any."""
    names = {
        "approach2": "Approach 2 (IsoFLOP)",
        "approach3": "Approach 3 (L(N, D))",
        "approach1": "Approach 1 (envelope)",
    }
    key = next((k for k in names if (doc.get(k) or {}).get("a") is not None), None)
    if key is None:
        return ["(no fit succeeded; see the report's warnings)"]
    fit, name = doc[key], names[key]
    ci = fit.get("ci") or {}
    tpp = fit["tokens_per_param"][0]
    return [
        f"{name}: N_opt ~ C^a, a = {_interval(fit['a'], ci.get('a'))} (95% interval)",
        f"{name}: D_opt ~ C^b, b = {_interval(fit['b'], ci.get('b'))}",
        f"tokens per parameter at the largest budget ({largest:.3g} FLOPs): "
        f"{_interval(tpp['value'], tpp.get('ci'))}",
    ]


def results_text(out: str) -> str:
    rows = read_csv(os.path.join(out, RESULTS_FILE))
    lines = [f"{'budget':>8} {'N':>9} {'D':>11} {'tok/N':>7} {'loss':>8} {'status':>8}"]
    for r in rows:
        loss = f"{float(r['loss']):.4f}" if r["loss"] else "-"
        lines.append(
            f"{float(r['budget']):>8.2g} {int(r['N']):>9,} {int(r['D']):>11,} "
            f"{float(r['tokens_per_param']):>7.1f} {loss:>8} {r['status']:>8}"
            if r["status"] != RunStatus.FAILED
            else f"{float(r['budget']):>8.2g} {r['run_id']} failed: {r['error']}"
        )
    return "\n".join(lines)
