"""``pebble report``: result tables, paired comparisons and learning curves of a set of runs.

    pebble report runs/bench_jax runs/bench_torch --baseline backend=torch

Runs are found under the given folders (:func:`pebble.run_results.find_runs`) and grouped
by environment and by the settings that differ among them; the seed is the replicate
axis and :data:`IGNORED_LEAVES` do not split groups. Each group's final true return and
mean over evaluations are summarised by their mean and their interquartile mean (IQM) with
a 95% stratified-bootstrap interval from rliable (Agarwal et al., 2021, "Deep RL at the
edge of the statistical precipice"); ``--baseline`` adds per-seed paired differences.
The bootstrap seed is fixed (``--bootstrap-seed``), so the same runs give the same report.

Outputs in ``--out``: ``report.md``, ``report.csv`` (one row per group), ``report.json``
(the same numbers) and ``curves.png`` (IQM of the evaluation curve with its 95% band,
one panel per environment). rliable and matplotlib are imported only here, on use.
"""

from __future__ import annotations

import csv
import difflib
import json
import math
import textwrap
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pebble import config as cfg
from pebble.config import ConfigError
from pebble.run_results import RunRecord, find_runs

#: The replicate axis: runs that differ only in it form one group.
REPLICATE_LEAF = "seed"

#: Settings that do not change what is learned (where files go, how often the terminal, the
#: checkpoints and the videos are written, the labelling page's address, whether the human
#: teacher blocks, how many rows the diagnostic correlation uses, CPU threads): runs that
#: differ only in these are replicates of one another and are not split into groups.
IGNORED_LEAVES: tuple[str, ...] = (
    "run_dir",
    "exp_name",
    "log_interval",
    "checkpoint_freq",
    "checkpoint_buffer",
    "host",
    "port",
    "human_wait",
    "tb_videos",
    "correlation_rows",
    "threads",
)

#: Coverage of every interval in the report.
CONFIDENCE = 0.95

_INSTALL_HINT = 'pip install -e ".[report]"'


@dataclass
class Group:
    """The runs of one environment that share the grouping settings (``settings``)."""

    env: str
    label: str
    settings: dict[str, Any]
    runs: list[RunRecord]

    @property
    def seeds(self) -> list[int]:
        """The seeds of the runs, sorted (a seed run twice appears twice)."""
        return sorted(int(r.flat[REPLICATE_LEAF]) for r in self.runs)


@dataclass
class Estimate:
    """Mean and IQM of one value over a group's runs, with the IQM's 95% bootstrap interval."""

    mean: float
    iqm: float
    ci_low: float
    ci_high: float


@dataclass
class GroupStats:
    """The numbers of one group (``mean_over_evaluations`` is ``None`` if a run has no curve)."""

    env: str
    label: str
    settings: dict[str, Any]
    seeds: list[int]
    n: int
    labels_mean: float
    final_return: Estimate
    mean_over_evaluations: Estimate | None
    steps_per_second_mean: float
    runs: list[str]


@dataclass
class Difference:
    """Mean per-seed difference, its standard error and a 95% bootstrap interval of the mean."""

    mean: float
    se: float
    ci_low: float
    ci_high: float


@dataclass
class SeedPair:
    """One common seed of a group and its baseline: each side's value (the mean of its runs if the
    seed was run more than once; ``None`` where a run has no such value)."""

    seed: int
    final_return: float | None
    baseline_final_return: float | None
    mean_over_evaluations: float | None
    baseline_mean_over_evaluations: float | None
    seconds: float | None
    baseline_seconds: float | None


@dataclass
class Paired:
    """A group against its environment's baseline on their common seeds (``None``: fewer than 2)."""

    env: str
    label: str
    baseline: str
    common_seeds: list[int]
    final_return: Difference | None
    mean_over_evaluations: Difference | None
    per_seed: list[SeedPair] = field(default_factory=list)


@dataclass
class Report:
    """Everything ``pebble report`` writes, and the groups its curves are drawn from."""

    inputs: list[str]
    groups: list[Group]
    stats: list[GroupStats]
    paired: list[Paired]
    skipped: list[str]
    group_by: list[str] | None
    baseline: str | None
    baselines: dict[str, str]
    reps: int
    bootstrap_seed: int
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- grouping


def _value_key(value: Any) -> str:
    # lists (net_arch) and tables (algo_kwargs) are unhashable; their JSON text is not
    return json.dumps(value, sort_keys=True, default=str)


def format_value(value: Any) -> str:
    """How a setting's value is written in labels and the CSV (``True``, ``1000``, ``[256, 256]``)."""
    return json.dumps(value, sort_keys=True) if isinstance(value, dict) else str(value)


def _sort_key(value: Any) -> tuple[int, float, str]:
    # numbers in numeric order (500 before 1000), anything else by its text
    if isinstance(value, (bool, int, float)):
        return (0, float(value), "")
    return (1, 0.0, format_value(value))


def varying_leaves(runs: Sequence[RunRecord]) -> list[str]:
    """The settings whose values differ among ``runs``, alphabetically (never the env, the seed
    or one of :data:`IGNORED_LEAVES`)."""
    skip = {"env", REPLICATE_LEAF, *IGNORED_LEAVES}
    names = sorted(name for name, _ in cfg.flat_items(cfg.Config()) if name not in skip)
    return [name for name in names if len({_value_key(r.flat[name]) for r in runs}) > 1]


def resolve_fields(fields: Sequence[str]) -> list[str]:
    """``--group-by`` names as leaf names (an old alias maps to its leaf); unknown -> ConfigError."""
    leaves = {path[-1]: path[-1] for path, _ in cfg.leaf_fields()}
    leaves |= {alias: path[-1] for path, f in cfg.leaf_fields() for alias in f.metadata.get("aliases", ())}
    resolved: list[str] = []
    for name in fields:
        key = name.replace("-", "_")  # --group-by max-feedback reads like the flag
        if key not in leaves:
            close = difflib.get_close_matches(key, list(leaves), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"unknown --group-by field {name!r}{hint}")
        if leaves[key] not in resolved:
            resolved.append(leaves[key])
    return resolved


def group_label(env: str, settings: dict[str, Any]) -> str:
    """``HalfCheetah-v5 | max_feedback=1000, true_reward=False``; just the env without settings."""
    if not settings:
        return env
    return env + " | " + ", ".join(f"{k}={format_value(v)}" for k, v in settings.items())


def group_runs(runs: Sequence[RunRecord], group_by: Sequence[str] | None = None) -> list[Group]:
    """Group runs by env and by the settings that differ among that env's runs
    (:func:`varying_leaves`), or by env and exactly the ``group_by`` leaves (in that order);
    sorted by env, then by the settings' values."""
    fixed = None if group_by is None else [f for f in resolve_fields(group_by) if f != "env"]
    by_env: dict[str, list[RunRecord]] = {}
    for run in runs:
        by_env.setdefault(str(run.flat["env"]), []).append(run)
    groups: list[Group] = []
    for env in sorted(by_env):
        names = fixed if fixed is not None else varying_leaves(by_env[env])
        buckets: dict[tuple[str, ...], list[RunRecord]] = {}
        for run in by_env[env]:
            buckets.setdefault(tuple(_value_key(run.flat[n]) for n in names), []).append(run)
        for members in buckets.values():
            settings = {n: members[0].flat[n] for n in names}
            members.sort(key=lambda r: (r.flat[REPLICATE_LEAF], str(r.path)))
            groups.append(Group(env, group_label(env, settings), settings, members))
    groups.sort(key=lambda g: (g.env, [_sort_key(v) for v in g.settings.values()]))
    return groups


# ----------------------------------------------------------------------------- statistics


def _rliable() -> tuple[Any, Any]:
    """rliable's ``library`` and ``metrics``, or a one-line error saying how to install them."""
    try:
        from rliable import library, metrics
    except ImportError as exc:
        raise ConfigError(
            f"pebble report needs {exc.name or 'rliable'}, which is not installed: {_INSTALL_HINT}"
        ) from None
    return library, metrics


@contextmanager
def _seeded_global_numpy(seed: int) -> Iterator[None]:
    # rliable 1.2's StratifiedBootstrap draws its resamples with the global np.random.choice,
    # not with the random_state it is handed, so only seeding the global generator makes the
    # intervals reproducible; the caller's global stream is put back afterwards
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def bootstrap_interval(
    scores: np.ndarray, func: Callable[[np.ndarray], np.ndarray], reps: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(point, low, high) of ``func`` on ``scores`` (runs x tasks [x steps]) with rliable's 95%
    stratified percentile bootstrap. A fresh generator per call keeps a group's interval
    independent of which other groups are in the report."""
    rly, _ = _rliable()
    with _seeded_global_numpy(seed), warnings.catch_warnings():
        # rliable 1.2 hands arch a RandomState through arch's deprecated `random_state`
        # argument; the draws are the same, the warning would only be noise in the report
        warnings.filterwarnings("ignore", message="random_state is deprecated", category=FutureWarning)
        point, interval = rly.get_interval_estimates(
            {"x": scores},
            func,
            reps=reps,
            confidence_interval_size=CONFIDENCE,
            random_state=np.random.RandomState(seed),
        )
    return np.asarray(point["x"]), np.asarray(interval["x"][0]), np.asarray(interval["x"][1])


def iqm_estimate(values: Sequence[float], reps: int, seed: int) -> Estimate:
    """Mean, IQM and the IQM's 95% stratified-bootstrap interval of one value per run."""
    _, metrics = _rliable()
    scores = np.asarray(values, dtype=float).reshape(-1, 1)  # one task: (runs, 1)
    point, low, high = bootstrap_interval(scores, lambda x: np.array([metrics.aggregate_iqm(x)]), reps, seed)
    return Estimate(float(metrics.aggregate_mean(scores)), float(point[0]), float(low[0]), float(high[0]))


def mean_difference(diffs: Sequence[float], reps: int, seed: int) -> Difference:
    """Mean of paired differences, its standard error (std with ddof=1 over sqrt(n)) and the
    95% bootstrap interval of the mean; needs at least 2 differences."""
    _, metrics = _rliable()
    scores = np.asarray(diffs, dtype=float).reshape(-1, 1)
    point, low, high = bootstrap_interval(scores, lambda x: np.array([metrics.aggregate_mean(x)]), reps, seed)
    se = float(scores.std(ddof=1) / math.sqrt(len(scores)))
    return Difference(float(point[0]), se, float(low[0]), float(high[0]))


def _optional_estimate(values: Sequence[float | None], reps: int, seed: int) -> Estimate | None:
    present = [float(v) for v in values if v is not None]
    return iqm_estimate(present, reps, seed) if len(present) == len(values) else None


def summarize(group: Group, reps: int, seed: int) -> GroupStats:
    """The numbers of one group of finished runs."""
    finals = [r.final_return for r in group.runs]
    means = [r.mean_over_evaluations for r in group.runs]
    return GroupStats(
        env=group.env,
        label=group.label,
        settings=group.settings,
        seeds=group.seeds,
        n=len(group.runs),
        labels_mean=float(np.mean([r.labels for r in group.runs])),
        final_return=iqm_estimate([float(v) for v in finals if v is not None], reps, seed),
        # over all runs or not at all: an average over a subset would hide a different n
        mean_over_evaluations=_optional_estimate(means, reps, seed),
        steps_per_second_mean=float(np.mean([r.steps_per_second for r in group.runs])),
        runs=[str(r.path) for r in group.runs],
    )


def _label_items(label: str) -> set[str]:
    env, _, settings = label.partition(" | ")
    return {env, *settings.split(", ")} if settings else {env}


def select_baselines(groups: Sequence[Group], text: str) -> dict[str, Group]:
    """The baseline group of each env named by ``--baseline``: a whole label, else the groups
    that have ``text`` as one ``name=value`` of their label, else the labels that contain it;
    at most one group per env. None, or several in one env -> ConfigError listing them."""
    # a whole item first, so that max_feedback=100 does not also match max_feedback=1000
    matches = (
        [g for g in groups if g.label == text]
        or [g for g in groups if text in _label_items(g.label)]
        or [g for g in groups if text in g.label]
    )
    if not matches:
        labels = "; ".join(g.label for g in groups)
        raise ConfigError(f"--baseline {text!r} matches no group; the groups are: {labels}")
    chosen: dict[str, Group] = {}
    for g in matches:
        if g.env in chosen:
            both = "; ".join(m.label for m in matches if m.env == g.env)
            raise ConfigError(f"--baseline {text!r} is ambiguous, it matches: {both}")
        chosen[g.env] = g
    return chosen


def _per_seed(group: Group, value: Callable[[RunRecord], float | None]) -> dict[int, float]:
    # a seed run twice in a group (two folders) is paired through the mean of its runs
    by_seed: dict[int, list[float]] = {}
    for run in group.runs:
        v = value(run)
        if v is not None:
            by_seed.setdefault(int(run.flat[REPLICATE_LEAF]), []).append(float(v))
    return {s: float(np.mean(vs)) for s, vs in by_seed.items()}


def _paired_metric(
    group: Group, base: Group, value: Callable[[RunRecord], float | None], reps: int, seed: int
) -> Difference | None:
    mine, theirs = _per_seed(group, value), _per_seed(base, value)
    common = sorted(set(mine) & set(theirs))
    if len(common) < 2:
        return None
    return mean_difference([mine[s] - theirs[s] for s in common], reps, seed)


def seed_pairs(group: Group, base: Group) -> list[SeedPair]:
    """Both sides' final return, mean over evaluations and wall time on each common seed."""
    values: dict[str, Callable[[RunRecord], float | None]] = {
        "final_return": lambda r: r.final_return,
        "mean_over_evaluations": lambda r: r.mean_over_evaluations,
        "seconds": lambda r: r.seconds,
    }
    mine = {name: _per_seed(group, v) for name, v in values.items()}
    theirs = {name: _per_seed(base, v) for name, v in values.items()}
    pairs = []
    for s in sorted(set(group.seeds) & set(base.seeds)):
        sides = {name: mine[name].get(s) for name in values}
        sides |= {f"baseline_{name}": theirs[name].get(s) for name in values}
        pairs.append(SeedPair(seed=s, **sides))
    return pairs


def compare(group: Group, base: Group, reps: int, seed: int) -> Paired:
    """``group`` minus ``base``, seed by seed, for the final return and the mean over evaluations."""
    common = sorted(set(group.seeds) & set(base.seeds))
    return Paired(
        env=group.env,
        label=group.label,
        baseline=base.label,
        common_seeds=common,
        final_return=_paired_metric(group, base, lambda r: r.final_return, reps, seed),
        mean_over_evaluations=_paired_metric(group, base, lambda r: r.mean_over_evaluations, reps, seed),
        per_seed=seed_pairs(group, base),
    )


def _notes(groups: Sequence[Group], group_by: Sequence[str] | None) -> list[str]:
    notes: list[str] = []
    for g in groups:
        if group_by is not None:  # merged runs that differ in more than the named fields
            extra = [n for n in varying_leaves(g.runs) if n not in g.settings]
            if extra:
                notes.append(f"{g.label}: its runs also differ in {', '.join(extra)}")
        if len(set(g.seeds)) < len(g.seeds):
            notes.append(f"{g.label}: a seed was run more than once; paired differences use the mean of its runs")
        if any(r.mean_over_evaluations is None for r in g.runs):
            notes.append(f"{g.label}: a run has no eval/true_return curve, so no mean over evaluations")
    return notes


def _paired_notes(others: Sequence[Group], bases: dict[str, Group], group_by: Sequence[str] | None) -> list[str]:
    # with --group-by, a group and its baseline may differ in more than the named fields
    if group_by is None:
        return []
    notes = []
    for g in others:
        extra = [n for n in varying_leaves([*g.runs, *bases[g.env].runs]) if n not in g.settings]
        if extra:
            notes.append(f"{g.label} and its baseline also differ in {', '.join(extra)}")
    return notes


def make_report(
    runs: Sequence[RunRecord],
    inputs: Sequence[str],
    group_by: Sequence[str] | None = None,
    baseline: str | None = None,
    reps: int = 2000,
    bootstrap_seed: int = 0,
) -> Report:
    """Group the finished runs, summarise each group and, with ``baseline``, compare the others with it."""
    finished = [r for r in runs if r.finished]
    skipped = [str(r.path) for r in runs if not r.finished]
    if not finished:
        raise ConfigError(f"no finished run (with summary.json) in {', '.join(inputs)}")
    groups = group_runs(finished, group_by)
    bases = {} if baseline is None else select_baselines(groups, baseline)  # bad input fails before the bootstrap
    stats = [summarize(g, reps, bootstrap_seed) for g in groups]
    others = [g for g in groups if g.env in bases and g is not bases[g.env]]
    paired = [compare(g, bases[g.env], reps, bootstrap_seed) for g in others]
    fields = None if group_by is None else resolve_fields(group_by)
    return Report(
        inputs=list(inputs),
        groups=groups,
        stats=stats,
        paired=paired,
        skipped=skipped,
        group_by=fields,
        baseline=baseline,
        baselines={env: g.label for env, g in bases.items()},
        reps=reps,
        bootstrap_seed=bootstrap_seed,
        notes=_notes(groups, fields) + _paired_notes(others, bases, fields),
    )


# ----------------------------------------------------------------------------- Markdown


def _num(value: float | None) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.1f}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")  # a label's "|" would end the table cell


def seed_text(seeds: Sequence[int]) -> str:
    """Seeds with runs of consecutive ones shortened: ``0-3, 7``."""
    spans: list[list[int]] = []
    for s in sorted(set(seeds)):
        if spans and s == spans[-1][1] + 1:
            spans[-1][1] = s
        else:
            spans.append([s, s])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def _iqm_cell(e: Estimate | None) -> str:
    return "—" if e is None else f"{e.iqm:.1f} [{e.ci_low:.1f}, {e.ci_high:.1f}]"


GROUP_HEADER = (
    "| group | seeds | n | labels | final return: mean | final return: IQM [95% CI] "
    "| mean over evaluations: mean | mean over evaluations: IQM [95% CI] | steps/s |\n"
    "|---|---|--:|--:|--:|--:|--:|--:|--:|"
)

PAIRED_HEADER = (
    "| group | baseline | common seeds | final return: Δ ± SE | final return: Δ 95% CI "
    "| mean over evaluations: Δ ± SE | mean over evaluations: Δ 95% CI |\n"
    "|---|---|---|--:|--:|--:|--:|"
)


def _group_row(s: GroupStats) -> str:
    moe = s.mean_over_evaluations
    cells = [_cell(s.label), seed_text(s.seeds), str(s.n), _num(s.labels_mean), _num(s.final_return.mean)]
    cells += [_iqm_cell(s.final_return), _num(moe.mean if moe else None), _iqm_cell(moe), _num(s.steps_per_second_mean)]
    return "| " + " | ".join(cells) + " |"


def _diff_cells(d: Difference | None, common: Sequence[int]) -> list[str]:
    if d is None:
        return [f"fewer than 2 common seeds ({len(set(common))})", "—"]
    return [f"{d.mean:+.1f} ± {d.se:.1f}", f"[{d.ci_low:+.1f}, {d.ci_high:+.1f}]"]


def _paired_row(p: Paired) -> str:
    cells = [_cell(p.label), _cell(p.baseline), seed_text(p.common_seeds) or "none"]
    cells += _diff_cells(p.final_return, p.common_seeds) + _diff_cells(p.mean_over_evaluations, p.common_seeds)
    return "| " + " | ".join(cells) + " |"


PER_SEED_HEADER = (
    "| group | seed | final return: baseline | final return: group | final return: Δ "
    "| mean over evaluations: baseline | mean over evaluations: group | mean over evaluations: Δ "
    "| wall time: group / baseline |\n"
    "|---|--:|--:|--:|--:|--:|--:|--:|--:|"
)


def _delta(mine: float | None, theirs: float | None) -> str:
    return "—" if mine is None or theirs is None else f"{mine - theirs:+.1f}"


def _ratio(mine: float | None, theirs: float | None) -> str:
    return "—" if mine is None or not theirs else f"{mine / theirs:.2f}x"


def _per_seed_row(p: Paired, s: SeedPair) -> str:
    cells = [_cell(p.label), str(s.seed), _num(s.baseline_final_return), _num(s.final_return)]
    cells += [_delta(s.final_return, s.baseline_final_return), _num(s.baseline_mean_over_evaluations)]
    cells += [_num(s.mean_over_evaluations), _delta(s.mean_over_evaluations, s.baseline_mean_over_evaluations)]
    cells.append(_ratio(s.seconds, s.baseline_seconds))
    return "| " + " | ".join(cells) + " |"


def _paired_section(report: Report) -> list[str]:
    lines = [f"## Paired differences (group − baseline, seed by seed), --baseline {report.baseline!r}", ""]
    if report.paired:
        lines += [PAIRED_HEADER, *(_paired_row(p) for p in report.paired), ""]
    else:
        lines += ["No other group shares an environment with the baseline.", ""]
    explanation = (
        "Δ: mean over the common seeds of (group − baseline); SE: standard deviation of the differences "
        "(ddof=1) / √n; 95% CI: stratified bootstrap of the mean difference."
    )
    lines += [explanation, ""]
    rows = [_per_seed_row(p, s) for p in report.paired for s in p.per_seed]
    if rows:
        lines += ["### Per seed", "", PER_SEED_HEADER, *rows, ""]
        lines += ["A seed run more than once shows the mean of its runs; wall time: the runs' total seconds.", ""]
    return lines


def to_markdown(report: Report) -> str:
    """``report.md``: a table per env, the paired table with ``--baseline``, notes and the inputs line."""
    lines = ["# pebble report", ""]
    for env in dict.fromkeys(s.env for s in report.stats):
        lines += [f"## {env}", "", GROUP_HEADER, *(_group_row(s) for s in report.stats if s.env == env), ""]
    if report.baseline is not None:
        lines += _paired_section(report)
    lines += [f"Note: {n}" for n in report.notes] + ([""] if report.notes else [])
    used = sum(s.n for s in report.stats)
    lines.append(
        f"Inputs: {', '.join(report.inputs)}. Runs used: {used} in {len(report.stats)} "
        f"group{'s' if len(report.stats) != 1 else ''}; "
        f"left out: {len(report.skipped)} unfinished (no summary.json). "
        f"IQM: mean of the middle 50% of runs; intervals: {CONFIDENCE:.0%} stratified percentile bootstrap "
        f"(rliable), {report.reps} reps, seed {report.bootstrap_seed}."
    )
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- CSV and JSON

#: The CSV's columns after ``env``, ``label`` and one column per grouping setting.
CSV_COLUMNS = (
    "seeds",
    "n",
    "labels_mean",
    "final_return_mean",
    "final_return_iqm",
    "final_return_iqm_ci_low",
    "final_return_iqm_ci_high",
    "mean_over_evaluations_mean",
    "mean_over_evaluations_iqm",
    "mean_over_evaluations_iqm_ci_low",
    "mean_over_evaluations_iqm_ci_high",
    "steps_per_second_mean",
    "baseline",
    "common_seeds",
    "final_return_diff",
    "final_return_diff_se",
    "final_return_diff_ci_low",
    "final_return_diff_ci_high",
    "mean_over_evaluations_diff",
    "mean_over_evaluations_diff_se",
    "mean_over_evaluations_diff_ci_low",
    "mean_over_evaluations_diff_ci_high",
)


def _estimate_columns(prefix: str, e: Estimate | None) -> dict[str, Any]:
    values = (None, None, None, None) if e is None else (e.mean, e.iqm, e.ci_low, e.ci_high)
    return {prefix + n: ("" if v is None else v) for n, v in zip(("mean", "iqm", "iqm_ci_low", "iqm_ci_high"), values)}


def _difference_columns(prefix: str, d: Difference | None) -> dict[str, Any]:
    values = (None, None, None, None) if d is None else (d.mean, d.se, d.ci_low, d.ci_high)
    return {
        prefix + n: ("" if v is None else v) for n, v in zip(("diff", "diff_se", "diff_ci_low", "diff_ci_high"), values)
    }


def _csv_row(s: GroupStats, report: Report, paired: dict[str, Paired]) -> dict[str, Any]:
    row: dict[str, Any] = {"env": s.env, "label": s.label, **{k: format_value(v) for k, v in s.settings.items()}}
    row |= {"seeds": " ".join(map(str, s.seeds)), "n": s.n, "labels_mean": s.labels_mean}
    row |= _estimate_columns("final_return_", s.final_return)
    row |= _estimate_columns("mean_over_evaluations_", s.mean_over_evaluations)
    row["steps_per_second_mean"] = s.steps_per_second_mean
    row["baseline"] = report.baselines.get(s.env, "")
    p = paired.get(s.label)
    if p is not None:
        row["common_seeds"] = " ".join(map(str, p.common_seeds))
        row |= _difference_columns("final_return_", p.final_return)
        row |= _difference_columns("mean_over_evaluations_", p.mean_over_evaluations)
    return row


def write_csv(report: Report, path: Path) -> None:
    """``report.csv``: one row per group; empty cells where a number does not apply."""
    setting_columns = list(dict.fromkeys(n for s in report.stats for n in s.settings))
    paired = {p.label: p for p in report.paired}
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["env", "label", *setting_columns, *CSV_COLUMNS], restval="")
        writer.writeheader()
        for s in report.stats:
            writer.writerow(_csv_row(s, report, paired))


def to_json(report: Report) -> dict[str, Any]:
    """``report.json``: the numbers of the tables, the inputs and the bootstrap settings."""
    return {
        "inputs": report.inputs,
        "runs_used": sum(s.n for s in report.stats),
        "runs_skipped_unfinished": report.skipped,
        "group_by": report.group_by,
        "ignored_leaves": list(IGNORED_LEAVES),
        "bootstrap": {
            "method": "stratified percentile bootstrap (rliable)",
            "confidence": CONFIDENCE,
            "reps": report.reps,
            "seed": report.bootstrap_seed,
        },
        "baseline": report.baseline,
        "baselines": report.baselines,
        "groups": [asdict(s) for s in report.stats],
        "paired": [asdict(p) for p in report.paired],
        "notes": report.notes,
    }


# ----------------------------------------------------------------------------- curves


def common_curve(group: Group) -> tuple[list[int], np.ndarray]:
    """The evaluation steps every run of the group has, and the returns there as (runs, 1, steps)."""
    steps = sorted(set.intersection(*(set(r.eval_steps) for r in group.runs)))
    rows = [[dict(zip(r.eval_steps, r.eval_returns))[s] for s in steps] for r in group.runs]
    return steps, np.asarray(rows, dtype=float).reshape(len(group.runs), 1, len(steps))


def iqm_per_step(scores: np.ndarray) -> np.ndarray:
    """IQM over runs and tasks at each step of ``scores`` (runs x tasks x steps).

    rliable's ``metrics.aggregate_iqm`` is scipy's ``trim_mean(scores, 0.25, axis=None)``;
    taking it along the run axis gives every step in one call instead of one per step, which
    matters because the bootstrap calls this ``reps`` times per group.
    """
    from scipy.stats import trim_mean

    return np.asarray(trim_mean(scores.reshape(-1, scores.shape[-1]), proportiontocut=0.25, axis=0))


def _plot_env(ax: Any, groups: Sequence[Group], reps: int, seed: int, colors: Sequence[Any]) -> None:
    from rliable import plot_utils  # checked by plot_curves

    drawn = 0
    for group, color in zip(groups, colors):
        steps, scores = common_curve(group)
        if not steps:
            continue
        point, low, high = bootstrap_interval(scores, iqm_per_step, reps, seed)
        # the panel's title is the env; long settings lists are wrapped to keep the legend narrow
        name = textwrap.fill(f"{group.label.partition(' | ')[2] or 'all runs'} (n={len(group.runs)})", 60)
        plot_utils.plot_sample_efficiency_curve(
            steps, {name: point}, {name: (low, high)}, algorithms=[name], colors={name: color}, ax=ax,
            xlabel="environment steps", ylabel="IQM true return", labelsize="medium", ticklabelsize="small",
        )  # fmt: skip
        drawn += 1
    ax.set_title(groups[0].env)
    if drawn:  # below the panel, where it cannot hide a curve
        ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.15), frameon=False)
    else:
        ax.text(0.5, 0.5, "no eval/true_return curve", ha="center", va="center", transform=ax.transAxes)


def plot_curves(groups: Sequence[Group], path: Path, reps: int, seed: int) -> None:
    """``curves.png``: per env, each group's IQM true return at the evaluation steps all its runs
    have, with the 95% stratified-bootstrap band."""
    try:
        import matplotlib
        from matplotlib.figure import Figure
        from rliable import plot_utils  # noqa: F401  (needs seaborn too)
    except ImportError as exc:
        raise ConfigError(
            f"curves.png needs {exc.name or 'matplotlib'}, which is not installed (or pass --no-plot): {_INSTALL_HINT}"
        ) from None
    envs = list(dict.fromkeys(g.env for g in groups))
    cols = min(3, len(envs))
    rows = math.ceil(len(envs) / cols)
    # a Figure without pyplot: no global state, no GUI backend, nothing left open
    fig = Figure(figsize=(6.4 * cols, 6.0 * rows), layout="constrained")  # constrained: makes room for the legends
    axes = fig.subplots(rows, cols, squeeze=False).flatten()
    palette = matplotlib.color_sequences["tab10"]
    for ax, env in zip(axes, envs):
        mine = [g for g in groups if g.env == env]
        _plot_env(ax, mine, reps, seed, [palette[i % len(palette)] for i in range(len(mine))])
    for ax in axes[len(envs) :]:
        ax.set_visible(False)
    fig.savefig(path, dpi=120, bbox_inches="tight")


# ----------------------------------------------------------------------------- command line


def _parser() -> Any:
    from pebble.cli import OneLineParser

    parser = OneLineParser(
        prog="pebble report",
        description="Tables (mean, IQM with 95% bootstrap CI), paired comparisons and learning curves of runs.",
    )
    parser.add_argument("paths", nargs="+", help="run folders, or folders to search for run folders")
    parser.add_argument("--out", default="runs/report", help="output folder (default: runs/report)")
    parser.add_argument(
        "--group-by",
        nargs="+",
        metavar="FIELD",
        help="group by env and exactly these settings (default: the settings that differ among the runs, "
        f"except seed and {', '.join(IGNORED_LEAVES)})",
    )
    parser.add_argument(
        "--baseline",
        metavar="LABEL",
        help="compare every group with this one, seed by seed: a group label, one name=value of a label, "
        "or a part of a label; it may pick one group in each env, never two in one",
    )
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap replications (default: 2000)")
    parser.add_argument("--bootstrap-seed", type=int, default=0, help="seed of the bootstrap (default: 0)")
    parser.add_argument("--no-plot", action="store_true", help="do not draw curves.png")
    return parser


def write_outputs(report: Report, out: Path, plot: bool = True) -> list[Path]:
    """Write report.md, report.csv, report.json and (with ``plot``) curves.png into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "report.md", out / "report.csv", out / "report.json"]
    paths[0].write_text(to_markdown(report))
    write_csv(report, paths[1])
    paths[2].write_text(json.dumps(to_json(report), indent=2) + "\n")
    if plot:
        paths.append(out / "curves.png")
        plot_curves(report.groups, paths[-1], report.reps, report.bootstrap_seed)
    return paths


def main(argv: list[str]) -> int:
    """``pebble report PATH [PATH ...] [--out DIR] [--group-by FIELD ...] [--baseline LABEL] ...``;
    bad input raises UsageError or ConfigError (one line) for the caller to print."""
    from pebble.cli import UsageError

    args = _parser().parse_args(argv)
    if args.reps < 1:
        raise UsageError(f"pebble report: --reps must be positive, got {args.reps}")
    if args.bootstrap_seed < 0:
        raise UsageError(f"pebble report: --bootstrap-seed must be >= 0, got {args.bootstrap_seed}")
    runs = find_runs(args.paths)
    report = make_report(runs, args.paths, args.group_by, args.baseline, args.reps, args.bootstrap_seed)
    written = write_outputs(report, Path(args.out), plot=not args.no_plot)
    print(to_markdown(report), end="")
    if report.skipped:
        print(f"note: left out {len(report.skipped)} unfinished run(s) (no summary.json): {', '.join(report.skipped)}")
    for path in written:
        print(f"wrote {path}")
    return 0
