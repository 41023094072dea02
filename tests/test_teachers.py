"""Scripted B-Pref teachers: statistical checks of every imperfection, presets and answer validation.

Frequencies are checked against their exact probabilities with a normal-approximation bound
of ``SIGMAS`` binomial standard deviations (two-sided p ~ 6e-5 per check at 4 sigma, and the
seeds are fixed, so a correct teacher passes deterministically). Every bound is far tighter
than the effect of a plausible bug (a missing ``beta``, a reversed myopic weighting, a
threshold multiplied by ``eps`` twice, ties always to clip 0): such a teacher fails.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from typing import Any

import numpy as np
import pytest

from teachers import (
    PRESETS,
    Answer,
    Clip,
    Query,
    ScriptedTeacher,
    TeacherError,
    TeachingContext,
    make_teacher,
    preset,
    validate_answer,
)

H = 10
SIGMAS = 4.0


# ----------------------------------------------------------------------------- helpers
def clip(rewards: np.ndarray | list[float], mask: np.ndarray | None = None) -> Clip:
    rewards = np.asarray(rewards, dtype=np.float64)
    mask = np.ones(len(rewards), bool) if mask is None else mask
    return Clip(np.zeros((len(rewards), 3)), np.zeros((len(rewards), 2)), rewards * mask, mask)


def lump(total: float, step: int = 0) -> Clip:
    """A clip whose whole return ``total`` is earned at one step (sums are then exact)."""
    rewards = np.zeros(H)
    rewards[step] = total
    return clip(rewards)


def query(*returns: float, query_id: int = 0) -> Query:
    return Query(query_id, tuple(lump(r) for r in returns))


def context(seed: int = 0, mean_step_reward: float = 0.0, session: int = 0) -> TeachingContext:
    return TeachingContext(session, 1000 * session, np.random.default_rng(seed), mean_step_reward)


def outcomes(teacher: ScriptedTeacher, q: Query, n: int, seed: int = 0, **ctx: Any) -> Counter:
    """Counts of the answers to ``n`` repetitions of one query: ranking tuples, "equal" or "skip"."""
    c = context(seed, **ctx)
    counts: Counter = Counter()
    for _ in range(n):
        a = teacher.judge(q, c)
        counts[a.ranking if a.kind == "ranking" else a.kind] += 1
    return counts


def assert_frequency(count: int, n: int, p: float, what: str, sigmas: float = SIGMAS) -> None:
    """``count`` ~ Binomial(n, p) within ``sigmas`` standard deviations."""
    sd = math.sqrt(n * p * (1 - p))
    assert abs(count - n * p) <= sigmas * sd, f"{what}: {count}/{n} = {count / n:.4f}, expected p = {p:.4f}"


def plackett_luce(utilities: np.ndarray, ranking: tuple[int, ...]) -> float:
    """P(ranking) = prod_k exp(u[r_k]) / sum_{j >= k} exp(u[r_j]), written out independently."""
    p = 1.0
    for k in range(len(ranking) - 1):
        p *= math.exp(utilities[ranking[k]]) / sum(math.exp(utilities[j]) for j in ranking[k:])
    return p


# ------------------------------------------------------------------------ mistake
@pytest.mark.parametrize("eps", [0.1, 0.3])
def test_mistake_rate_matches_eps(eps: float) -> None:
    n = 20_000
    counts = outcomes(ScriptedTeacher(eps_mistake=eps), query(10.0, 0.0), n, seed=1)
    assert set(counts) <= {(0, 1), (1, 0)}
    assert_frequency(counts[(1, 0)], n, eps, f"flips at eps={eps}")


def test_mistake_reverses_a_k_wise_ranking() -> None:
    n = 10_000
    counts = outcomes(ScriptedTeacher(eps_mistake=0.2), query(1.0, 3.0, 2.0), n, seed=2)
    assert set(counts) == {(1, 2, 0), (0, 2, 1)}  # correct, or exactly reversed
    assert_frequency(counts[(0, 2, 1)], n, 0.2, "reversed rankings")


def test_no_mistakes_without_eps() -> None:
    counts = outcomes(ScriptedTeacher(), query(0.0, 0.001), 2000)
    assert counts == Counter({(1, 0): 2000})


# -------------------------------------------------------------------------- noisy
@pytest.mark.parametrize("beta", [1.0, 0.25])
def test_noisy_pair_frequency_is_softmax_of_beta_returns(beta: float) -> None:
    n = 10_000
    r0 = 1.0
    for seed, gap in enumerate((-3.0, -1.0, 0.0, 0.5, 2.0)):
        counts = outcomes(ScriptedTeacher(beta=beta), query(r0, r0 + gap), n, seed=seed)
        p1 = math.exp(beta * (r0 + gap)) / (math.exp(beta * r0) + math.exp(beta * (r0 + gap)))
        assert counts[(0, 1)] + counts[(1, 0)] == n
        assert_frequency(counts[(1, 0)], n, p1, f"beta={beta}, R1-R0={gap}: clip 1 preferred")


@pytest.mark.parametrize(("beta", "returns"), [(1.0, (1.0, 0.0, -0.5)), (0.5, (2.0, -1.0, 0.5))])
def test_noisy_rankings_of_three_follow_plackett_luce(beta: float, returns: tuple[float, ...]) -> None:
    n = 30_000
    counts = outcomes(ScriptedTeacher(beta=beta), query(*returns), n, seed=3)
    utilities = beta * np.array(returns)
    rankings = list(itertools.permutations(range(3)))
    assert sum(plackett_luce(utilities, r) for r in rankings) == pytest.approx(1.0)
    assert set(counts) <= set(rankings)
    for ranking in rankings:  # 6 cells: 4.5 sigma keeps the family-wise level ~ 4e-5
        assert_frequency(counts[ranking], n, plackett_luce(utilities, ranking), f"ranking {ranking}", sigmas=4.5)


def test_beta_zero_is_uniformly_random_and_huge_beta_is_rational() -> None:
    n = 6000
    uniform = outcomes(ScriptedTeacher(beta=0.0), query(5.0, 0.0), n, seed=4)
    assert_frequency(uniform[(0, 1)], n, 0.5, "beta=0")
    assert outcomes(ScriptedTeacher(beta=1e6), query(0.01, 0.0), 500) == Counter({(0, 1): 500})


# ------------------------------------------------------------------------- myopic
def test_clip_true_return_weights_step_t_by_gamma_to_the_h_minus_1_minus_t() -> None:
    rng = np.random.default_rng(5)
    rewards = rng.normal(size=H)
    mask = np.ones(H, bool)
    mask[7:] = False  # terminated after step 6: padding earns nothing
    c = clip(rewards, mask)
    for gamma in (1.0, 0.9, 0.5):
        expected = sum(gamma ** (H - 1 - t) * rewards[t] for t in range(7))
        assert c.true_return(gamma) == pytest.approx(expected, rel=1e-12)
    assert c.true_return() == pytest.approx(rewards[:7].sum(), rel=1e-12)
    assert lump(1.0, H - 1).true_return(0.5) == 1.0  # the last step has weight 1
    assert lump(1.0, 0).true_return(0.5) == 0.5 ** (H - 1)


def test_myopic_teacher_prefers_reward_earned_late() -> None:
    early, late = lump(1.0, 0), lump(1.0, H - 1)
    q = Query(0, (early, late))
    assert outcomes(ScriptedTeacher(gamma=0.9), q, 300) == Counter({(1, 0): 300})
    q_swapped = Query(0, (late, early))
    assert outcomes(ScriptedTeacher(gamma=0.9), q_swapped, 300) == Counter({(0, 1): 300})
    assert len(outcomes(ScriptedTeacher(gamma=1.0), q, 300)) == 2  # not myopic: a tie, broken at random


@pytest.mark.parametrize("step", [0, 3, H - 2])
def test_myopic_decision_at_the_boundary(step: int) -> None:
    """Reward ``c`` at ``step`` against 1 at the last step: the teacher flips exactly at c = gamma^-(H-1-step)."""
    gamma = 0.9
    boundary = gamma ** -(H - 1 - step)
    teacher = ScriptedTeacher(gamma=gamma)
    last = lump(1.0, H - 1)
    above = Query(0, (last, lump(boundary * (1 + 1e-6), step)))
    below = Query(0, (last, lump(boundary * (1 - 1e-6), step)))
    assert outcomes(teacher, above, 50) == Counter({(1, 0): 50})
    assert outcomes(teacher, below, 50) == Counter({(0, 1): 50})


def test_myopic_noisy_teacher_uses_the_weighted_returns() -> None:
    gamma, beta, n = 0.8, 1.0, 10_000
    q = Query(0, (lump(2.0, 0), lump(1.0, H - 1)))
    r0, r1 = (c.true_return(gamma) for c in q.clips)
    counts = outcomes(ScriptedTeacher(beta=beta, gamma=gamma), q, n, seed=6)
    assert_frequency(counts[(1, 0)], n, 1 / (1 + math.exp(-beta * (r1 - r0))), "myopic + noisy")


# --------------------------------------------------------------- skip and equal
@pytest.mark.parametrize("session", [0, 1, 7])
def test_skip_threshold_is_eps_times_h_times_mean_step_reward(session: int) -> None:
    teacher = ScriptedTeacher(eps_skip=0.1)
    ctx: dict[str, Any] = {"mean_step_reward": 2.0, "session": session}  # margin 20, threshold 2 in every session

    def kind(*returns: float) -> str | tuple[int, ...]:
        return next(iter(outcomes(teacher, query(*returns), 1, **ctx)))

    assert kind(1.99, 1.5) == "skip"
    assert kind(1.99, -5.0) == "skip"
    assert kind(2.01, -5.0) == (0, 1)
    assert kind(1.0, 1.5, 1.99) == "skip"
    assert kind(1.0, 2.01, 1.99) == (1, 2, 0)  # one clip above: answered
    assert next(iter(outcomes(teacher, query(2.5, 0.0), 1, mean_step_reward=3.0))) == "skip"  # threshold 3
    assert next(iter(outcomes(teacher, query(-2.5, -3.0), 1, mean_step_reward=-2.0))) == "skip"  # threshold -2
    assert next(iter(outcomes(teacher, query(-1.5, -3.0), 1, mean_step_reward=-2.0))) == (0, 1)
    never = ScriptedTeacher()
    assert outcomes(never, query(-5.0, -6.0), 5, mean_step_reward=2.0) == Counter({(0, 1): 5})


@pytest.mark.parametrize("session", [0, 4])
def test_equal_threshold_is_eps_times_abs_margin(session: int) -> None:
    teacher = ScriptedTeacher(eps_equal=0.1)
    for mean in (2.0, -2.0):  # |margin| = 20, tolerance 2
        ctx: dict[str, Any] = {"mean_step_reward": mean, "session": session}
        assert outcomes(teacher, query(5.0, 6.99), 3, **ctx) == Counter({"equal": 3})
        assert outcomes(teacher, query(5.0, 7.01), 3, **ctx) == Counter({(1, 0): 3})
        assert outcomes(teacher, query(5.0, 6.0, 6.99), 3, **ctx) == Counter({"equal": 3})
        assert outcomes(teacher, query(5.0, 6.0, 7.01), 3, **ctx) == Counter({(2, 1, 0): 3})
    assert "equal" not in outcomes(teacher, query(5.0, 5.0), 20)  # margin 0: never "equal"


def test_order_of_skip_mistake_and_equal() -> None:
    ctx: dict[str, Any] = {"mean_step_reward": 2.0}
    both = ScriptedTeacher(eps_skip=0.1, eps_equal=0.1)
    assert outcomes(both, query(1.0, 1.5), 3, **ctx) == Counter({"skip": 3})  # skip comes first
    assert outcomes(both, query(3.0, 3.5), 3, **ctx) == Counter({"equal": 3})
    always_wrong = ScriptedTeacher(eps_mistake=1.0, eps_equal=0.1)
    assert outcomes(always_wrong, query(5.0, 6.0), 3, **ctx) == Counter({"equal": 3})  # equal overrides
    assert outcomes(always_wrong, query(5.0, 9.0), 3, **ctx) == Counter({(0, 1): 3})  # flipped


def test_skip_and_equal_use_undiscounted_returns() -> None:
    """Same total, very different myopic returns: still "equal" (the margin is in undiscounted units)."""
    q = Query(0, (lump(5.0, 0), lump(5.0, H - 1)))
    teacher = ScriptedTeacher(gamma=0.5, eps_equal=0.1, eps_skip=0.1)
    assert outcomes(teacher, q, 3, mean_step_reward=2.0) == Counter({"equal": 3})
    q_low = Query(0, (lump(0.5, 0), lump(3.0, 0)))  # max undiscounted 3 >= threshold 2, both myopic < 0.01
    assert outcomes(teacher, q_low, 3, mean_step_reward=2.0) == Counter({(1, 0): 3})


# ------------------------------------------------------------------------- ties
def test_rational_ties_are_broken_at_random() -> None:
    n = 4000
    pair = outcomes(ScriptedTeacher(), query(1.0, 1.0), n, seed=8)
    assert_frequency(pair[(0, 1)], n, 0.5, "tie of two")
    triple = outcomes(ScriptedTeacher(), query(1.0, 1.0, 1.0), 6 * n, seed=9)
    for ranking in itertools.permutations(range(3)):
        assert_frequency(triple[ranking], 6 * n, 1 / 6, f"tie of three, {ranking}", sigmas=4.5)
    partial = outcomes(ScriptedTeacher(), query(2.0, 1.0, 1.0), n, seed=10)
    assert set(partial) == {(0, 1, 2), (0, 2, 1)}  # only the tied clips are shuffled
    assert_frequency(partial[(0, 1, 2)], n, 0.5, "tie below the best")


def test_answers_are_reproducible_from_the_context_generator() -> None:
    teacher = ScriptedTeacher(beta=1.0, eps_mistake=0.1)
    qs = [query(float(i % 3), 1.0, query_id=i) for i in range(200)]
    first = list(teacher.answer(qs, context(seed=11)))
    assert first == list(teacher.answer(qs, context(seed=11)))
    assert first != list(teacher.answer(qs, context(seed=12)))
    assert [qid for qid, _ in first] == list(range(200))


# ------------------------------------------------------------------------ presets
def random_queries(rng: np.random.Generator, n: int, k: int, start: int) -> list[Query]:
    """Queries for mean step reward 1 (margin 10): some below the skip threshold 1, some within 1 of each other."""
    queries = []
    for i in range(n):
        levels = rng.choice([0.005, 0.1, 0.2], size=k)  # per-step reward: returns around 0.05, 1 or 2
        spread = rng.choice([0.002, 0.06])
        queries.append(Query(start + i, tuple(clip(rng.normal(level, spread, H)) for level in levels)))
    return queries


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_builds_and_gives_valid_answers(name: str) -> None:
    teacher = make_teacher(name)
    assert isinstance(teacher, ScriptedTeacher) and teacher.name == name
    for key, value in PRESETS[name].items():
        assert getattr(teacher, key) == value
    rng = np.random.default_rng(13)
    kinds: Counter = Counter()
    for k in (2, 3, 4):
        qs = random_queries(rng, 200, k, start=1000 * k)
        answers = list(teacher.answer(qs, context(seed=k, mean_step_reward=1.0)))
        assert sorted(qid for qid, _ in answers) == [q.query_id for q in qs]  # each query exactly once
        by_id = {q.query_id: q for q in qs}
        for qid, answer in answers:
            checked = validate_answer(answer, by_id[qid], name)
            kinds[checked.kind] += 1
            if name == "oracle":
                returns = [c.true_return() for c in by_id[qid].clips]
                assert list(checked.ranking) == sorted(range(k), key=lambda i: -returns[i])
    expected = {"skip": "skip", "equal": "equal"}.get(name)
    assert set(kinds) == {"ranking"} | ({expected} if expected else set()), kinds


def test_preset_overrides_and_invalid_parameters() -> None:
    assert make_teacher("noisy", beta=2.0).beta == 2.0  # type: ignore[attr-defined]
    assert make_teacher("myopic", gamma="0.5").gamma == 0.5  # type: ignore[attr-defined]  # text from the CLI
    assert math.isinf(make_teacher("noisy", beta="inf").beta)  # type: ignore[attr-defined]
    assert preset("mistake", name="careless").name == "careless"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"beta": -1}, "beta"),
        ({"gamma": 0.0}, "gamma"),
        ({"gamma": 1.5}, "gamma"),
        ({"eps_mistake": 1.5}, "eps_mistake"),
        ({"eps_skip": float("nan")}, "eps_skip"),
        ({"eps_equal": "lots"}, "eps_equal"),
    ]
    for kwargs, word in cases:
        with pytest.raises(TeacherError, match=f"teacher 'noisy'.*{word}"):
            make_teacher("noisy", **kwargs)
    with pytest.raises(TeacherError, match="cannot build teacher 'oracle'.*bogus"):
        make_teacher("oracle", bogus=1)
    with pytest.raises(TeacherError, match="unknown scripted teacher 'nope'; presets: oracle"):
        preset("nope")


# ---------------------------------------------------------------- validate_answer
PAIR = query(1.0, 2.0, query_id=42)
TRIPLE = query(1.0, 2.0, 3.0, query_id=43)


@pytest.mark.parametrize(
    ("answer", "q", "message"),
    [
        (Answer.rank([0]), PAIR, "ranked 1 clips of query 42, which has 2"),
        (Answer.rank([0, 1, 2]), PAIR, "ranked 3 clips"),
        (Answer.rank([0, 1]), TRIPLE, "ranked 2 clips of query 43, which has 3"),
        (Answer.rank([0, 0]), PAIR, "duplicates"),
        (Answer.rank([2, 0, 2]), TRIPLE, "duplicates"),
        (Answer.rank([0, 2]), PAIR, "out-of-range"),
        (Answer.rank([-1, 0]), PAIR, "out-of-range"),
        (Answer("ranking", (0, float("nan"))), PAIR, "non-finite"),  # type: ignore[arg-type]
        (Answer("ranking", (np.float32("nan"), 1)), PAIR, "non-finite"),  # type: ignore[arg-type]
        (Answer("ranking", (0.0, 1.0)), PAIR, "non-integer"),  # type: ignore[arg-type]
        (Answer("ranking", (True, False)), PAIR, "non-integer"),
        (Answer("ranking", ("1", "0")), PAIR, "non-integer"),  # type: ignore[arg-type]
        (Answer("ranking", 1), PAIR, "not a sequence"),  # type: ignore[arg-type]
        (Answer("ranking", None), PAIR, "not a sequence"),  # type: ignore[arg-type]
        (Answer("equal", (0, 1)), PAIR, "carries no ranking"),
        (Answer("maybe"), PAIR, "unknown answer kind 'maybe'"),  # type: ignore[arg-type]
        ((0, 1), PAIR, "not an Answer"),
        (0, PAIR, "not an Answer"),
        (None, PAIR, "not an Answer"),
        ("equal", PAIR, "not an Answer"),
    ],
)
def test_validate_answer_rejects_with_the_teacher_name(answer: object, q: Query, message: str) -> None:
    with pytest.raises(TeacherError, match=r"teacher 'my-teacher'") as info:
        validate_answer(answer, q, "my-teacher")
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_validate_answer_accepts_and_normalises() -> None:
    assert validate_answer(Answer.prefer(1), PAIR, "t") == Answer("ranking", (1, 0))
    normalised = validate_answer(Answer("ranking", np.array([2, 0, 1])), TRIPLE, "t")  # type: ignore[arg-type]
    assert normalised == Answer("ranking", (2, 0, 1)) and all(type(i) is int for i in normalised.ranking)
    assert validate_answer(Answer("ranking", [np.int64(1), np.int32(0)]), PAIR, "t").ranking == (1, 0)  # type: ignore[arg-type]
    assert validate_answer(Answer.equal(), TRIPLE, "t") == Answer.equal()
    assert validate_answer(Answer.skip(), PAIR, "t") == Answer.skip()
    assert Answer.prefer(2, 4) == Answer("ranking", (2, 0, 1, 3))
