"""--preset: published settings laid over the defaults, below --config and the flags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pebble import config as cfg
from pebble.cli import main, parse_train_args
from pebble.learners import checked_algorithm
from pebble.presets import PRESETS, preset_config


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_is_a_valid_config_its_algorithm_accepts(name: str) -> None:
    config = preset_config(name)
    config.validate()
    checked_algorithm(config)  # every --algo-kwargs name is one the algorithm takes
    changed = {path for path, _ in cfg.leaf_fields() if cfg.get_leaf(config, path) != cfg.get_leaf(cfg.Config(), path)}
    assert ("pretrain", "unsup_steps") in changed  # every published setting pre-trains


def test_flags_and_config_files_win_over_the_preset(tmp_path: Path) -> None:
    file = tmp_path / "mine.toml"
    file.write_text("[feedback]\nmax_feedback = 300\n")
    config, _ = parse_train_args(["--preset", "pebble-dmc", "--config", str(file), "--batch-size", "64"])
    assert config.algo.batch_size == 64  # flag over preset (1024)
    assert config.feedback.max_feedback == 300  # file over preset (1000)
    assert config.algo.net_arch == [1024, 1024] and config.feedback.num_interact == 20_000  # the preset's
    assert (config.algo.init_ent_coef, config.algo.ent_coef_lr) == (0.1, 1e-4)


def test_a_run_saves_the_expanded_values_not_the_name(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    argv = ["train", "--preset", "pebble-metaworld", "--env", "InvertedPendulum-v5", "--total-steps", "400",
            "--seed-steps", "100", "--unsup-steps", "100", "--num-interact", "100", "--max-feedback", "4",
            "--queries-per-session", "2", "--segment-length", "5", "--batch-size", "32", "--net-arch", "16",
            "--reward-hidden", "16", "--eval-freq", "0", "--log-interval", "0", "--run-dir", str(run_dir)]  # fmt: skip
    assert main(argv) == 0
    saved = json.loads((run_dir / "config.json").read_text())
    assert "preset" not in json.dumps(saved)
    assert saved["reward"]["reward_output"] == "tanh" and saved["reward"]["reward_epochs"] == 10
    assert saved["reward"]["reward_feature_screening"] == 0.0  # the reference does not screen; the default does
    assert saved["algo"]["init_ent_coef"] == 0.1 and saved["algo"]["batch_size"] == 32


def test_an_unknown_preset_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--preset", "pebble-dcm"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "did you mean pebble-dmc?" in err


def test_help_lists_the_presets(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert all(name in out for name in PRESETS)


def test_a_sweep_variant_can_start_from_a_preset() -> None:
    from pebble.sweep_spec import parse_spec

    spec = parse_spec({"seeds": [0], "base": {"env": "InvertedPendulum-v5", "eval_episodes": 3},
                       "variants": [{"name": "ppo", "preset": "prefppo-dmc", "n_envs": 2}]})  # fmt: skip
    config = spec.trials[0].config
    assert config.algo.algo == "ppo" and config.algo.algo_kwargs["clip_range"] == 0.4  # the preset's
    assert config.n_envs == 2 and config.log.eval_episodes == 3  # the variant's setting, the base's
    with pytest.raises(cfg.ConfigError, match="variant 'x'|unknown --preset"):
        parse_spec({"seeds": [0], "base": {}, "variants": [{"name": "x", "preset": "nope"}]})
