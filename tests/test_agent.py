"""The Python API: the README's notebook example verbatim, objects in, models out, save and load."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from pebble import ConfigError, PebbleAgent, TrueReward
from teachers.scripted import ScriptedTeacher

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(
    total_steps=600, seed_steps=100, num_interact=100, max_feedback=20, segment_length=10, eval_freq=0,
    eval_episodes=2, log_interval=0, net_arch=[32], reward_hidden=[32], batch_size=64, threads=1,
)  # fmt: skip


def readme_python_block() -> str:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert len(blocks) == 1, "the README has exactly one Python quickstart"
    return blocks[0]


def test_the_readme_notebook_example_runs_as_written_and_writes_nothing(tmp_path, monkeypatch, capsys) -> None:
    code = readme_python_block()
    assert len(code.strip().splitlines()) <= 12
    monkeypatch.chdir(tmp_path)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    agent = namespace["agent"]
    assert len(agent.labels) == 40 and agent.model.num_timesteps == 2000
    assert "40 labels; reward model: RewardModel(r(s, a, s')" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []  # no runs/ folder, no files at all
    assert {s: signal.getsignal(s) for s in handlers} == handlers  # no signal handlers installed


def test_objects_in_and_models_out(tmp_path) -> None:
    env = gym.make("InvertedPendulum-v5")
    agent = PebbleAgent(env, teacher=ScriptedTeacher(name="mine"), print_fn=None, **TINY)
    agent.learn()
    assert agent.config.feedback.teacher == "mine" and agent.config.env == "InvertedPendulum-v5"
    assert len(agent.labels) == len(agent.label_store) == 20
    obs = np.zeros((3, 4), np.float32)
    assert agent.reward_model.reward(obs, np.zeros((3, 1), np.float32), obs).shape == (3,)
    assert agent.predict(np.zeros(4, np.float32)).shape == (1,)
    assert agent.result is not None and agent.result.labels == 20 and agent.result.run_dir is None


def test_save_then_load_continues_exactly_as_the_agent_would_have(tmp_path) -> None:
    teacher = ScriptedTeacher(beta=1.0, name="noisy-object")
    settings = {**TINY, "max_feedback": 40, "queries_per_session": 4}  # 4 sessions by step 600, 2 more by 900
    agent = PebbleAgent("InvertedPendulum-v5", teacher=teacher, print_fn=None, unsup_steps=100, **settings)
    agent.learn()
    folder = agent.save(tmp_path / "saved")
    assert {"config.json", "labels.db", "checkpoints", "policy.zip", "reward_model.pt"} <= {
        p.name for p in folder.iterdir()
    }
    with pytest.raises(ConfigError, match=r"unknown teacher 'noisy-object'.*pass.*teacher="):
        PebbleAgent.load(folder, print_fn=None)  # a Python-object teacher must be passed again
    agent.learn(total_steps=900)
    loaded = PebbleAgent.load(folder, teacher=ScriptedTeacher(beta=1.0, name="noisy-object"), print_fn=None)
    assert loaded.model.num_timesteps == 600 and len(loaded.labels) == 16  # sessions at 200, 300, 400, 500
    loaded.learn(total_steps=900)
    assert len(loaded.labels) == len(agent.labels) == 24  # and at 700, 800
    for ours, theirs in [
        (agent.reward_model.ensemble.state_dict(), loaded.reward_model.ensemble.state_dict()),
        (agent.model.policy.state_dict(), loaded.model.policy.state_dict()),
    ]:
        assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert (folder / "summary.json").exists() and (folder / "tb").is_dir()  # the loaded run writes to its folder


def test_settings_are_checked_by_name_and_value() -> None:
    with pytest.raises(ConfigError, match="unknown setting 'max_feedbak' \\(did you mean max_feedback\\?\\)"):
        PebbleAgent("InvertedPendulum-v5", max_feedbak=10)
    with pytest.raises(ConfigError, match="--max-feedback must be an integer"):
        PebbleAgent("InvertedPendulum-v5", max_feedback="ten")
    with pytest.raises(ConfigError, match="--max-feedback must be positive"):
        PebbleAgent("InvertedPendulum-v5", max_feedback=0)


def test_a_fixed_true_reward_asks_no_teacher_and_trains_on_the_environment_reward() -> None:
    class Refuses:
        name = "refuses"

        def answer(self, queries, context):  # type: ignore[no-untyped-def]
            raise AssertionError("the perfect-reward diagnostic asks no teacher")

    agent = PebbleAgent("InvertedPendulum-v5", teacher=Refuses(), fixed_reward=TrueReward(), print_fn=None, **TINY)
    agent.learn()
    buffer = agent.model.replay_buffer
    rows = buffer.size()
    np.testing.assert_array_equal(buffer.rewards[:rows], buffer.true_rewards[:rows])
    assert agent.labels is None and agent.reward_model is None


def test_a_stop_request_in_a_notebook_stops_learn_without_writing() -> None:
    agent = PebbleAgent("InvertedPendulum-v5", print_fn=None, **TINY)
    agent.request_stop()
    agent.learn()
    assert agent.stopped_early and agent.result is None and agent.num_timesteps < 600
