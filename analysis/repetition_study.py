"""The repetition study of docs/study/repetition: fit L(N, D, U) to a sweep on a capped pool.

    python -m analysis.repetition_study runs/repetition --out docs/study/repetition

reads the sweep's results.csv (U from its sweep.toml's [data] unique_tokens unless
--unique-tokens says), fits R_D* twice (R_N* free, and R_N* fixed at Muennighoff et al.'s
5.31), writes data/results.csv (one row per run: N, D, epochs, loss, the fit's prediction
and the fresh-data loss the fitted surface gives for the same N and D) and prints the
fitted values with their bootstrap intervals as JSON.
"""

from __future__ import annotations

import argparse
import json
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import repetition, surface
from analysis.errors import AnalysisError
from analysis.repetition_fit import RepetitionFit, fit_repetition


def pool_size(sweep_dir: Path) -> float:
    """[data] unique_tokens of the sweep's recorded sweep.toml."""
    try:
        table = tomllib.loads((sweep_dir / "sweep.toml").read_text())
        return float(table["data"]["unique_tokens"])
    except (OSError, KeyError, tomllib.TOMLDecodeError) as e:
        raise AnalysisError(
            f"{sweep_dir} records no [data] unique_tokens ({e}); pass --unique-tokens U"
        ) from e


def summary(fit: RepetitionFit) -> dict[str, object]:
    return {
        "params": fit.params,
        "ci95": fit.ci,
        "fixed": fit.fixed,
        "diagnostics": fit.diagnostics,
    }


def table(runs: pd.DataFrame, U: float, fit: RepetitionFit) -> pd.DataFrame:
    p7 = fit.array()
    out = runs[["run_id", "N", "D", "epochs", "loss"]].copy()
    out["predicted"] = fit.predict(out["N"], out["D"], U)
    out["fresh_data_loss"] = surface.loss(p7[:5], out["N"], out["D"])
    out["effective_D"] = repetition.effective(p7, out["N"], out["D"], U)[1]
    return out.sort_values(["N", "D"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m analysis.repetition_study")
    ap.add_argument("sweep_dir", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--unique-tokens", type=float)
    ap.add_argument("--bootstrap", type=int, default=500)
    args = ap.parse_args(argv)
    runs = pd.read_csv(args.sweep_dir / "results.csv")
    runs = runs[runs["status"] == "done"] if "status" in runs else runs
    U = args.unique_tokens or pool_size(args.sweep_dir)
    fits = {
        "R_N_free": fit_repetition(runs.N, runs.D, U, runs.loss, n_boot=args.bootstrap),
        "R_N_fixed": fit_repetition(
            runs.N,
            runs.D,
            U,
            runs.loss,
            n_boot=args.bootstrap,
            fixed={"R_N_star": float(repetition.published()[1][6])},
        ),
    }
    (args.out / "data").mkdir(parents=True, exist_ok=True)
    rows = table(runs, U, fits["R_N_fixed"])
    rows.to_csv(args.out / "data" / "results.csv", index=False, float_format="%.6g")
    doc = {"unique_tokens": U, "runs": len(runs), **{k: summary(f) for k, f in fits.items()}}
    print(json.dumps(doc, indent=1, default=lambda x: float(x) if np.isscalar(x) else str(x)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
