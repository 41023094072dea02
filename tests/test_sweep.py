"""``pebble sweep``: the spec's trials, bad input before any trial starts, and sweeps on a local
Ray that skip finished trials, continue killed ones and lose no labels."""

from __future__ import annotations

import csv
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pebble.cli import main
from pebble.config import ConfigError
from pebble.sweep_spec import load_spec, parse_spec, select

pytest.importorskip("ray")

#: a few hundred steps of Pendulum with small networks: seconds per trial
TINY = """
[base]
env = "Pendulum-v1"
total_steps = {steps}
seed_steps = 100
num_interact = 200
segment_length = 10
eval_freq = 300
eval_episodes = 1
log_interval = 100
checkpoint_freq = 200
batch_size = 64
net_arch = [32, 32]
reward_hidden = [32]
"""


def write_spec(tmp_path: Path, text: str, steps: int = 600) -> Path:
    spec = tmp_path / "spec.toml"
    spec.write_text(f'out = "{tmp_path / "out"}"\n' + text + TINY.format(steps=steps))
    return spec


def sweep(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pebble.cli", "sweep", *args], capture_output=True, text=True)


def labels(run_dir: Path) -> list[tuple]:
    with sqlite3.connect(run_dir / "labels.db") as db:
        return list(db.execute("SELECT query_id, ranking, env_step, obs FROM answers ORDER BY query_id"))


def starts(log: Path) -> list[str]:
    """The commands the sweep started for a trial (one line each in its log)."""
    return [line.split(" ", 3)[3] for line in log.read_text().splitlines() if line.startswith("[sweep] ")]


def test_trials_are_variants_times_grid_times_seeds() -> None:
    spec = parse_spec(
        {
            "seeds": [3, 4],
            "base": {"total_steps": 5000, "algo": {"batch_size": 64}},
            "variants": [{"name": "sac_true", "true_reward": True}, {"name": "pebble", "max_feedback": 200}],
            "grid": {"env": ["Hopper-v5", "Walker2d-v5"], "query_scheme": ["uniform", "entropy"]},
        },
        out="/tmp/x",
    )
    assert len(spec.trials) == 2 * 2 * 2 * 2
    names = {t.name for t in spec.trials}
    assert "Hopper-v5__sac_true__query_scheme=entropy__4" in names
    trial = next(t for t in spec.trials if t.name == "Walker2d-v5__pebble__query_scheme=uniform__3")
    c = trial.config
    assert (c.env, c.seed, c.total_steps, c.feedback.max_feedback, c.feedback.query_scheme) == (
        "Walker2d-v5", 3, 5000, 200, "uniform"
    )  # fmt: skip
    assert c.algo.batch_size == 64 and not c.true_reward and c.run_dir == f"/tmp/x/{trial.name}"
    assert c.threads == 1  # one framework thread per CPU of the trial


@pytest.mark.parametrize(
    "data, message",
    [
        ({"grid": {"max_feedbak": [1, 2]}}, "unknown setting 'max_feedbak' (did you mean max_feedback?)"),
        ({"grid": {"max_feedback": []}}, "grid.max_feedback is empty"),
        ({"grid": {"max_feedback": 5}}, "grid.max_feedback must be a list"),
        ({"base": {"query_scheme": "best"}}, "base: --query-scheme must be one of"),
        ({"base": {"total_steps": 0}}, "--total-steps must be positive"),
        ({"seeds": []}, "seeds must be a non-empty list"),
        ({"base": {"seed": 1}}, "give seeds in the spec's top-level"),
        ({"variants": [{"name": "a"}, {"name": "a"}]}, "two trials would share the run folder"),
        ({"gird": {}}, "unknown key 'gird' in the sweep spec"),
        ({"cpus_per_trial": 0}, "cpus_per_trial must be positive"),
    ],
)
def test_bad_specs_are_one_line_errors(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=None) as err:
        parse_spec(data)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_trials_can_be_selected_by_name() -> None:
    spec = parse_spec({"seeds": [0, 1, 2], "variants": [{"name": "a"}, {"name": "b", "max_feedback": 10}]})
    assert [t.name for t in select(spec, ["*__a__0", "*__b__2"]).trials] == [
        "HalfCheetah-v5__a__0", "HalfCheetah-v5__b__2"
    ]  # fmt: skip
    with pytest.raises(ConfigError, match="--trials '\\*__c__0' matches no trial"):
        select(spec, ["*__c__0"])


def test_bad_spec_or_address_fails_before_any_trial_starts(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, "[grid]\nmax_feedback = [20]\nreward_lr = [-1.0]\n")
    proc = sweep([str(spec)])
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "--reward-lr must be positive" in proc.stderr
    good = write_spec(tmp_path, "seeds = [0]\n")
    proc = sweep([str(good), "--address", "127.0.0.1:1"])  # nothing listens on port 1
    assert proc.returncode == 2 and proc.stderr.startswith("error: cannot reach the Ray cluster at 127.0.0.1:1")
    assert not (tmp_path / "out").exists()
    broken = tmp_path / "broken.toml"
    broken.write_text("seeds = [0\n")
    assert main(["sweep", str(broken)]) == 2


def test_pebble_train_imports_neither_ray_nor_the_report_libraries() -> None:
    code = (
        "import sys, pebble.cli, pebble.train, pebble.assembly, pebble.agent; "
        "print(sorted(m for m in ('ray', 'rliable', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_without_ray_the_sweep_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from pebble.sweep import import_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(ConfigError, match=r'pip install -e "\.\[sweep\]"'):
        import_ray()


@pytest.mark.slow
def test_a_sweep_runs_every_trial_and_a_second_run_skips_them(tmp_path: Path) -> None:
    spec_path = write_spec(
        tmp_path, "seeds = [0, 1]\n[[variants]]\nname = 'p20'\nmax_feedback = 20\n"
        "[[variants]]\nname = 'p40'\nmax_feedback = 40\n[[variants]]\nname = 'broken'\nenv = 'NoSuchEnv-v9'\n"
    )  # fmt: skip
    proc = sweep([str(spec_path), "--cpus", "2"])
    assert proc.returncode == 1, proc.stdout + proc.stderr  # the broken variant's two trials failed
    spec = load_spec(spec_path)
    for trial in spec.trials:
        if "broken" in trial.name:
            assert f"error: trial {trial.name}: " in proc.stderr and "NoSuchEnv-v9" in proc.stderr
            continue
        summary = json.loads((trial.run_dir / "summary.json").read_text())
        assert summary["labels"] == trial.config.feedback.max_feedback == len(labels(trial.run_dir))
        assert summary["steps"] == 600
    assert "6 trials" in proc.stdout and "FAILED" in proc.stdout
    record = json.loads((spec.out / "sweep.json").read_text())
    assert record["trials"]["Pendulum-v1__p40__1"]["state"] == "finished"
    # pebble report on the sweep: one group per label budget, numbers as computed by hand
    assert main(["report", str(spec.out), "--out", str(tmp_path / "report"), "--no-plot"]) == 0
    with (tmp_path / "report" / "report.csv").open() as fh:
        rows = {row["label"]: row for row in csv.DictReader(fh)}
    assert sorted(rows) == ["Pendulum-v1 | max_feedback=20", "Pendulum-v1 | max_feedback=40"]
    for budget in (20, 40):
        finals = [
            json.loads((t.run_dir / "summary.json").read_text())["final_eval_return"]
            for t in spec.trials
            if t.config.feedback.max_feedback == budget and "broken" not in t.name
        ]
        row = rows[f"Pendulum-v1 | max_feedback={budget}"]
        assert row["seeds"] == "0 1" and float(row["final_return_mean"]) == pytest.approx(np.mean(finals), rel=1e-9)
    logs = {p.name: p.read_text() for p in (spec.out / "logs").iterdir()}
    again = sweep([str(spec_path), "--cpus", "2"])
    assert again.returncode == 1  # the broken trials fail again; the others are not run again
    assert "(4 finished, 2 to continue, 0 new)" in again.stdout or "(4 finished, 0 to continue, 2 new)" in again.stdout
    for name, text in logs.items():
        if "broken" not in name:
            assert (spec.out / "logs" / name).read_text() == text
