"""Issue 15's "Also" list: file modes, a closed pipe, --json and --version, sweep help, the
missing [train] extra, provenance's package version, and one owner per run file name.

No training here: a sweep directory is prepared (grid solved, plan written) and tables are
built from it, which is all `sweep status` and the writers need.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from experiments.main import build_parser, main
from experiments.results import rebuild_tables
from experiments.runner import prepare
from lab import run_dir
from lab.data.tokenizers import ByteTokenizer
from lab.metrics import JsonlLog
from lab.run_config import RunConfig, load_run_config
from lab.run_status import RunStatus
from lab.runtime import atomic_io, provenance
from lab.step_meter import StepMeter

REPO = Path(__file__).resolve().parent.parent
MICRO = REPO / "experiments" / "configs" / "micro.toml"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prepared") / "sweep"
    old = os.umask(0o022)
    try:
        prepare(str(MICRO), str(out), check_memory=False)
        rebuild_tables(out)
    finally:
        os.umask(old)
    return out


def test_files_get_the_umasks_usual_mode_not_mkstemps_0600(prepared, tmp_path):
    for name in ("plan.json", "sweep.toml", "results.csv", "curves.csv", "tables.json"):
        assert (prepared / name).stat().st_mode & 0o777 == 0o644, name
    old = os.umask(0o027)
    try:
        atomic_io.write_json_atomic(tmp_path / "result.json", {"loss": 1.0})
    finally:
        os.umask(old)
    assert (tmp_path / "result.json").stat().st_mode & 0o777 == 0o640
    assert os.umask(old) == old  # reading the umask put it back


def test_sweep_status_into_a_closed_pipe_ends_without_a_traceback(prepared):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    for argv in (["sweep", "status", str(prepared)], ["sweep", "status", str(prepared), "--json"]):
        child = subprocess.Popen(
            [sys.executable, "-m", "experiments.main", *argv],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        child.stdout.close()  # like `| head` that has read all it wants: writes get EPIPE
        stderr = child.stderr.read().decode()
        assert child.wait(timeout=120) == 0, stderr
        assert "Traceback" not in stderr and "BrokenPipeError" not in stderr


def test_sweep_status_json_has_a_schema_version_and_the_counts(prepared, capsys):
    assert main(["sweep", "status", str(prepared), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["schema_version"] == 1
    assert record["total"] == record["left"] == 6 and record["done"] == 0
    assert record["damaged"] == [] and record["flops_fraction"] == 0.0


def test_info_json_has_a_schema_version_and_the_text_numbers(capsys):
    assert main(["info", "--params", "3e5", "--budget", "1e13", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["schema_version"] == 1
    n = record["params"]
    assert record["flops_per_token"]["6N"] == 6 * n
    assert record["tokens_for_budget"]["6N"] == pytest.approx(1e13 / (6 * n))
    assert record["memory_bytes"]["total"] > record["memory_bytes"]["weights"] > 0


def _sweep_commands() -> dict:
    top = build_parser()._subparsers._group_actions[0].choices["sweep"]
    return top._subparsers._group_actions[0].choices


def test_every_sweep_subcommand_has_a_description_examples_and_help_for_dir():
    commands = _sweep_commands()
    assert set(commands) == {"plan", "run", "status", "table", "verify", "samples", "export"}
    for name, parser in commands.items():
        text = parser.format_help()
        assert len(parser.description) > 60, name
        assert f"\nexamples:\n  scaling-lab sweep {name} " in text, name
        positional = {a.dest: a for a in parser._actions if not a.option_strings and a.help}
        target = positional.get("dir") or positional.get("file")
        assert target is not None and len(target.help) > 20, name


def test_version_is_the_installed_package_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"scaling-lab {metadata.version('scaling-lab')}"


NO_TRAIN_EXTRA = """
import sys
class Missing:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('jax', 'jaxlib', 'flax', 'optax', 'orbax'):
            raise ModuleNotFoundError(f'No module named {name!r}', name=name)
sys.meta_path.insert(0, Missing())
from experiments.main import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize(
    "argv",
    [
        ["sweep", "plan", str(MICRO), "--no-measure"],
        ["train", "--config", str(REPO / "lab" / "configs" / "run_tiny.toml"), "--out", "x"],
    ],
)
def test_commands_needing_jax_say_to_install_the_train_extra(tmp_path, argv):
    done = subprocess.run(
        [sys.executable, "-c", NO_TRAIN_EXTRA, *argv],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "SCALING_LAB_CACHE": str(tmp_path)},
    )
    assert done.returncode == 2, done.stderr[-2000:]
    (line,) = done.stderr.splitlines()
    assert line.endswith("is not installed): pip install 'scaling-lab[train]'")


def test_a_model_table_with_only_params_gets_the_tokenizers_vocabulary(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text("num_tokens = 8192\nbatch_size = 4\n[model]\nparams = 3e4\nctx = 16\n")
    config = load_run_config(path)
    assert config.model.vocab_size == ByteTokenizer.vocab_size == 259
    explicit = load_run_config(path, ["model.vocab_size=300"])
    assert explicit.model.vocab_size == 300
    synthetic = load_run_config(path, ["data.corpus='synthetic'"])
    assert synthetic.model.vocab_size == 256  # unchanged where 256 was enough: same hash


def test_provenance_records_the_package_version_beside_the_commit():
    record = provenance.collect(
        config_hash="h", corpus_fingerprint="f", mesh_shape={"data": 1}, seed=0
    )
    assert record["package_version"] == metadata.version("scaling-lab")
    assert record["versions"]["scaling-lab"] == record["package_version"]
    assert record["git_commit"]


def test_run_file_names_have_one_owner():
    pattern = re.compile(r"""["'](result\.json|config\.json|metrics\.jsonl|evals\.jsonl)["']""")
    owners = {REPO / "lab" / "run_dir.py"}
    found = [
        f"{path.relative_to(REPO)}: {match[0]}"
        for package in ("lab", "experiments")
        for path in sorted((REPO / package).rglob("*.py"))
        if path not in owners
        for match in [pattern.search(path.read_text())]
        if match
    ]
    assert found == []


def test_run_status_is_the_plain_word_in_json_and_compares_with_it():
    assert json.dumps({"status": RunStatus.DIVERGED}) == '{"status": "diverged"}'
    assert RunStatus("done") is RunStatus.DONE and RunStatus.DONE == "done"
    assert {s for s in RunStatus if s.finished} == {"done", "diverged", "failed"}


def test_unreadable_jsonl_lines_are_skipped_not_taken_as_the_end(tmp_path):
    path = tmp_path / "metrics.jsonl"
    records = [{"step": i, "loss": 1.0 / i} for i in range(1, 7)]
    text = [json.dumps(r) for r in records]
    path.write_text("\n".join([*text[:2], "{torn", *text[2:5], "[]", text[5]]) + "\n")
    log = JsonlLog(path)
    assert log.read() == records
    with pytest.warns(UserWarning, match=r"skipped 2 unreadable line\(s\) \(line 3, 7\)"):
        log.truncate_after(4)
    log.close()
    assert path.read_text() == "".join(t + "\n" for t in text[:4])


def test_step_meter_writes_one_line_per_step_and_stops_at_a_blown_up_loss(tmp_path):
    config = RunConfig.from_dict(
        {
            "model": {"n_layers": 1, "d_model": 16, "n_heads": 1, "d_ff": 64, "ctx": 16},
            "num_tokens": 8 * 16 * 10,
            "optimizer": {"warmup_steps": 2},
        }
    )
    log = JsonlLog(tmp_path / "metrics.jsonl")
    meter = StepMeter(log, config, flops_per_step=1e6, peak=1e9)
    limit = 2.0 * math.log(config.model.vocab_size)
    ones = np.ones(3, np.float32)
    meter.dispatched(0, 3, {"loss": np.array([5.0, 4.0, 3.0]), "grad_norm": ones, "lr": ones})
    assert meter.flush() is None and meter.last_loss == 3.0
    meter.paused()
    blown = np.array([2.0, limit + 1.0, 1.0])
    meter.dispatched(3, 3, {"loss": blown, "grad_norm": ones, "lr": ones})
    divergence = meter.flush()
    assert divergence["step"] == 5 and f"ln(vocab) = {limit:.3f} at step 5" in divergence["reason"]
    log.close()
    lines = JsonlLog(tmp_path / "metrics.jsonl").read()
    assert [line["step"] for line in lines] == [1, 2, 3, 4, 5]  # none after the divergence
    assert lines[4]["tokens"] == 5 * 8 * 16 and lines[4]["flops"] == 5e6
    assert meter.timing()["train_steps_s"] == meter.train_seconds > 0
    assert meter.summary()["tokens_per_s"] == pytest.approx(
        8 * 16 / meter.summary()["median_step_time_s"]
    )


def test_run_dir_reports_a_damaged_result_as_damaged(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    assert run_dir.read_status(run) == RunStatus.NEW
    (run / "config.json").write_text("{}")
    assert run_dir.read_status(run) == RunStatus.STARTED
    (run / "result.json").write_text('{"status": "do')
    assert run_dir.read_status(run) == RunStatus.DAMAGED
    with pytest.raises(run_dir.DamagedRunError, match=r"result\.json is damaged"):
        run_dir.read_result(run)
    with pytest.raises(run_dir.DamagedRunError, match=r"config\.json is not a valid run config"):
        run_dir.read_config(run)
