"""Input handled honestly: delimiters, empty and torn files, dropped rows by reason, which
column was taken, scaled units, C-only data, and approaches that cannot be fitted."""

from __future__ import annotations

import hashlib
import json
import warnings

import numpy as np
import pandas as pd
import pytest

from analysis.approach2 import budget_groups, isoflop_minima
from analysis.approach3 import compute_optimal, param_array
from analysis.errors import AnalysisError
from analysis.examples import chinchilla_frame
from analysis.loading import from_frame
from analysis.pipeline import run_fits
from analysis.sources import load
from analysis.synthetic import CHINCHILLA_PUBLISHED, isoflop_grid
from experiments.main import main


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    """The Chinchilla runs with plain column names: params, flops, loss."""
    df = chinchilla_frame().rename(columns={"Model Size": "params", "Training FLOP": "flops"})
    return df[["params", "flops", "loss"]]


@pytest.mark.parametrize("sep", ["\t", ";", "|", ","])
def test_delimiter_is_sniffed(frame, tmp_path, sep):
    path = tmp_path / "runs.txt"
    frame.to_csv(path, sep=sep, index=False)
    pts = load(path).points
    assert len(pts) == len(frame)
    np.testing.assert_allclose(pts["N"], frame["params"])
    np.testing.assert_allclose(pts["D"], frame["flops"] / (6 * frame["params"]), rtol=1e-12)


def test_separators_inside_quoted_cells_do_not_fool_the_sniffer(frame, tmp_path):
    path = tmp_path / "runs.csv"
    note = '{"policy":"tuned;per size","law":"a|b|c"}'
    frame.assign(note=note).to_csv(path, index=False)
    ds = load(path)
    assert len(ds.points) == len(frame) and ds.raw["note"].iloc[0] == note


def test_empty_file_is_one_clear_error(tmp_path, capsys):
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "header.csv").write_text("N,D,loss\n")
    for name, says in (("empty.csv", "is empty (0 bytes)"), ("header.csv", "no data rows")):
        for command in ("fit", "report"):
            extra = ["--out", str(tmp_path / "rep")] if command == "report" else []
            assert main([command, str(tmp_path / name), *extra]) == 2
            err = capsys.readouterr().err
            assert says in err and "Traceback" not in err and len(err.splitlines()) == 1


def test_dropped_rows_counted_by_reason(frame, tmp_path):
    df = frame.copy()
    df.loc[[3, 4], "loss"] = np.nan  # written as empty cells
    df.loc[5, "loss"] = -1.0
    df.loc[7, "params"] = np.nan
    df.loc[8, "loss"] = 0.0
    df.loc[9, "flops"] = np.inf
    path = tmp_path / "runs.csv"
    df.to_csv(path, index=False)
    assert ",," in path.read_text() or path.read_text().count(",\n") >= 2  # real empty cells
    ds = load(path)
    assert len(ds.points) == len(df) - 6
    (w,) = [w for w in ds.warnings if "dropped" in w]
    assert w.startswith(f"6 of {len(df)} rows dropped:")
    for part in (
        "1 with missing N",
        "2 with missing loss",
        "2 with loss <= 0",
        "1 with infinite C",
    ):
        assert part in w


def load_frame(df: pd.DataFrame, **kw):
    return from_frame(df, **kw)


def test_which_column_was_taken_is_said(frame):
    df = frame.rename(columns={"loss": "val_loss"}).assign(train_loss=frame["loss"] - 0.05)
    ds = load_frame(df)
    assert ds.columns == {
        "loss": "val_loss",
        "N": "params",
        "C": "flops",
        "D": "derived: C / (6 N), total parameters",
    }
    assert any("took column 'val_loss'" in w and "'train_loss'" in w for w in ds.warnings)
    # An explicit choice is no ambiguity, and a copy of the same numbers is none either.
    chosen = load_frame(df, mapping={"loss": "train_loss"})
    assert chosen.columns["loss"] == "train_loss" and not any("took" in w for w in chosen.warnings)
    np.testing.assert_allclose(chosen.points["loss"], frame["loss"] - 0.05)
    same = load_frame(frame.assign(compute=frame["flops"]))
    assert not any("took" in w for w in same.warnings)


def test_scaled_units_detected_with_the_fix(frame, capsys, tmp_path):
    millions = frame.assign(params=frame["params"] / 1e6)
    with pytest.raises(AnalysisError, match=r"--n-scale 1e6"):
        load_frame(millions)
    D = frame["flops"] / (6 * frame["params"])
    both = frame.assign(params=frame["params"] / 1e6, tokens=D / 1e9)
    with pytest.raises(AnalysisError, match=r"--n-scale 1e6 --d-scale 1e9"):
        load_frame(both)
    only_d = frame.drop(columns="flops").assign(tokens=D / 1e9)
    with pytest.raises(AnalysisError, match=r"--d-scale 1e9"):
        load_frame(only_d)
    # The suggested flags fix it: the same runs as the unscaled table.
    path = tmp_path / "both.csv"
    both.to_csv(path, index=False)
    fixed = load(path, scales={"N": 1e6, "D": 1e9}).points
    np.testing.assert_allclose(fixed["N"], frame["params"], rtol=1e-12)
    np.testing.assert_allclose(fixed["D"], D, rtol=1e-9)
    args = ["fit", str(path), "--approach", "3", "--bootstrap-a3", "0", "--json"]
    assert main([*args, "--n-scale", "1e6", "--d-scale", "1e9"]) == 0
    assert json.loads(capsys.readouterr().out)["approach3"]["alpha"] == pytest.approx(
        0.3478, abs=2e-3
    )


def test_detailed_flops_hint_names_the_column(frame):
    D = frame["flops"] / (6 * frame["params"])
    ds = load_frame(frame.assign(tokens=D, flops=frame["flops"] * 1.3))
    (w,) = [w for w in ds.warnings if "differs from 6ND" in w]
    assert "--flops detailed --c 'flops'" in w


def test_c_and_loss_only_fits_the_frontier(frame, tmp_path, capsys):
    path = tmp_path / "c_only.csv"
    frame[["flops", "loss"]].to_csv(path, index=False)
    assert main(["fit", str(path), "--bootstrap", "20", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert "approach3" not in doc and doc["frontier"]["saturating"]["E"] > 0
    assert any("only the loss-vs-compute frontier" in w for w in doc["warnings"])
    # The frontier is the lowest loss at each budget (no N: no seed averaging by size).
    ds = load(path)
    assert not ds.has_sizes
    an = run_fits(ds, n_boot=0)
    best = ds.points.groupby(budget_groups(ds.points))["loss"].min()
    np.testing.assert_allclose(an.frontier.points["loss"], best.to_numpy())
    assert main(["fit", str(path), "--approach", "3"]) == 2
    assert "no N column" in capsys.readouterr().err
    assert main(["report", str(path), "--out", str(tmp_path / "rep"), "--bootstrap", "0"]) == 0
    figures = sorted(p.name for p in (tmp_path / "rep" / "figures").glob("*.png"))
    assert figures == ["loss_vs_compute.png"]


def test_requested_approach_that_cannot_fit_exits_2(frame, tmp_path, capsys):
    path = tmp_path / "runs.csv"
    frame.to_csv(path, index=False)
    assert main(["fit", str(path), "--approach", "1"]) == 2
    err = capsys.readouterr().err
    assert "Approach 1 cannot be fitted" in err and "training curves" in err
    # Every IsoFLOP minimum at an edge: only the sizes above each budget's true optimum
    # (whose bootstrap vertices run off to exp overflow).
    grid = isoflop_grid(CHINCHILLA_PUBLISHED, sizes_per_budget=13, noise=0.002, seed=3)
    optimum = compute_optimal(param_array(CHINCHILLA_PUBLISHED), grid["budget"].to_numpy())[0]
    grid.loc[grid["N"] > optimum * 1.3].to_csv(path, index=False)
    assert isoflop_minima(load(path).points).table["edge"].all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning may leak (overflow in exp)
        assert main(["fit", str(path), "--approach", "2", "--bootstrap", "200"]) == 2
    err = capsys.readouterr().err
    assert "Approach 2 cannot be fitted" in err and "interior IsoFLOP minimum" in err
    assert main(["fit", str(path), "--approach", "3", "--bootstrap-a3", "0", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert any("every IsoFLOP minimum" in w for w in doc["warnings"])
    assert doc["schema_version"] >= 2


def test_fit_help_documents_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    out = capsys.readouterr().out
    assert "exit codes:" in out and "cannot be fitted" in out


def _manifest(directory, names):
    files = {}
    for name in names:
        raw = (directory / name).read_bytes()
        files[name] = {
            "rows": len(pd.read_csv(directory / name)),
            "sha256": hashlib.sha256(raw).hexdigest(),
        }
    (directory / "tables.json").write_text(json.dumps({"schema": 1, "files": files}))


def test_torn_results_csv_refused_when_a_manifest_says_so(frame, tmp_path, capsys):
    D = frame["flops"] / (6 * frame["params"])
    runs = frame.assign(run_id=[f"r{i}" for i in range(len(frame))], N=frame["params"], D=D)
    runs = runs.assign(status="done")[["run_id", "N", "D", "loss", "status"]]
    runs.to_csv(tmp_path / "results.csv", index=False)
    curves = pd.concat([runs.assign(D=runs["D"] * f) for f in (0.5, 1.0)])
    curves.to_csv(tmp_path / "curves.csv", index=False)
    _manifest(tmp_path, ["results.csv", "curves.csv"])
    assert len(load(tmp_path).points) == len(runs)  # intact: loads as before
    text = (tmp_path / "results.csv").read_bytes()
    (tmp_path / "results.csv").write_bytes(text[: len(text) - 25])  # cut mid-row
    for command in ("fit", "report"):
        extra = ["--out", str(tmp_path / "rep")] if command == "report" else []
        assert main([command, str(tmp_path), *extra]) == 2
        err = capsys.readouterr().err
        assert "results.csv" in err and f"records {len(runs)}" in err
        assert f"has {len(runs)} data rows" in err  # the cut row is still a (short) record
        assert "checksum differs" in err and f"scaling-lab sweep table {tmp_path}" in err
    (tmp_path / "results.csv").write_bytes(text)
    (tmp_path / "curves.csv").write_bytes(b"")
    with pytest.raises(AnalysisError, match=r"curves.csv .* 0 data rows .* records 480"):
        load(tmp_path)
    (tmp_path / "tables.json").unlink()  # an old sweep: no manifest, no check
    assert load(tmp_path).curves is None


def test_text_output_says_which_column_and_scale_must_be_positive(frame, tmp_path, capsys):
    path = tmp_path / "runs.csv"
    frame.rename(columns={"loss": "val_loss"}).assign(train_loss=frame["loss"]).to_csv(
        path, index=False
    )
    args = ["fit", str(path), "--approach", "3", "--bootstrap", "0", "--bootstrap-a3", "0"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "loss read from   val_loss" in out and "N read from      params" in out
    assert "D read from      derived: C / (6 N)" in out
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--n-scale=0"])
    assert exit_info.value.code == 2 and "not a positive number" in capsys.readouterr().err
