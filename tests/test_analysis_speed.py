"""The speed-ups change no answer: blocked, threaded Newton equals one batch bit for bit, and
the vectorised count of distinct sizes in Approach 2 equals the plain one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from analysis import huber_newton
from analysis.approach2 import parabola_minima
from analysis.bootstrap import resample_weights
from analysis.examples import load_example

ROOT = Path(__file__).resolve().parents[1]


def test_blocked_newton_equals_one_batch(monkeypatch):
    pts = load_example("chinchilla").points.iloc[::3]
    lN, lD, lL = (np.log(pts[c].to_numpy()) for c in ("N", "D", "loss"))
    theta = np.array([np.log(1.8), np.log(480.0), np.log(2100.0), 0.35, 0.37])
    w = resample_weights(len(pts), 130, seed=4)
    theta0 = np.tile(theta, (130, 1))
    monkeypatch.setattr(huber_newton, "BLOCK_ROWS", 1000)
    whole = huber_newton.newton_fit(theta0, lN, lD, lL, w)
    monkeypatch.setattr(huber_newton, "BLOCK_ROWS", 25)  # 6 blocks on threads
    blocked = huber_newton.newton_fit(theta0, lN, lD, lL, w)
    np.testing.assert_array_equal(blocked.theta_Rx5, whole.theta_Rx5)
    np.testing.assert_array_equal(blocked.objective_R, whole.objective_R)
    np.testing.assert_array_equal(blocked.converged_R, whole.converged_R)
    assert blocked.converged_R.all()


def test_parabola_needs_three_distinct_weighted_sizes():
    x = np.log(np.array([1e8, 1e8, 2e8, 4e8, 8e8]))
    y = (x - np.log(3e8)) ** 2
    w = np.array(
        [
            [1, 1, 1, 1, 1],  # 4 distinct sizes: a minimum
            [1, 1, 1, 0, 0],  # 2 distinct (1e8 twice, 2e8): none
            [0, 1, 0, 1, 1],  # 3 distinct: a minimum
        ],
        dtype=float,
    )
    xm, _, _ = parabola_minima(x, y, w)
    assert np.isfinite(xm[[0, 2]]).all() and np.isnan(xm[1])
    assert np.exp(xm[0]) == pytest.approx(3e8, rel=1e-9)


@pytest.mark.slow
def test_bench_fit_all_writes_its_numbers(tmp_path):
    out = tmp_path / "fit_all.json"
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "fit_all.py"), "--repeats", "1", "--out", str(out)],
        check=True,
        cwd=ROOT,
        capture_output=True,
    )
    doc = json.loads(out.read_text())
    assert doc["command_best_wall_s"] > 0 and doc["in_process"]["approach3"]["best_cpu_s"] > 0
    assert doc["bootstrap"] == {"approach1_2": 1000, "approach3": 4000, "frontier": 200}
