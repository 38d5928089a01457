"""Loading: aliases, explicit mappings, conventions, runner directories, bad input."""

from __future__ import annotations

import gzip
import json
from importlib import resources

import numpy as np
import pandas as pd
import pytest

from analysis.conventions import Conventions
from analysis.errors import AnalysisError, ColumnError
from analysis.loading import from_frame
from analysis.reference import get_reference, reference_fits
from analysis.sources import load


def test_aliases_need_no_flags_and_derive_d_from_c():
    df = pd.DataFrame({"Params": [1e8, 2e8], "FLOPs": [6e18, 1.2e19], "Eval_Loss": [3.0, 2.9]})
    ds = from_frame(df)
    np.testing.assert_allclose(ds.points["D"], [1e10, 1e10])
    assert any("D derived" in w for w in ds.warnings)


def test_explicit_mapping_and_c_from_d():
    df = pd.DataFrame({"Model Size": [1e8, 2e8], "toks": [1e9, 3e9], "xent": [3.1, 2.8]})
    ds = from_frame(df, mapping={"N": "Model Size", "D": "toks", "loss": "xent"})
    np.testing.assert_allclose(ds.points["C"], [6e17, 3.6e18])


def test_missing_column_names_the_fix():
    df = pd.DataFrame({"size": [1e8], "loss": [3.0], "D": [1e9]})
    with pytest.raises(ColumnError, match="--n"):
        from_frame(df)
    with pytest.raises(ColumnError, match="not in the table"):
        from_frame(df, mapping={"N": "nope"})
    with pytest.raises(AnalysisError, match="unknown parameter convention"):
        Conventions("embedding")


def _runner_dir(tmp_path):
    rows = []
    for i, (n, d, status, tuning) in enumerate(
        [
            (1e7, 1e9, "done", False),
            (2e7, 5e8, "done", False),
            (4e7, 2.5e8, "diverged", False),
            (1e7, 1e9, "done", True),
        ]
    ):
        rows.append(
            {
                "run_id": f"r{i}",
                "budget": 6e16,
                "N": n,
                "N_nonemb": n / 2,
                "D": d,
                "C_6N": 6 * n * d,
                "C_6N_nonemb": 3 * n * d,
                "C_detailed": 7 * n * d,
                "loss": 4.0 - i * 0.1,
                "status": status,
                "seed": 0,
                "tuning": tuning,
                "git_commit": "abc",
                "extra": "ignored",
            }
        )
    pd.DataFrame(rows).to_csv(tmp_path / "results.csv", index=False)
    curves = pd.DataFrame(
        [
            {
                "run_id": "r0",
                "N": 1e7,
                "N_nonemb": 5e6,
                "D": f * 1e9,
                "C_6N": 6e16 * f,
                "C_6N_nonemb": 3e16 * f,
                "C_detailed": 7e16 * f,
                "loss": 5 - f,
                "fraction": f,
            }
            for f in (0.5, 1.0)
        ]
    )
    curves.to_csv(tmp_path / "curves.csv", index=False)
    return tmp_path


def test_runner_directory_filters_and_conventions(tmp_path):
    d = _runner_dir(tmp_path)
    ds = load(d)
    assert list(ds.points["run_id"]) == ["r0", "r1"]  # diverged and tuning runs left out
    assert ds.provenance["git_commit"] == ["abc"]
    assert len(ds.curves) == 2
    assert len(load(d, include_tuning=True).points) == 3
    non = load(d, Conventions("nonemb", "6ND"))
    np.testing.assert_allclose(non.points["N"], [5e6, 1e7])
    np.testing.assert_allclose(non.points["C"], [3e16, 3e16])
    det = load(d, Conventions("total", "detailed"))
    np.testing.assert_allclose(det.points["C"], [7e16, 7e16])
    np.testing.assert_allclose(det.curves["C"], [3.5e16, 7e16])


def test_c_and_n_counted_independently(tmp_path):
    """--flops 6N and 6N_nonemb fix the parameter count inside C whatever --params says."""
    d = _runner_dir(tmp_path)
    for params, flops, n, c in (
        ("nonemb", "6N", [5e6, 1e7], [6e16, 6e16]),  # C = 6 N_total D, N non-embedding
        ("total", "6N_nonemb", [1e7, 2e7], [3e16, 3e16]),  # C = 6 N_nonemb D, N total
        ("nonemb", "6N_nonemb", [5e6, 1e7], [3e16, 3e16]),  # = 6ND with non-embedding N
    ):
        ds = load(d, Conventions(params, flops))
        np.testing.assert_allclose(ds.points["N"], n)
        np.testing.assert_allclose(ds.points["C"], c)
        np.testing.assert_allclose(ds.curves["C"], [c[0] / 2, c[0]])
        assert not [w for w in ds.warnings if "differs from 6ND" in w]
    assert Conventions("nonemb", "6N").describe() == "N = non-embedding parameters; C = 6 N_total D"
    assert Conventions("total", "6N").is_6nd and not Conventions("nonemb", "6N").is_6nd
    frame = pd.DataFrame({"N": [1e7, 2e7], "D": [1e9, 5e8], "loss": [3.0, 2.9]})
    with pytest.raises(ColumnError, match=r"needs its FLOP column \(C_6N_nonemb\)"):
        from_frame(frame, Conventions("total", "6N_nonemb"))
    assert len(from_frame(frame, Conventions("total", "6N")).points) == 2  # C = 6ND derived


def test_results_csv_beside_gzipped_curves_reads_the_folder(tmp_path):
    """A study data folder: results.csv + curves.csv.gz (+ tables.json); the file path reads
    the folder, curves included, and a gzipped table is checked against the manifest."""
    d = _runner_dir(tmp_path)
    raw = (d / "curves.csv").read_bytes()
    (d / "curves.csv.gz").write_bytes(gzip.compress(raw))
    (d / "curves.csv").unlink()
    ds = load(d / "results.csv")
    assert ds.source == str(d / "results.csv") and len(ds.curves) == 2
    bad = {"schema": 1, "files": {"curves.csv.gz": {"rows": 2, "sha256": "0" * 64}}}
    (d / "tables.json").write_text(json.dumps(bad))
    with pytest.raises(AnalysisError, match=r"curves\.csv\.gz does not match tables\.json"):
        load(d / "results.csv")


def test_not_a_sweep_directory(tmp_path):
    with pytest.raises(AnalysisError, match=r"results\.csv"):
        load(tmp_path)
    with pytest.raises(AnalysisError, match="does not exist"):
        load(tmp_path / "missing.csv")


def test_shipped_data_identical_to_published_and_cited():
    data = resources.files("analysis").joinpath("data")
    chin = pd.read_csv(data.joinpath("chinchilla_epoch2024.csv").open())
    assert len(chin) == 245 and {"Model Size", "Training FLOP", "loss"} <= set(chin.columns)
    raw = gzip.decompress(data.joinpath("misfitting2025_checkpoints.csv.gz").read_bytes())
    assert raw.count(b"\n") == 4853
    readme = data.joinpath("README.md").read_text()
    for needle in (
        "Besiroglu",
        "epoch-research/analyzing-chinchilla",
        "hadasah/scaling_laws",
        "Zettlemoyer",
    ):
        assert needle in readme


def test_reference_fits_are_the_published_numbers():
    fits = reference_fits()
    assert get_reference("hoffmann")["alpha"] == 0.34 and get_reference("hoffmann")["B"] == 410.7
    assert get_reference("besiroglu")["beta"] == 0.3658
    assert (
        fits["hoffmann2022_approach2"]["a"] == 0.49 and fits["hoffmann2022_approach1"]["a"] == 0.50
    )
    assert fits["kaplan2020"]["N_c"] == 8.8e13 and fits["kaplan2020"]["alpha_D"] == 0.095
    assert all("citation" in f for f in fits.values())


def test_given_c_kept_when_consistent_replaced_with_warning_when_not():
    N, D = np.array([1e8, 2e8, 4e8]), np.array([1e10, 5e9, 2.5e9])
    near = 6 * N * D * np.array([1.004, 0.997, 1.0])  # rounding: kept as given
    ds = from_frame(pd.DataFrame({"N": N, "D": D, "FLOPs": near, "loss": [3.0, 2.9, 2.95]}))
    np.testing.assert_array_equal(ds.points["C"], near)
    assert not any("6ND" in w for w in ds.warnings)
    off = near * np.array([1.0, 1.3, 1.0])  # row 2 is not 6ND: the convention wins, loudly
    ds = from_frame(pd.DataFrame({"N": N, "D": D, "FLOPs": off, "loss": [3.0, 2.9, 2.95]}))
    np.testing.assert_allclose(ds.points["C"], [near[0], 6 * N[1] * D[1], near[2]])
    (w,) = [w for w in ds.warnings if "differs from 6ND" in w]
    assert "'FLOPs'" in w and "1 of 3 rows" in w and "used C = 6ND" in w


def test_drop_highest_leaves_out_runs_and_records_them():
    from analysis.loading import drop_highest

    df = pd.DataFrame({"N": [1e8, 2e8, 3e8, 4e8], "D": [1e9] * 4, "loss": [3.0, 9.0, 2.0, 8.0]})
    ds = drop_highest(from_frame(df), 2)
    assert sorted(ds.points["loss"]) == [2.0, 3.0]
    assert "--drop-highest 2" in ds.notes[-1] and "row1" in ds.notes[-1]
    with pytest.raises(AnalysisError, match="--drop-highest"):
        drop_highest(from_frame(df), 4)


def test_samples_json_read_or_warned_about(tmp_path):
    d = _runner_dir(tmp_path)
    item = {"budget": 6e16, "run_id": "r0", "N": 1e7, "D": 1e9, "loss": 4.0, "role": "optimal"}
    (d / "samples.json").write_text(json.dumps([{**item, "prompt": "a", "completion": "b"}]))
    assert load(d).samples[0]["completion"] == "b"
    (d / "samples.json").write_text(json.dumps([{**item, "role": "best"}]))
    ds = load(d)
    assert ds.samples is None and any("samples.json ignored" in w for w in ds.warnings)
