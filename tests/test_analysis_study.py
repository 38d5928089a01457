"""The study sections of a report: both parameter conventions, E against a known entropy,
and the sweep's cost, each checked against values computed by hand from the inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.loading import from_frame
from analysis.pipeline import run_fits
from analysis.study import conventions_table, cost_tables, embedding_share, entropy_table
from analysis.synthetic import isoflop_grid

TRUTH = {"E": 2.0, "A": 60.0, "B": 400.0, "alpha": 0.4, "beta": 0.35}
SHARE = 0.25  # every model: a quarter of its parameters in embeddings


def sweep_table(true_entropy: float | None = None, noise: float = 0.002) -> pd.DataFrame:
    """A results table like a sweep's: losses from TRUTH at an IsoFLOP grid, N_nonemb,
    costs and (optionally) the corpus's entropy."""
    df = isoflop_grid(
        TRUTH, budgets=(1e12, 4e12, 1.6e13, 6.4e13), sizes_per_budget=7, noise=noise, seed=3
    )
    df["N_nonemb"] = df["N"] * (1 - SHARE)
    df["status"] = "done"
    df["tuning"] = False
    if true_entropy is not None:
        df["true_entropy"] = true_entropy
    return df


def analysed(df: pd.DataFrame):
    return run_fits(from_frame(df, source="test"), ("2", "3"), n_boot=100, n_boot_a3=100)


@pytest.fixture(scope="module")
def study():
    """One analysed sweep with a known entropy (TRUTH's E) and run timings."""
    df = sweep_table(true_entropy=TRUTH["E"])
    df["wall_time_s"], df["train_time_s"], df["mfu"] = 60.0, 30.0, 0.2
    return analysed(df)


def test_both_conventions_describe_one_optimum(study):
    an = study
    _title, header, rows = conventions_table(an)
    assert header[2] == "D/N" and header[4] == "D/N_nonemb"
    for row, C in zip(rows, an.at, strict=False):  # one row per budget, then a, b rows
        total = an.approach2.tokens_per_param(C)["value"]
        assert float(row[2].split()[0]) == pytest.approx(
            total, rel=6e-3
        )  # 3 significant digits shown
        # N_nonemb = 0.75 N for every model, so the same optimum has 1/0.75 more tokens per
        # non-embedding parameter, and a quarter of it is embeddings.
        assert float(row[4].split()[0]) == pytest.approx(
            total / (1 - SHARE), rel=6e-3
        )  # 3 significant digits shown
        assert row[5] == "25%"
    a_total, a_nonemb = rows[-2][1], rows[-1][1]
    assert a_total.split()[0] == a_nonemb.split()[0]  # a constant share leaves a unchanged


def test_embedding_share_interpolates_in_log_n():
    runs = pd.DataFrame({"N": [1e4, 1e6], "N_nonemb": [5e3, 9e5]})
    assert embedding_share(runs, 1e4) == pytest.approx(0.5)
    assert embedding_share(runs, 1e5) == pytest.approx(0.3)  # halfway in log N
    assert embedding_share(runs, 1e6) == pytest.approx(0.1)


def test_fitted_e_is_compared_with_the_true_entropy(study):
    an = study
    title, _header, rows = entropy_table(an)
    assert "within 5%" in title
    a3 = next(r for r in rows if r[0].startswith("Approach 3"))
    rel = (an.approach3.params["E"] - TRUTH["E"]) / TRUTH["E"]
    assert a3[3] == f"{100 * rel:+.2f}%" and abs(rel) < 0.05 and a3[4] == "yes"
    lowest = rows[-1]
    assert float(lowest[1]) == pytest.approx(an.dataset.points["loss"].min(), rel=1e-3)

    wrong = analysed(sweep_table(true_entropy=1.5))  # E = 2.0 is 33% above 1.5
    a3 = next(r for r in entropy_table(wrong)[2] if r[0].startswith("Approach 3"))
    assert a3[4] == "no" and a3[3].startswith("+3")


def test_no_entropy_section_without_a_single_known_entropy(study):
    assert entropy_table(analysed(sweep_table())) is None
    study.dataset.raw.loc[::2, "true_entropy"] = 2.1
    try:
        assert entropy_table(study) is None
    finally:
        study.dataset.raw["true_entropy"] = TRUTH["E"]


def test_cost_tables_sum_time_and_weight_mfu_by_training_time():
    df = sweep_table()
    df["wall_time_s"], df["train_time_s"], df["mfu"] = 60.0, 30.0, 0.2
    df.loc[0, ["wall_time_s", "train_time_s", "mfu"]] = [120.0, 90.0, 0.4]
    df["C_detailed"] = 1e12
    tuning = df.iloc[:2].assign(tuning=True, run_id=["t0", "t1"])
    an = analysed(pd.concat([df, tuning], ignore_index=True))
    summary, per_size = cost_tables(an)
    rows = {r[0]: r for r in summary[2]}
    n = len(df)
    wall = 120 + 60 * (n - 1)
    train = 90 + 30 * (n - 1)
    assert rows["main runs"][1] == str(n)
    assert rows["main runs"][3] == f"{wall / 60:.1f}"
    assert rows["main runs"][4] == f"{100 * train / wall:.0f}%"
    mfu = (0.4 * 90 + 0.2 * 30 * (n - 1)) / train
    assert float(rows["main runs"][6]) == pytest.approx(mfu, rel=1e-3)
    assert rows["LR-tuning runs"][1] == "2" and rows["all"][1] == str(n + 2)
    assert float(rows["all"][2]) == pytest.approx(1e12 * (n + 2), rel=1e-3)
    sizes = [float(r[0]) for r in per_size[2]]
    assert sizes == sorted(sizes) and len(sizes) == df["N"].nunique()


def test_mfu_of_every_run_is_put_over_the_best_peak_measured():
    df = sweep_table()
    df["wall_time_s"], df["train_time_s"], df["mfu"], df["peak_flops"] = 60.0, 30.0, 0.2, 1e11
    df.loc[0, ["train_time_s", "mfu", "peak_flops"]] = [90.0, 0.4, 2e11]  # an idle-host reading
    summary, per_size = cost_tables(analysed(df))
    n = len(df)
    expected = (0.4 * 90 + 0.1 * 30 * (n - 1)) / (90 + 30 * (n - 1))  # others: 0.2 * 1e11 / 2e11
    assert float(summary[2][0][6]) == pytest.approx(expected, rel=1e-3)
    gflops = (0.4 * 200 * 90 + 0.2 * 100 * 30 * (n - 1)) / (90 + 30 * (n - 1))
    assert float(summary[2][0][5]) == pytest.approx(gflops, rel=1e-3)  # mfu x own peak
    assert "200 GFLOP/s" in per_size[0]
    df.loc[0, "peak_flops"] = 5e11  # 5x the others: another setup, so each run's own peak
    summary, per_size = cost_tables(analysed(df))
    expected = (0.4 * 90 + 0.2 * 30 * (n - 1)) / (90 + 30 * (n - 1))
    assert float(summary[2][0][6]) == pytest.approx(expected, rel=1e-3)
    assert "each run's own measured peak" in per_size[0]


def test_no_cost_table_without_timings(study):
    raw = study.dataset.raw
    study.dataset.raw = raw.drop(columns=["wall_time_s"])
    try:
        assert cost_tables(study) == []
    finally:
        study.dataset.raw = raw


def test_report_carries_the_study_sections(tmp_path, study):
    from analysis.report import write_report

    paths = write_report(study, tmp_path, markdown_only=True)
    text = paths["markdown"].read_text()
    for title in ("Tokens per parameter in both conventions", "true entropy", "Cost of the study"):
        assert title in text
    assert not (tmp_path / "report.html").exists()
    assert {p.suffix for p in (tmp_path / "figures").iterdir()} == {".png"}
    assert np.isfinite(float(text.split("| a, b (total) | ")[1].split()[0]))
