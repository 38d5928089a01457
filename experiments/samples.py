"""DIR/samples.json: at each budget, one prompt completed by the compute-optimal run and by the
smallest and the largest model, so the frontier can be read as text, not only plotted.

    scaling-lab sweep samples DIR [--prompt TEXT] [--max-new-tokens N] [--seed S] [--greedy]

Each entry is {budget, run_id, N, D, loss, role, prompt, completion} (role "optimal" = the
lowest final loss at that budget, "smallest" / "largest" = the extreme sizes; one run may hold
several roles). The report (`analysis.report.samples_table`) renders the file. Runs without a
checkpoint (keep_final_checkpoint = false) are skipped with a note; LR-tuning runs are not
candidates. Every completion uses the same prompt, seed and sampling settings.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from experiments import sweep_dir
from experiments.results import RESULTS_FILE, read_csv
from lab.run_status import RunStatus
from lab.runtime.atomic_io import as_path, write_json_atomic
from lab.sampling import SamplingConfig

SAMPLES_FILE = "samples.json"
ROLES = ("smallest", "optimal", "largest")
DEFAULT_SAMPLING = SamplingConfig(temperature=0.8, top_p=0.95)


def default_prompt(tokenizer_spec: str) -> str:
    """A prompt every corpus's tokenizer can encode: code for text, nothing for symbols."""
    return "" if tokenizer_spec.startswith("symbols") else "def "


def pick_runs(rows: list[dict[str, str]]) -> list[tuple[float, str, dict[str, str]]]:
    """(budget, role, row) for each budget: smallest N, lowest loss, largest N (done runs)."""
    done = [
        r
        for r in rows
        if r.get("status") == RunStatus.DONE
        and r.get("loss")
        and r.get("tuning", "False") != "True"
    ]
    picks = []
    for budget in sorted({float(r["budget"]) for r in done}):
        here = [r for r in done if float(r["budget"]) == budget]

        def by_loss(r: dict[str, str]) -> float:
            return float(r["loss"])

        def size(r: dict[str, str]) -> tuple[float, float]:
            return (float(r["N"]), float(r["loss"]))

        smallest = min(here, key=size)
        largest = min(here, key=lambda r: (-float(r["N"]), float(r["loss"])))
        for role, row in zip(ROLES, (smallest, min(here, key=by_loss), largest), strict=True):
            picks.append((budget, role, row))
    return picks


def write_samples(
    root: str | os.PathLike,
    *,
    prompt: str | None = None,
    max_new_tokens: int = 64,
    sampling: SamplingConfig = DEFAULT_SAMPLING,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Generate the samples of sweep DIR `root` and write DIR/samples.json; the entries."""
    from lab import run_dir
    from lab.checkpoint import checkpoint_steps
    from lab.completion import SampleError, complete, load_run

    root_path = as_path(root)
    rows = read_csv(root_path / RESULTS_FILE)
    if not rows:
        raise SampleError(
            f"{root} has no {RESULTS_FILE} with finished runs; run the sweep first "
            f"(scaling-lab sweep run FILE --out {root}) or rebuild it (scaling-lab sweep table)"
        )
    entries: list[dict[str, Any]] = []
    texts: dict[str, str] = {}
    skipped: set[str] = set()
    for budget, role, row in pick_runs(rows):
        run_id = row["run_id"]
        run_path = sweep_dir.run_path(root, run_id)
        if run_id in skipped:
            continue
        if run_id not in texts:
            if not checkpoint_steps(run_dir.checkpoint_dir(run_path)):
                log(f"samples: skipped {run_id} ({role} at {budget:.3g}): no checkpoint")
                skipped.add(run_id)
                continue
            run = load_run(str(run_path))
            if prompt is None:
                prompt = default_prompt(run.tokenizer.spec)
            room = run.config.model.ctx - 1 - len(run.tokenizer.encode(prompt))
            if room < 1:
                raise SampleError(
                    f"the prompt is too long for run {run_id} (ctx {run.config.model.ctx}); "
                    "use a shorter --prompt"
                )
            texts[run_id] = complete(
                run,
                prompt,
                max_new_tokens=min(max_new_tokens, room),
                sampling=sampling,
                seed=seed,
            )[0]
            log(f"samples: {role:>8} at {budget:.3g} ({run_id}): {texts[run_id][:60]!r}")
        entries.append(
            {
                "budget": budget,
                "run_id": run_id,
                "N": int(float(row["N"])),
                "D": int(float(row["D"])),
                "loss": float(row["loss"]),
                "role": role,
                "prompt": prompt,
                "completion": texts[run_id],
            }
        )
    write_json_atomic(root_path / SAMPLES_FILE, entries)
    log(f"samples: wrote {len(entries)} samples to {root}/{SAMPLES_FILE}")
    return entries
