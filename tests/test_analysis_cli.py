"""`scaling-lab fit | report | plan` on the reference data and a synthetic sweep directory."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analysis.synthetic import CHINCHILLA_PUBLISHED, isoflop_grid, training_curves


def run(argv: list[str]) -> int:
    """Through the dispatcher, which turns bad input into one line on stderr."""
    from experiments.main import main

    return main(argv)


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("sweep")
    pts = isoflop_grid(CHINCHILLA_PUBLISHED, budgets=(1e17, 1e18, 1e19, 1e20), noise=0.002, seed=1)
    pts = pts.rename(columns={"C": "C_6N"}).assign(
        status="done", tuning=False, git_commit="deadbeef"
    )
    pts.to_csv(d / "results.csv", index=False)
    training_curves(CHINCHILLA_PUBLISHED, pts.assign(C=pts["C_6N"])).rename(
        columns={"C": "C_6N"}
    ).to_csv(d / "curves.csv", index=False)
    budget = pts.loc[pts["budget"] == 1e19]
    samples = [
        {
            "budget": 1e19,
            "run_id": str(budget.iloc[i]["run_id"]),
            "N": float(budget.iloc[i]["N"]),
            "D": float(budget.iloc[i]["D"]),
            "loss": float(budget.iloc[i]["loss"]),
            "role": role,
            "prompt": "Once upon a time",
            "completion": text,
        }
        for i, role, text in (
            (-1, "largest", "there was a <script>alert(1)</script> | pipe"),
            (0, "smallest", "the the the"),
            (4, "optimal", "a princess\nwho coded"),
        )
    ]
    (d / "samples.json").write_text(json.dumps(samples))
    return d


def test_fit_json_on_chinchilla(capsys, tmp_path):
    out = tmp_path / "fit.json"
    rc = run(
        [
            "fit",
            "--example",
            "chinchilla",
            "--approach",
            "3",
            "--json",
            "--bootstrap-a3",
            "300",
            "--at",
            "1e21,5.88e23",
            "-o",
            str(out),
        ]
    )
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    a3 = doc["approach3"]
    for key in ("E", "A", "B", "alpha", "beta", "a", "b"):
        assert isinstance(a3[key], float) and key in a3["ci"]
    assert a3["E"] == pytest.approx(1.817, abs=0.005)
    assert [t["C"] for t in a3["tokens_per_param"]] == [1e21, 5.88e23]
    assert a3["tokens_per_param"][1]["contains_20"] is True
    assert doc["conventions"] == {"params": "total", "flops": "6ND"}
    assert json.loads(out.read_text())["approach3"]["E"] == a3["E"]
    rc = run(["plan", "--budget", "1e22", "--fit", str(out), "--json"])
    plan = json.loads(capsys.readouterr().out)
    assert rc == 0 and plan["ci"]["N_opt"][0] < plan["N_opt"] < plan["ci"]["N_opt"][1]


def test_fit_all_on_sweep_dir_prints_tables(capsys, sweep_dir):
    rc = run(["fit", str(sweep_dir), "--bootstrap", "50", "--bootstrap-a3", "100"])
    text = capsys.readouterr().out
    assert rc == 0
    for needle in (
        "Approach 1",
        "Approach 2",
        "Approach 3",
        "20 inside CI?",
        "N = total parameters",
        "Samples",
        "a princess\\nwho coded",
    ):
        assert needle in text


def test_fit_misfitting_approach1_json(capsys):
    rc = run(
        [
            "fit",
            "--example",
            "misfitting",
            "--approach",
            "1",
            "--params",
            "nonemb",
            "--json",
            "--bootstrap",
            "30",
        ]
    )
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0 and doc["conventions"]["params"] == "nonemb" and "a" in doc["approach1"]


def test_holdout_largest_on_synthetic_truth(capsys, sweep_dir):
    rc = run(
        [
            "fit",
            str(sweep_dir),
            "--approach",
            "3",
            "--json",
            "--bootstrap-a3",
            "0",
            "--holdout-largest",
        ]
    )
    doc = json.loads(capsys.readouterr().out)["holdout_largest"]
    assert rc == 0 and doc["budget"] == 1e20
    a3 = doc["predictions"]["approach3"]
    assert abs(a3["loss_rel_error"]) < 0.01 and a3["N_opt_ratio"] == pytest.approx(1.0, abs=0.1)
    assert doc["predictions"]["approach2"]["N_opt_ratio"] == pytest.approx(1.0, abs=0.1)


def test_report_writes_html_markdown_and_figures(sweep_dir, tmp_path):
    out = tmp_path / "report"
    assert (
        run(
            [
                "report",
                str(sweep_dir),
                "--out",
                str(out),
                "--bootstrap",
                "50",
                "--bootstrap-a3",
                "200",
                "--holdout-largest",
            ]
        )
        == 0
    )
    html = (out / "report.html").read_text()
    md = (out / "report.md").read_text()
    assert html.count("data:image/png;base64,") == 5 and "<img" in html
    for name in (
        "loss_vs_compute",
        "isoflop",
        "optimal_allocation",
        "tokens_per_param",
        "residuals",
    ):
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000
        assert (out / "figures" / f"{name}.svg").read_text().lstrip().startswith("<?xml")
    for needle in (
        "N = total parameters; C = 6 N D",
        "Provenance",
        "deadbeef",
        "Held-out largest budget",
    ):
        assert needle in md
    # Samples: per budget, smallest -> optimal -> largest, text escaped in both formats.
    assert "<h2 id='samples'>Samples</h2>" in html and "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    section = md.split("## Samples")[1].split("## ")[0]
    roles = [line.split(" | ")[1] for line in section.splitlines() if line.startswith("| 1e+19")]
    assert roles == ["smallest", "optimal", "largest"]
    assert (
        "&lt;script&gt;" in section
        and "\\| pipe" in section
        and "a princess<br>who coded" in section
    )


def test_report_on_chinchilla_example(tmp_path):
    out = tmp_path / "chin"
    assert (
        run(
            [
                "report",
                "--example",
                "chinchilla",
                "--out",
                str(out),
                "--bootstrap",
                "30",
                "--bootstrap-a3",
                "100",
            ]
        )
        == 0
    )
    assert "Besiroglu 2024" in (out / "report.md").read_text()
    assert (out / "figures" / "residuals.png").exists()


def test_plan_text_and_published_fits(capsys):
    assert run(["plan", "--pf-days", "100", "--use", "hoffmann"]) == 0
    text = capsys.readouterr().out
    assert "8.64e+21" in text and "no interval" in text
    assert (
        run(
            [
                "plan",
                "--accelerator-hours",
                "5000",
                "--peak",
                "989e12",
                "--mfu",
                "0.4",
                "--use",
                "hoffmann",
                "--inference-tokens",
                "1e12",
            ]
        )
        == 0
    )
    assert "Sardana" in capsys.readouterr().out


def test_bad_input_is_an_error_message_not_a_traceback(capsys, tmp_path):
    assert run(["plan", "--budget", "1e22", "--pf-days", "3"]) == 2
    assert "exactly one" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"size": [1], "loss": [3]}).to_csv(bad, index=False)
    assert run(["fit", str(bad)]) == 2
    assert "--n" in capsys.readouterr().err
    assert run(["fit"]) == 2


def test_dispatcher_runs_analysis_commands(capsys):
    from experiments.main import main

    assert main(["plan", "--budget", "1e21", "--use", "hoffmann", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["C"] == 1e21


def test_holdout_uses_largest_budget_with_three_sizes(capsys):
    from analysis.approach2 import budget_groups
    from analysis.examples import load_example

    rc = run(
        [
            "fit",
            "--example",
            "chinchilla",
            "--approach",
            "3",
            "--bootstrap-a3",
            "0",
            "--holdout-largest",
            "--json",
        ]
    )
    doc = json.loads(capsys.readouterr().out)["holdout_largest"]
    pts = load_example("chinchilla").points
    b = budget_groups(pts)
    ok = [C for C in np.unique(b) if pts.loc[b == C, "N"].nunique() >= 3]
    assert rc == 0 and doc["budget"] == pytest.approx(ok[-1])
    assert doc["held_out_budgets"][0] == doc["budget"] and len(doc["held_out_budgets"]) > 1
    assert doc["held_out_runs"] == int((b >= ok[-1]).sum())


def test_drop_highest_reproduces_the_example_from_the_raw_csv(capsys, tmp_path):
    from analysis.examples import read_data_file

    raw = tmp_path / "chinchilla.csv"
    read_data_file("chinchilla_epoch2024.csv").to_csv(raw, index=False)
    args = ["--approach", "3", "--bootstrap-a3", "0", "--json"]
    assert run(["fit", str(raw), "--drop-highest", "5", *args]) == 0
    dropped = json.loads(capsys.readouterr().out)
    assert run(["fit", "--example", "chinchilla", *args]) == 0
    example = json.loads(capsys.readouterr().out)
    assert dropped["n_runs"] == example["n_runs"] == 240
    for key in ("E", "A", "B", "alpha", "beta"):
        assert dropped["approach3"][key] == pytest.approx(example["approach3"][key], rel=1e-6)
    assert any("--drop-highest 5" in n for n in dropped["notes"])
    assert run(["fit", "--example", "chinchilla", "--drop-highest", "0", *args]) == 0
    assert json.loads(capsys.readouterr().out)["n_runs"] == 245


def test_plan_label_is_readable_and_inference_intervals_printed(capsys, tmp_path):
    fit = tmp_path / "fit.json"
    doc = {
        "source": "demo",
        "conventions": {"params": "nonemb", "flops": "6ND"},
        "approach3": {
            "E": 1.8,
            "A": 480.0,
            "B": 2100.0,
            "alpha": 0.35,
            "beta": 0.37,
            "bootstrap_samples": {
                "rows": (
                    np.array([1.8, 480.0, 2100.0, 0.35, 0.37])
                    * np.exp(0.01 * np.random.default_rng(0).standard_normal((40, 5)))
                ).tolist()
            },
        },
    }
    fit.write_text(json.dumps(doc))
    assert run(["plan", "--budget", "1e22", "--fit", str(fit), "--inference-tokens", "1e12"]) == 0
    text = capsys.readouterr().out
    assert f"lab fit from {fit} (demo; N = non-embedding parameters; C = 6 N D)" in text
    assert "{" not in text
    after = text.split("inference tokens")[1].splitlines()
    for name in ("N ", "D ", "tokens/param"):
        (line,) = [x for x in after if x.startswith(name)]
        assert "95% CI [" in line
    assert any(x.startswith("total FLOPs  95% CI [") for x in after)


def test_bootstrap_help_names_every_fit_it_sets(capsys):
    with pytest.raises(SystemExit):
        run(["fit", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "frontier" in text.split("--bootstrap R ")[1].split("--bootstrap-a3")[0]


def test_tokens_per_param_defaults_to_the_sweeps_own_budgets(capsys, sweep_dir):
    rc = run(["fit", str(sweep_dir), "--approach", "3", "--json", "--bootstrap-a3", "50"])
    document = json.loads(capsys.readouterr().out)
    assert rc == 0
    budgets = [row["C"] for row in document["approach3"]["tokens_per_param"]]
    assert budgets == [1e17, 1e18, 1e19, 1e20]
    rc = run(["fit", "--example", "chinchilla", "--approach", "3", "--json", "--bootstrap-a3", "0"])
    document = json.loads(capsys.readouterr().out)
    assert [row["C"] for row in document["approach3"]["tokens_per_param"]] == [1e21, 5.88e23]
