"""The driver: PEBBLE's phases in order, pre-training ending once, the reward model frozen once the budget is spent."""

from __future__ import annotations

import copy

import torch

from pebble import PebbleAgent
from pebble.config import PretrainConfig
from pebble.pretraining import Pretraining
from pebble.reward_sources import LearnedReward, NoReward
from pebble.state_entropy import StateEntropyReward

TINY = dict(
    total_steps=500, seed_steps=100, unsup_steps=100, num_interact=100, segment_length=10, eval_freq=0,
    log_interval=0, net_arch=[32], reward_hidden=[32], batch_size=64, threads=1,
)  # fmt: skip


def test_phases_in_order_and_pre_training_ends_once_at_the_first_session() -> None:
    lines: list[str] = []
    agent = PebbleAgent("InvertedPendulum-v5", teacher="oracle", print_fn=lines.append, max_feedback=9, **TINY)
    learner, events = agent._parts.learner, []
    use_reward, end = learner.use_reward, learner.end_pretraining

    def spy_use(source, relabel=True):  # type: ignore[no-untyped-def]
        events.append((agent.num_timesteps, type(source).__name__, relabel))
        use_reward(source, relabel)

    def spy_end(**flags):  # type: ignore[no-untyped-def]
        events.append((agent.num_timesteps, "end of pre-training", flags))
        end(**flags)

    learner.use_reward, learner.end_pretraining = spy_use, spy_end  # type: ignore[method-assign]
    agent.learn()
    assert events == [
        (0, "StateEntropyReward", False),  # seed steps, then pre-training on the state-entropy reward
        (200, "LearnedReward", True),  # first session: relabel everything stored
        (200, "end of pre-training", {"critic": True, "actor": False, "extra_updates": 100, "temperature": False}),
        (300, "LearnedReward", True),
        (400, "LearnedReward", True),
    ]
    sessions = [line for line in lines if "feedback session" in line]
    assert "(uniform)" in sessions[0] and all("(disagreement)" in s for s in sessions[1:])
    assert agent.result is not None and agent.result.queries_asked == 9


def test_once_the_budget_is_spent_the_reward_model_is_frozen() -> None:
    agent = PebbleAgent("InvertedPendulum-v5", print_fn=None, max_feedback=6, queries_per_session=3, **TINY)
    weights = []
    original = agent._parts.reward_learner.fit  # type: ignore[union-attr]

    def spy_fit(*args, **kwargs):  # type: ignore[no-untyped-def]
        fit = original(*args, **kwargs)
        weights.append(copy.deepcopy(agent.reward_model.ensemble.state_dict()))  # type: ignore[union-attr]
        return fit

    agent._parts.reward_learner.fit = spy_fit  # type: ignore[union-attr,method-assign]
    agent.learn()
    assert len(weights) == 2 and agent.result.queries_asked == 6  # type: ignore[union-attr]
    final = agent.reward_model.ensemble.state_dict()  # type: ignore[union-attr]
    assert all(torch.equal(final[k], weights[-1][k]) for k in final)  # no training after step 300


def test_pre_training_offers_its_reward_and_ends_with_the_configured_resets() -> None:
    # without pre-training, nothing: an update before the first session must not see the true reward
    assert isinstance(Pretraining(PretrainConfig(unsup_steps=0)).reward_source(), NoReward)
    phase = Pretraining(PretrainConfig(unsup_steps=10, knn_k=3, reset_actor=True, extra_updates=7))
    assert isinstance(phase.reward_source(), StateEntropyReward) and phase.entropy.k == 3

    class Learner:
        def end_pretraining(self, **flags):  # type: ignore[no-untyped-def]
            self.flags = flags

    learner = Learner()
    phase.finish(learner)  # type: ignore[arg-type]
    assert learner.flags == {"critic": True, "actor": True, "extra_updates": 7, "temperature": False}
    phase.entropy.stats.update(torch.arange(10.0).double().numpy())
    clone = Pretraining(PretrainConfig(unsup_steps=10))
    clone.load_state_dict(phase.state_dict())
    assert clone.entropy.running_std == phase.entropy.running_std > 0


def test_the_learned_reward_source_is_the_ensemble_mean() -> None:
    agent = PebbleAgent("InvertedPendulum-v5", print_fn=None, max_feedback=4, **{**TINY, "total_steps": 250})
    agent.learn()
    source = agent._parts.reward_learner.reward_source()  # type: ignore[union-attr]
    assert isinstance(source, LearnedReward)
    obs, act = torch.randn(20, 4).numpy(), torch.randn(20, 1).numpy()
    nxt = torch.randn(20, 4).numpy()
    model = agent.reward_model
    x = model._inputs(obs, act, nxt)  # type: ignore[union-attr]
    with torch.no_grad():
        members = model.ensemble(x)  # type: ignore[union-attr]
    assert members.shape == (3, 20)
    torch.testing.assert_close(torch.as_tensor(source.score(obs, act, nxt, obs[:, 0])), members.mean(0))
