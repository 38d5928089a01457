"""The report's hyperparameter section from a synthetic results table (no JAX)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from analysis.lr_report import lr_tables, lr_tuning_figure, save_lr_figures


def _results(tmp_path):
    rows = []
    for n, opt in [(1e4, 4e-3), (4e4, 2e-3)]:
        for lr in 1e-3 * 2.0 ** np.arange(-2, 3):
            loss = 2.0 + 0.05 * np.log(lr / opt) ** 2
            rows.append(
                dict(
                    N=n,
                    peak_lr=lr,
                    loss=loss,
                    tuning=True,
                    status="done",
                    lr_policy="tuning",
                    lr_law="",
                    C_6N=1e9,
                )
            )
    law = {"lr_ref": 2.8e-3, "n_ref": 2e4, "exponent": -0.5}
    for n in (1e4, 4e4):
        rows.append(
            dict(
                N=n,
                peak_lr=2.8e-3,
                loss=1.9,
                tuning=False,
                status="done",
                lr_policy="tuned",
                lr_law=json.dumps(law),
                C_6N=1e10,
            )
        )
    pd.DataFrame(rows).to_csv(tmp_path / "results.csv", index=False)
    return tmp_path


def test_report_names_policy_picks_and_cost(tmp_path) -> None:
    ((title, _, rows),) = lr_tables(str(_results(tmp_path)))
    text = dict((r[0], r[1]) for r in rows)
    assert title == "Hyperparameters"
    assert "tuned per size" in text["policy"] and "(N / 2e+04)^-0.500" in text["policy"]
    assert text["N = 10,000"].startswith("LR_opt = 0.004 ")
    assert "10 runs" in text["tuning cost"] and "50.0% of the study's" in text["tuning cost"]


def test_figure_and_files(tmp_path) -> None:
    root = _results(tmp_path)
    fig = lr_tuning_figure(pd.read_csv(root / "results.csv"))
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 2  # one parabola per size
    paths = save_lr_figures(str(root), tmp_path / "figures")
    assert all(p.exists() for p in paths["lr_tuning"])


def test_no_tuning_rows_means_fixed_sentence_and_no_figure(tmp_path) -> None:
    pd.DataFrame(
        [
            dict(
                N=1e4,
                peak_lr=3e-3,
                loss=2.0,
                tuning=False,
                status="done",
                lr_policy="fixed",
                C_6N=1e9,
            )
        ]
    ).to_csv(tmp_path / "results.csv")
    ((_, _, rows),) = lr_tables(str(tmp_path))
    assert "fixed peak learning rate" in rows[0][1] and len(rows) == 1
    assert save_lr_figures(str(tmp_path), tmp_path / "figures") == {}
