"""Loading: aliases, explicit mappings, conventions, runner directories, bad input."""

from __future__ import annotations

import gzip
from importlib import resources

import numpy as np
import pandas as pd
import pytest

from analysis.conventions import Conventions
from analysis.errors import AnalysisError, ColumnError
from analysis.loading import from_frame, load
from analysis.reference import get_reference, reference_fits


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
