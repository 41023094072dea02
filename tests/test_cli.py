"""The command line: flags from the config tree, config files, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pebble import config as cfg
from pebble.cli import main, parse_train_args, train_parser


def test_every_config_field_has_a_documented_flag() -> None:
    help_text = train_parser(cfg.Config()).format_help()
    for path, field in cfg.leaf_fields():
        assert "--" + cfg.flag(path[-1]) in help_text
        assert field.metadata["help"]
    for required in ("--env", "--seed", "--total-steps", "--max-feedback", "--teacher", "--run-dir", "--config"):
        assert required in help_text
    names = [path[-1] for path, _ in cfg.leaf_fields()]
    assert len(names) == len(set(names))


def test_flags_override_config_file(tmp_path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"env": "Hopper-v5", "feedback": {"max_feedback": 300, "query_size": 3}, "seed": 4}))
    config, overwrite = parse_train_args(["--config", str(path), "--max-feedback", "200", "--net-arch", "64", "64"])
    assert (config.env, config.seed, config.feedback.max_feedback, config.feedback.query_size) == (
        "Hopper-v5",
        4,
        200,
        3,
    )
    assert config.algo.net_arch == [64, 64] and not overwrite


def test_saved_config_round_trips(tmp_path) -> None:
    config, _ = parse_train_args(["--teacher-kwargs", "beta=2.5", "name=x", "--no-reset-critic"])
    assert config.feedback.teacher_kwargs == {"beta": 2.5, "name": "x"} and not config.pretrain.reset_critic
    cfg.save(config, tmp_path / "config.json")
    again, _ = parse_train_args(["--config", str(tmp_path / "config.json")])
    assert again == config


def test_saved_config_from_before_a_default_changed_keeps_the_old_value() -> None:
    """A run saved before --reward-output, --normalize-inputs and --reward-next-state existed used
    tanh, raw inputs and r(s, a); it must resume that way, while a new run (or a partial config
    file) gets today's defaults."""
    saved = cfg.to_dict(cfg.Config())
    for name in ("reward_output", "normalize_inputs", "reward_next_state"):
        del saved["reward"][name]
    old = cfg.from_plain(saved)
    assert (old.reward.reward_output, old.reward.normalize_inputs, old.reward.reward_next_state) == (
        "tanh",
        False,
        False,
    )
    new = cfg.Config()
    assert (new.reward.reward_output, new.reward.normalize_inputs, new.reward.reward_next_state) == (
        "linear",
        True,
        True,
    )
    assert cfg.from_dict({"reward": {"reward_epochs": 10}}).reward.reward_output == "linear"
    explicit = cfg.to_dict(cfg.Config())
    explicit["reward"]["reward_output"] = "linear"
    assert cfg.from_plain(explicit).reward.reward_output == "linear"


def test_toml_config(tmp_path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        'env = "Walker2d-v5"\n[feedback]\nteacher = "mistake"\n[feedback.teacher_kwargs]\neps_mistake = 0.2\n'
    )
    config, _ = parse_train_args(["--config", str(path)])
    assert config.env == "Walker2d-v5" and config.feedback.teacher_kwargs == {"eps_mistake": 0.2}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--max-feedbak", "10"], "did you mean --max-feedback"),
        (["train", "--reward-next-stat"], "did you mean --reward-next-state"),  # no abbreviations
        (["train", "--max-feedback", "ten"], "invalid int value"),
        (["train", "--max-feedback", "0"], "--max-feedback must be positive"),
        (["train", "--query-size", "1"], "--query-size must be at least 2"),
        (["train", "--query-scheme", "best"], "argument --query-scheme: invalid choice: 'best'"),
        (["train", "--total-steps", "1000"], "must be smaller than --total-steps"),
        (["trian"], "did you mean train"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_bad_config_file_is_one_line(tmp_path, capsys) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"feedback": {"max_feedbak": 3}}))
    assert main(["train", "--config", str(path)]) == 2
    assert "unknown setting 'max_feedbak' in feedback" in capsys.readouterr().err
    path.write_text("{not json")
    assert main(["train", "--config", str(path)]) == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--env", "HalfCheeta-v5"], "did you mean HalfCheetah-v5"),
        (["--teacher", "oracel"], "unknown teacher 'oracel'"),
        (["--env", "Reacher-v5", "--segment-length", "60"], "longer than Reacher-v5's episode limit"),
    ],
)
def test_unknown_env_or_teacher_from_the_console_script(argv, message, tmp_path) -> None:
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "pebble.cli", "train", "--run-dir", str(run_dir), *argv],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.strip().splitlines() if "settotalmass" not in line]
    assert len(lines) == 1 and message in lines[0]
    assert not run_dir.exists()  # nothing created for a run that could not start


def test_existing_run_folder_is_refused(tmp_path, capsys) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "labels.db").write_text("precious")
    assert main(["train", "--env", "Pendulum-v1", "--run-dir", str(run_dir)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (run_dir / "labels.db").read_text() == "precious"


@pytest.mark.parametrize("where", ["file", "inside_file"])
def test_a_run_folder_that_is_a_file_is_refused_and_kept(where, tmp_path, capsys) -> None:
    existing = tmp_path / "notes.txt"
    existing.write_text("precious")
    run_dir = existing if where == "file" else existing / "run"
    assert main(["train", "--env", "Pendulum-v1", "--run-dir", str(run_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{existing} exists and is not a folder" in err
    assert existing.read_text() == "precious"


def test_the_learning_rate_left_at_0_is_the_algorithms_published_one_and_is_saved(tmp_path) -> None:
    """CrossQ (the default learner) was measured at its paper's 1e-3, the rest at 3e-4; a given
    rate wins, and the saved config holds the number, so a later default cannot change a run."""
    assert parse_train_args([])[0].algo.learning_rate == 1e-3
    assert parse_train_args(["--algo", "sac"])[0].algo.learning_rate == 3e-4
    assert parse_train_args(["--algo", "crossq", "--learning-rate", "5e-4"])[0].algo.learning_rate == 5e-4
    config = cfg.override(cfg.Config(), algo="tqc")
    config.validate()  # what the Python API and sweeps do: the rate is filled in before the run starts
    cfg.save(config, tmp_path / "config.json")
    assert json.loads((tmp_path / "config.json").read_text())["algo"]["learning_rate"] == 3e-4
    assert main(["train", "--learning-rate", "-1"]) == 2


def test_resume_of_a_file_or_missing_folder_is_one_line(tmp_path, capsys) -> None:
    existing = tmp_path / "notes.txt"
    existing.write_text("x")
    for target in (existing, tmp_path / "missing"):
        assert main(["resume", str(target)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "is not a pebble run folder" in err


def test_a_renamed_setting_keeps_its_old_name_in_files_and_flags() -> None:
    """--torch-threads became --threads (torch and XLA alike); runs saved before still load."""
    saved = cfg.to_dict(cfg.Config())
    del saved["threads"], saved["algo"]["backend"]
    saved["torch_threads"] = 3
    old = cfg.from_plain(saved)
    assert old.threads == 3 and old.algo.backend == "torch"  # a run from before the jax backend ran on torch
    config, _ = parse_train_args(["--torch-threads", "2"])
    assert config.threads == 2 and cfg.override(cfg.Config(), torch_threads=4).threads == 4
    assert cfg.Config().threads == 1  # one per run by default: two runs share two cores


def test_a_bad_algorithm_setting_is_one_line_and_makes_no_run_folder(tmp_path, capsys) -> None:
    run_dir = tmp_path / "run"
    argv = ["train", "--env", "InvertedPendulum-v5", "--algo", "crossq", "--algo-kwargs", "tau=0.1"]
    assert main([*argv, "--run-dir", str(run_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("CrossQ of torch takes no tau") and len(err.splitlines()) == 1
    assert not run_dir.exists()
    assert main(["train", "--backend", "tensorflow"]) == 2
    assert "--backend" in capsys.readouterr().err
