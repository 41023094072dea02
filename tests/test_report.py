"""pebble report and pebble.run_results on fake run folders (config.json, summary.json, tb/): no training."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pebble import report, run_results
from pebble.cli import UsageError
from pebble.config import Config, ConfigError, override, save
from pebble.run_results import eval_curve, find_runs, load_run

REPS = 200  # enough for the interval to exist; the default 2000 only makes it steadier


def make_run(
    root: Path,
    name: str,
    seed: int,
    curve: list[float],
    final: float | None = None,
    finished: bool = True,
    labels: int = 1000,
    sps: float = 50.0,
    **settings: Any,
) -> Path:
    """A run folder as pebble train leaves it; evaluations every 1000 steps, ``final`` defaults to
    the last evaluation (values are whole numbers so TensorBoard's float32 keeps them exact)."""
    from torch.utils.tensorboard import SummaryWriter

    run = root / name
    run.mkdir(parents=True)
    save(override(Config(), seed=seed, **settings), run / "config.json")
    writer = SummaryWriter(str(run / "tb"))
    for i, value in enumerate(curve):
        writer.add_scalar("eval/true_return", value, (i + 1) * 1000)
    writer.close()
    if finished:
        summary = {
            "final_eval_return": curve[-1] if final is None else final,
            "steps": len(curve) * 1000,
            "seconds": len(curve) * 1000 / sps,
            "steps_per_second": sps,
            "queries_asked": labels,
            "labels": labels,
            "timings": {},
        }
        (run / "summary.json").write_text(json.dumps(summary))
    return run


def build(paths: list[Path], **kwargs: Any) -> report.Report:
    kwargs.setdefault("reps", REPS)
    return report.make_report(find_runs(paths), [str(p) for p in paths], **kwargs)


@pytest.fixture
def two_budgets(tmp_path: Path) -> Path:
    """2 seeds x 2 label budgets; one run also differs in threads and log_interval."""
    for budget in (1000, 500):
        for seed in (1, 0):
            extra: dict[str, Any] = {"threads": 2, "log_interval": 100} if (budget, seed) == (500, 1) else {}
            curve = [float(seed), float(budget + seed)]
            make_run(tmp_path, f"b{budget}_s{seed}", seed, curve, labels=budget, max_feedback=budget, **extra)
    return tmp_path


# ----------------------------------------------------------------------------- grouping


def test_groups_by_differing_settings_ignoring_seed_threads_and_log_interval(two_budgets: Path) -> None:
    groups = report.group_runs(find_runs([two_budgets]))
    assert [g.label for g in groups] == ["HalfCheetah-v5 | max_feedback=500", "HalfCheetah-v5 | max_feedback=1000"]
    assert [g.seeds for g in groups] == [[0, 1], [0, 1]]
    assert [g.settings for g in groups] == [{"max_feedback": 500}, {"max_feedback": 1000}]


def test_label_is_the_env_alone_when_nothing_differs(tmp_path: Path) -> None:
    for seed in range(3):
        make_run(tmp_path, f"s{seed}", seed, [1.0], env="Hopper-v5", exp_name=f"name{seed}")
    (group,) = report.group_runs(find_runs([tmp_path]))
    assert (group.label, group.env, group.seeds) == ("Hopper-v5", "Hopper-v5", [0, 1, 2])


def test_label_names_every_differing_setting_and_envs_apart(tmp_path: Path) -> None:
    make_run(tmp_path, "a", 0, [1.0], max_feedback=100, true_reward=False)
    make_run(tmp_path, "b", 0, [1.0], max_feedback=200, true_reward=True)
    make_run(tmp_path, "c", 0, [1.0], env="Hopper-v5", max_feedback=300)
    labels = [g.label for g in report.group_runs(find_runs([tmp_path]))]
    # per env: Hopper has one setting, so nothing differs there
    assert labels == [
        "HalfCheetah-v5 | max_feedback=100, true_reward=False",
        "HalfCheetah-v5 | max_feedback=200, true_reward=True",
        "Hopper-v5",
    ]


def test_group_by_uses_exactly_the_named_fields(tmp_path: Path) -> None:
    for budget in (500, 1000):
        for unsup in (0, 100):
            make_run(tmp_path, f"b{budget}_u{unsup}", 0, [1.0], max_feedback=budget, unsup_steps=unsup)
    rep = build([tmp_path], group_by=["max-feedback"])
    assert [g.label for g in rep.groups] == ["HalfCheetah-v5 | max_feedback=500", "HalfCheetah-v5 | max_feedback=1000"]
    assert [g.n for g in rep.stats] == [2, 2]
    assert any("also differ in unsup_steps" in note for note in rep.notes)
    rep = build([tmp_path], group_by=["max_feedback"], baseline="max_feedback=500")
    assert "HalfCheetah-v5 | max_feedback=1000 and its baseline also differ in unsup_steps" in rep.notes
    assert [g.label for g in report.group_runs(find_runs([tmp_path]), ["env"])] == ["HalfCheetah-v5"]
    assert len(report.group_runs(find_runs([tmp_path]))) == 4


def test_find_runs_searches_subfolders_and_counts_a_run_once(tmp_path: Path) -> None:
    make_run(tmp_path / "deep" / "er", "r0", 0, [1.0])
    make_run(tmp_path, "r1", 1, [1.0])
    runs = find_runs([tmp_path, tmp_path / "r1"])
    assert sorted(r.path.name for r in runs) == ["r0", "r1"]


# ----------------------------------------------------------------------------- numbers


def test_mean_iqm_and_mean_over_evaluations_against_hand_computation(tmp_path: Path) -> None:
    finals = [10.0, -40.0, 30.0, 1000.0, 20.0, 50.0, 0.0, 60.0]
    curves = [[float(i), float(3 * i), f] for i, f in enumerate(finals)]
    for seed, curve in enumerate(curves):
        make_run(tmp_path, f"s{seed}", seed, curve, sps=10.0 + seed, labels=100 * seed)
    (stats,) = build([tmp_path]).stats
    assert stats.seeds == list(range(8)) and stats.n == 8
    assert stats.final_return.mean == pytest.approx(np.mean(finals))
    assert stats.final_return.iqm == pytest.approx(np.mean(sorted(finals)[2:6]))  # middle 4 of 8
    means = [np.mean(c) for c in curves]
    assert stats.mean_over_evaluations is not None
    assert stats.mean_over_evaluations.mean == pytest.approx(np.mean(means))
    assert stats.mean_over_evaluations.iqm == pytest.approx(np.mean(sorted(means)[2:6]))
    assert stats.steps_per_second_mean == pytest.approx(np.mean([10.0 + s for s in range(8)]))
    assert stats.labels_mean == pytest.approx(350.0)
    for e in (stats.final_return, stats.mean_over_evaluations):
        assert e.ci_low <= e.iqm <= e.ci_high and e.ci_low < e.ci_high


def test_bootstrap_is_reproducible_and_seeded(tmp_path: Path) -> None:
    values = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0]
    first = report.iqm_estimate(values, REPS, seed=0)
    assert report.iqm_estimate(values, REPS, seed=0) == first
    others = [report.iqm_estimate(values, REPS, seed=s) for s in (1, 2, 3)]
    assert any((o.ci_low, o.ci_high) != (first.ci_low, first.ci_high) for o in others)


def test_bootstrap_leaves_the_global_numpy_stream_alone() -> None:
    np.random.seed(123)
    expected = np.random.rand()
    np.random.seed(123)
    report.iqm_estimate([1.0, 2.0, 3.0], REPS, seed=0)
    assert np.random.rand() == expected


def test_baseline_prefers_a_whole_label_item_then_a_substring() -> None:
    groups = [
        report.Group(env, report.group_label(env, {"max_feedback": m}), {"max_feedback": m}, [])
        for env in ("A-v0", "B-v0")
        for m in (100, 1000)
    ]
    chosen = report.select_baselines(groups, "max_feedback=100")  # not also max_feedback=1000
    assert {env: g.label for env, g in chosen.items()} == {
        "A-v0": "A-v0 | max_feedback=100",
        "B-v0": "B-v0 | max_feedback=100",
    }
    assert list(report.select_baselines(groups, "B-v0 | max_feedback=1000")) == ["B-v0"]
    assert [g.label for g in report.select_baselines(groups, "feedback=1000").values()] == [  # substrings
        "A-v0 | max_feedback=1000",
        "B-v0 | max_feedback=1000",
    ]
    with pytest.raises(ConfigError, match="ambiguous"):
        report.select_baselines(groups, "max_feedback=10")


def test_paired_difference_and_standard_error(tmp_path: Path) -> None:
    base = {0: [0.0, 100.0], 1: [10.0, 300.0], 2: [20.0, 200.0]}
    new = {0: [5.0, 250.0], 1: [40.0, 330.0], 2: [10.0, 500.0], 3: [7.0, 900.0]}
    for seed, curve in base.items():
        make_run(tmp_path, f"base{seed}", seed, curve, true_reward=True, labels=0)
    for seed, curve in new.items():
        make_run(tmp_path, f"new{seed}", seed, curve)
    make_run(tmp_path, "lonely", 2, [1.0, 2.0], max_feedback=7)  # one common seed only
    rep = build([tmp_path], baseline="true_reward=True")
    assert rep.baselines == {"HalfCheetah-v5": "HalfCheetah-v5 | max_feedback=1000, true_reward=True"}
    by_label = {p.label: p for p in rep.paired}
    p = by_label["HalfCheetah-v5 | max_feedback=1000, true_reward=False"]
    assert p.common_seeds == [0, 1, 2]
    for metric, value in (("final_return", lambda c: c[-1]), ("mean_over_evaluations", np.mean)):
        diff = np.array([value(new[s]) - value(base[s]) for s in (0, 1, 2)])
        got = getattr(p, metric)
        assert got.mean == pytest.approx(diff.mean())
        assert got.se == pytest.approx(diff.std(ddof=1) / np.sqrt(3))
        assert got.ci_low <= got.mean <= got.ci_high
    lonely = by_label["HalfCheetah-v5 | max_feedback=7, true_reward=False"]
    assert lonely.common_seeds == [2] and lonely.final_return is None and lonely.mean_over_evaluations is None
    assert "fewer than 2 common seeds (1)" in report.to_markdown(rep)


def test_per_seed_listing_gives_both_sides_of_each_common_seed(tmp_path: Path) -> None:
    make_run(tmp_path, "base0", 0, [0.0, 100.0], sps=50.0, true_reward=True, labels=0)
    make_run(tmp_path, "base1", 1, [10.0, 300.0], sps=50.0, true_reward=True, labels=0)
    make_run(tmp_path, "new0", 0, [5.0, 250.0], sps=25.0)
    make_run(tmp_path, "new1a", 1, [40.0, 330.0], sps=50.0)
    make_run(tmp_path, "new1b", 1, [20.0, 310.0], sps=50.0)  # seed 1 twice: its mean is listed
    make_run(tmp_path, "new2", 2, [7.0, 900.0])  # no baseline run: not listed
    (p,) = build([tmp_path], baseline="true_reward=True").paired
    assert [s.seed for s in p.per_seed] == [0, 1]
    s0, s1 = p.per_seed
    assert (s0.final_return, s0.baseline_final_return) == (250.0, 100.0)
    assert (s0.mean_over_evaluations, s0.baseline_mean_over_evaluations) == (127.5, 50.0)
    assert s0.seconds == pytest.approx(2 * s0.baseline_seconds)  # half the steps per second, same steps
    assert (s1.final_return, s1.mean_over_evaluations) == (320.0, 175.0)
    # the listing and the paired mean agree: the mean of the per-seed differences is the Δ
    assert p.final_return is not None
    assert p.final_return.mean == pytest.approx(np.mean([250.0 - 100.0, 320.0 - 300.0]))
    md = report.to_markdown(build([tmp_path], baseline="true_reward=True"))
    assert "| 0 | 100.0 | 250.0 | +150.0 | 50.0 | 127.5 | +77.5 | 2.00x |" in md
    assert "| 1 | 300.0 | 320.0 | +20.0 | 155.0 | 175.0 | +20.0 | 1.00x |" in md


def test_iqm_per_step_matches_rliable_aggregate_iqm() -> None:
    from rliable import metrics

    scores = np.random.default_rng(0).normal(size=(7, 1, 5))
    expected = [metrics.aggregate_iqm(scores[..., j]) for j in range(5)]
    np.testing.assert_allclose(report.iqm_per_step(scores), expected)


def test_seed_text_shortens_consecutive_seeds() -> None:
    assert report.seed_text([3, 0, 1, 2, 7, 9, 10]) == "0-3, 7, 9-10"
    assert report.seed_text([]) == ""


def test_eval_curve_keeps_the_last_value_of_a_step(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(tmp_path / "tb"))
    for step, value in ((2000, 2.0), (1000, 1.0), (2000, 5.0)):
        writer.add_scalar("eval/true_return", value, step)
    writer.close()
    assert eval_curve(tmp_path) == ([1000, 2000], [1.0, 5.0])
    assert eval_curve(tmp_path, tag="eval/other") == ([], [])
    assert eval_curve(tmp_path / "nowhere") == ([], [])


# ----------------------------------------------------------------------------- unfinished runs and outputs


def test_unfinished_runs_are_left_out_and_counted(two_budgets: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_run(two_budgets, "cut_off", 5, [1.0], finished=False, max_feedback=1000)
    assert not load_run(two_budgets / "cut_off").finished
    rep = build([two_budgets])
    assert rep.skipped == [str(two_budgets / "cut_off")] and sum(s.n for s in rep.stats) == 4
    assert "left out: 1 unfinished" in report.to_markdown(rep)
    assert report.main([str(two_budgets), "--out", str(two_budgets / "out"), "--reps", "50", "--no-plot"]) == 0
    assert "left out 1 unfinished run(s)" in capsys.readouterr().out


def test_main_writes_markdown_csv_json_and_png(two_budgets: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = two_budgets.parent / "report_out"
    argv = [str(two_budgets), "--out", str(out), "--reps", "50", "--baseline", "max_feedback=500"]
    assert report.main(argv) == 0
    printed = capsys.readouterr().out
    for name in ("report.md", "report.csv", "report.json", "curves.png"):
        assert (out / name).stat().st_size > 0 and f"wrote {out / name}" in printed
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "report.md").read_text()
    assert md in printed and "| HalfCheetah-v5 \\| max_feedback=500 | 0-1 | 2 |" in md
    assert "## Paired differences" in md
    with (out / "report.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["label"] for r in rows] == ["HalfCheetah-v5 | max_feedback=500", "HalfCheetah-v5 | max_feedback=1000"]
    assert list(rows[0])[:3] == ["env", "label", "max_feedback"] and list(rows[0])[3:] == list(report.CSV_COLUMNS)
    assert [r["max_feedback"] for r in rows] == ["500", "1000"] and rows[0]["seeds"] == "0 1"
    assert float(rows[1]["final_return_mean"]) == pytest.approx(np.mean([1000.0, 1001.0]))
    assert rows[0]["final_return_diff"] == "" and float(rows[1]["final_return_diff"]) == pytest.approx(500.0)
    data = json.loads((out / "report.json").read_text())
    assert [g["label"] for g in data["groups"]] == [r["label"] for r in rows]
    assert data["groups"][1]["final_return"]["iqm"] == pytest.approx(float(rows[1]["final_return_iqm"]))
    assert data["runs_used"] == 4 and data["bootstrap"]["reps"] == 50 and len(data["paired"]) == 1


def test_curves_have_a_panel_per_env_and_skip_groups_without_a_curve(tmp_path: Path) -> None:
    for seed in (0, 1):
        make_run(tmp_path / "runs", f"c{seed}", seed, [1.0, 2.0, 3.0])
        make_run(tmp_path / "runs", f"h{seed}", seed, [], final=5.0, env="Hopper-v5")  # never evaluated
    rep = build([tmp_path / "runs"])
    assert [s.mean_over_evaluations is None for s in rep.stats] == [False, True]
    assert any("no eval/true_return curve" in note for note in rep.notes)
    report.plot_curves(rep.groups, tmp_path / "curves.png", REPS, seed=0)
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_heavy_libraries_are_imported_only_inside_functions() -> None:
    """pebble train imports neither rliable nor matplotlib: report and run_results import them on use."""
    import ast

    for module in (report, run_results):
        tree = ast.parse(Path(module.__file__ or "").read_text())
        top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        names = {a.name for n in top if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module or "" for n in top if isinstance(n, ast.ImportFrom)}
        heavy = {n for n in names if n.split(".")[0] in ("rliable", "matplotlib", "scipy", "seaborn", "tensorboard")}
        assert not heavy, f"{module.__name__} imports {heavy} at module level"


# ----------------------------------------------------------------------------- bad input


def _one_line_error(exc_type: type[Exception], argv: list[str]) -> str:
    with pytest.raises(exc_type) as info:
        report.main(argv)
    message = str(info.value)
    assert message and "\n" not in message
    return message


def test_bad_input_gives_one_line_errors(two_budgets: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    out = ["--out", str(two_budgets / "out"), "--reps", "10", "--no-plot"]
    missing = str(two_budgets / "missing")
    assert missing in _one_line_error(ConfigError, [missing, *out])
    empty = tmp_path_factory.mktemp("empty")
    (empty / "sub").mkdir()
    assert "holds no run folder" in _one_line_error(ConfigError, [str(empty), *out])
    message = _one_line_error(ConfigError, [str(two_budgets), "--group-by", "max_feedbak", *out])
    assert "max_feedbak" in message and "did you mean max_feedback?" in message
    message = _one_line_error(ConfigError, [str(two_budgets), "--baseline", "nothing", *out])
    assert "HalfCheetah-v5 | max_feedback=500; HalfCheetah-v5 | max_feedback=1000" in message
    assert "ambiguous" in _one_line_error(ConfigError, [str(two_budgets), "--baseline", "max_feedback", *out])
    assert "--reps" in _one_line_error(UsageError, [str(two_budgets), "--reps", "0"])
    assert "--bootstrap-sed" in _one_line_error(UsageError, [str(two_budgets), "--bootstrap-sed", "1"])


def test_only_unfinished_runs_is_an_error(tmp_path: Path) -> None:
    make_run(tmp_path, "cut_off", 0, [1.0], finished=False)
    assert "no finished run" in _one_line_error(ConfigError, [str(tmp_path), "--no-plot"])


def test_missing_rliable_names_the_install_command(two_budgets: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rliable", None)
    message = _one_line_error(ConfigError, [str(two_budgets), "--out", str(two_budgets / "out"), "--no-plot"])
    assert 'pip install -e ".[report]"' in message
