"""docs/analysis_tutorial.md must stay true: its commands run and print what the text shows.

The tutorial's ```bash blocks run in order in a temporary directory with the venv's
`scaling-lab` and `python` first on PATH and JAX blocked; its ```python blocks run in one
namespace (like a notebook) with JAX, `lab` and `experiments` blocked. A ```text block right
after a runnable block is that block's expected output: its lines (whitespace-normalised, `...`
marks a cut) must appear in the real output, in order. Any other ```text block must appear in the
output of some block. A block preceded by `<!-- slow -->` runs only in the slow test. ```console
blocks (installation) are shown, never run. The comparison table's numbers are recomputed.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "docs" / "analysis_tutorial.md"
FIGURE_DIR = ROOT / "docs" / "tutorial"
BIN = Path(sys.executable).parent
MAX_FIGURE_BYTES = 300_000
BLOCKED = (
    "jax",
    "jaxlib",
    "flax",
    "optax",
    "orbax",
    "tensorflow",
    "tensorflow_datasets",
    "grain",
    "etils",
    "tqdm",
)

BLOCKER = textwrap.dedent(
    f"""
    import sys

    BLOCKED = set({BLOCKED!r})


    class _Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {{name!r}} (blocked)", name=name)
            return None


    sys.meta_path.insert(0, _Blocker())
    """
)

PY_RUNNER = textwrap.dedent(
    """
    import contextlib, io, json, sys, traceback

    import sitecustomize  # the blocker, already active

    sitecustomize.BLOCKED |= {"lab", "experiments"}
    blocks = json.load(open(sys.argv[1]))
    scope = {"__name__": "__main__"}
    outputs = []
    for i, code in enumerate(blocks):
        buf = io.StringIO()
        try:
            with contextlib.redirect_stdout(buf):
                exec(compile(code, f"<python block {i}>", "exec"), scope)
        except BaseException:
            print(f"python block {i} failed:\\n{code}", file=sys.stderr)
            traceback.print_exc()
            sys.exit(1)
        outputs.append(buf.getvalue())
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in sitecustomize.BLOCKED)
    json.dump({"outputs": outputs, "leaked": leaked}, open(sys.argv[2], "w"))
    """
)


@dataclass
class Block:
    """One fenced block of the tutorial, with the ```text block that follows it, if any."""

    lang: str
    code: str
    line: int
    slow: bool = False
    expected: str | None = None


def parse_blocks(text: str) -> list[Block]:
    """Fenced blocks in order; `expected` attached to runnable blocks followed by ```text."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i, previous = 0, ""
    while i < len(lines):
        m = re.match(r"^```(\S*)", lines[i])
        if not m:
            if lines[i].strip():
                previous = lines[i].strip()
            i += 1
            continue
        start, body = i, []
        i += 1
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        blocks.append(
            Block(m.group(1), "\n".join(body) + "\n", start + 1, previous == "<!-- slow -->")
        )
        previous = ""
        i += 1
    for prev, nxt in itertools.pairwise(blocks):
        if prev.lang in ("bash", "python") and nxt.lang == "text":
            prev.expected = nxt.code
            nxt.lang = "text-paired"
    return blocks


def norm(line: str) -> str:
    return " ".join(line.split())


def assert_shown_lines_in_output(expected: str, actual: str, where: str) -> None:
    """Every shown line (except `...`) occurs in `actual`, in the same order."""
    got = [norm(x) for x in actual.splitlines()]
    pos = 0
    for line in expected.splitlines():
        want = norm(line)
        if not want or want == "...":
            continue
        try:
            pos = got.index(want, pos) + 1
        except ValueError:
            pytest.fail(
                f"{where}: the tutorial shows\n  {want!r}\nbut the real output (from line {pos})"
                " has no such line:\n" + "\n".join(got[pos:])
            )


def write_blocker(tmp: Path) -> Path:
    site = tmp / "_site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)
    return site


def environment(site: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "MPL"))}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}")
    env.update(PYTHONPATH=str(site), MPLBACKEND="Agg")
    return env


def run_shell_blocks(tmp: Path, include_slow: bool) -> str:
    """Run the bash blocks in order; check each against its shown output; all stdout joined."""
    assert (BIN / "scaling-lab").exists(), f"no scaling-lab next to {sys.executable}"
    env = environment(write_blocker(tmp))
    work = tmp / "work"
    work.mkdir()
    outputs = []
    for b in parse_blocks(TUTORIAL.read_text()):
        if b.lang != "bash" or (b.slow and not include_slow):
            continue
        proc = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", b.code],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        where = f"bash block at line {b.line} of {TUTORIAL.name}"
        assert proc.returncode == 0, f"{where} failed:\n{b.code}\n{proc.stderr[-3000:]}"
        assert "Traceback" not in proc.stderr, f"{where}:\n{proc.stderr[-3000:]}"
        if b.expected is not None:
            assert_shown_lines_in_output(b.expected, proc.stdout, where)
        outputs.append(proc.stdout)
    return "\n".join(outputs)


@pytest.fixture(scope="module")
def python_blocks_run(tmp_path_factory):
    """Start the Python blocks in the background, so they overlap the shell blocks' run."""
    tmp = tmp_path_factory.mktemp("tutorial_python")
    blocks = [b for b in parse_blocks(TUTORIAL.read_text()) if b.lang == "python"]
    (tmp / "blocks.json").write_text(json.dumps([b.code for b in blocks]))
    (tmp / "runner.py").write_text(PY_RUNNER)
    with (tmp / "stderr.txt").open("w") as err:  # a file, not a pipe: nothing can fill up
        proc = subprocess.Popen(
            [sys.executable, "runner.py", "blocks.json", "result.json"],
            cwd=tmp,
            env=environment(write_blocker(tmp)),
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        yield blocks, proc, tmp
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_tutorial_shape_install_and_figures(python_blocks_run):
    """Install without [train], every subcommand shown, figures present and small.

    Requests `python_blocks_run` only to start the Python blocks early (they run meanwhile).
    """
    text = TUTORIAL.read_text()
    blocks = parse_blocks(text)
    langs = [b.lang for b in blocks]
    assert langs.count("bash") >= 8 and langs.count("python") >= 5
    install = [b.code for b in blocks if b.lang == "console"]
    assert install and "pip install scaling-lab" in install[0] and "[train]" not in install[0]
    for command in ("fit", "report", "plan"):
        assert any(f"scaling-lab {command}" in b.code for b in blocks if b.lang == "bash")
    shown = re.findall(r"!\[[^\]]*\]\((tutorial/[^)]+\.png)\)", text)
    assert len(shown) >= 3
    for rel in shown:
        assert (TUTORIAL.parent / rel).is_file(), rel
    assert sum(p.stat().st_size for p in FIGURE_DIR.iterdir()) <= MAX_FIGURE_BYTES
    # The figures are the ones the tutorial's plotting block writes.
    plot_block = next(b for b in blocks if b.lang == "python" and "savefig" in b.code)
    names = re.findall(r"'(\w+\.png)'", plot_block.expected or "")
    assert sorted(Path(r).name for r in shown) == sorted(names)


def test_tutorial_shell_blocks_run_and_print_what_is_shown(tmp_path):
    out = run_shell_blocks(tmp_path, include_slow=False)
    blocks = parse_blocks(TUTORIAL.read_text())
    for b in blocks:
        if b.lang == "text":  # shown apart from its command: must be in some command's output
            assert_shown_lines_in_output(b.code, out, f"text block at line {b.line}")


@pytest.mark.slow
def test_tutorial_all_shell_blocks_including_slow_ones(tmp_path):
    run_shell_blocks(tmp_path, include_slow=True)


def test_tutorial_python_blocks_run_without_jax(python_blocks_run):
    blocks, proc, tmp = python_blocks_run
    proc.wait(timeout=300)
    assert proc.returncode == 0, (tmp / "stderr.txt").read_text()[-4000:]
    result = json.loads((tmp / "result.json").read_text())
    assert result["leaked"] == []
    for b, actual in zip(blocks, result["outputs"], strict=True):
        if b.expected is not None:
            assert_shown_lines_in_output(b.expected, actual, f"python block at line {b.line}")
    assert (tmp / "figures" / "isoflop.png").stat().st_size > 10_000


def significant_digits(cell: str) -> int:
    mantissa = re.sub(r"[eE].*$", "", cell.strip().lstrip("-"))
    digits = mantissa.replace(".", "").lstrip("0")
    return len(digits) if "." in mantissa else len(digits.rstrip("0")) or 1


def assert_shown_value(cell: str, value: float, what: str) -> None:
    """`cell` is `value` rounded to the significant digits the cell shows."""
    sig = significant_digits(cell)
    assert float(f"{value:.{sig}g}") == pytest.approx(float(cell), rel=1e-12), (
        f"{what}: the tutorial shows {cell}, the code gives {value:.6g}"
    )


def test_tutorial_comparison_table_matches_the_code():
    from analysis.approach3 import compute_optimal, fit_approach3, param_array
    from analysis.examples import load_example, read_data_file
    from analysis.loading import from_frame
    from analysis.reference import get_reference, parametric_array

    raw = read_data_file("chinchilla_epoch2024.csv")
    mapping = {"N": "Model Size", "C": "Training FLOP", "loss": "loss"}
    fits = {
        "Hoffmann": parametric_array(get_reference("hoffmann")),
        "Besiroglu": parametric_array(get_reference("besiroglu")),
    }
    for key, pts in (
        ("--example chinchilla", load_example("chinchilla").points),
        ("raw CSV", from_frame(raw, mapping=mapping).points),
    ):
        fits[key] = param_array(fit_approach3(pts["N"], pts["D"], pts["loss"], n_boot=0).params)
    rows = {}
    for line in TUTORIAL.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 8:
            rows[cells[0]] = cells[1:]
    checked = 0
    for label, cells in rows.items():
        key = next((k for k in fits if k in label), None)
        if key is None:
            continue
        p = fits[key]
        n, d = compute_optimal(p, np.array(5.88e23))
        E, A, B, alpha, beta = p
        values = [E, A, B, alpha, beta, beta / (alpha + beta), float(d / n)]
        for cell, value in zip(cells, values, strict=True):
            assert_shown_value(cell, value, f"{label!r}")
        checked += 1
    assert checked == 4, f"expected 4 rows in the comparison table, found {list(rows)}"


def test_tutorial_quoted_numbers_are_shown_output_or_published_values():
    from analysis.reference import get_reference

    text = TUTORIAL.read_text()
    shown = re.findall(r"```text\n(.*?)```", text, flags=re.S)
    tokens = {t.strip("[],;()") for block in shown for t in block.split()}
    bold = re.findall(r"\*\*(\w+) = ([-+\d.e]+)\*\*", text)
    assert len(bold) >= 5
    for name, value in bold:
        assert value in tokens, f"**{name} = {value}** is in no output block"
    bes = get_reference("besiroglu")["ci95"]
    for key in ("E", "alpha", "beta"):
        lo, hi = bes[key]
        assert f"[{lo}, {hi}]" in text, (
            f"Besiroglu et al.'s {key} interval is not quoted as published"
        )
    assert f"{get_reference('kaplan')['alpha_C_min']:.3f} for their compute frontier" in text
