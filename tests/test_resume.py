"""Nothing lost: SIGKILL at many moments, resume, and the run equals an uninterrupted one."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_runs import pebble

from pebble import checkpoint
from pebble.cli import main
from pebble.label_store import LabelStore

RUN = [
    "--env", "Hopper-v5", "--total-steps", "800", "--seed-steps", "100", "--unsup-steps", "100",
    "--max-feedback", "30", "--num-interact", "150", "--segment-length", "10", "--eval-freq", "400",
    "--eval-episodes", "2", "--log-interval", "0", "--net-arch", "32", "--reward-hidden", "32",
    "--batch-size", "64", "--threads", "1", "--checkpoint-freq", "150",
    # pre-training options whose state a checkpoint must carry: frozen k-NN statistics, the temperature's Adam
    "--knn-features", "standardized", "--ent-coef-lr", "1e-3",
]  # fmt: skip
#: sessions at steps 200 (the first, after 100 seed and 100 pre-training steps), 350, 500 and 650


def labels(run_dir: Path) -> list[tuple]:
    db = sqlite3.connect(run_dir / "labels.db")
    rows = db.execute("SELECT query_id, kind, ranking, session, env_step, obs, actions FROM answers ORDER BY query_id")
    out = list(rows)
    db.close()
    return out


def reward_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "reward_model.pt", weights_only=False)["ensemble"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    proc = pebble(["train", *RUN, "--run-dir", str(run_dir)])
    assert proc.returncode == 0, proc.stderr
    return run_dir


@pytest.mark.parametrize(
    "crash_at",
    [
        "pretrain_step:150",  # during pre-training, before any feedback
        "answer_stored:7",  # in the middle of the first feedback session
        "reward_epoch:3",  # during reward-model training
        "checkpoint_write:3",  # while the third checkpoint (step 450) is being written
        "answer_stored:23",  # in a later session
        "learned_step:550",  # near the end
    ],
)
def test_sigkill_then_resume_loses_nothing_and_matches_uninterrupted_run(
    crash_at: str, reference: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    crashed = pebble(["train", *RUN, "--run-dir", str(run_dir)], crash_at=crash_at)
    assert crashed.returncode == -signal.SIGKILL
    before = labels(run_dir) if (run_dir / "labels.db").exists() else []
    resumed = pebble(["resume", str(run_dir)])
    assert resumed.returncode == 0, resumed.stderr
    after = labels(run_dir)
    ids = [row[0] for row in after]
    assert len(ids) == len(set(ids)) == 30  # every query asked once, budget respected and used
    assert after[: len(before)] == before  # labels given before the crash are intact
    # Same seed: the resumed run asks the same queries, gets the same labels, trains the same model.
    assert after == labels(reference)
    ref_w, got_w = reward_weights(reference), reward_weights(run_dir)
    assert all(torch.equal(ref_w[k], got_w[k]) for k in ref_w)
    # and the evaluations see the same episodes (the resumed evaluation env keeps its RNG)
    final = [json.loads((d / "summary.json").read_text())["final_eval_return"] for d in (reference, run_dir)]
    assert final[0] == final[1]


def test_interrupted_checkpoint_write_keeps_previous_checkpoint(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    crashed = pebble(["train", *RUN, "--run-dir", str(run_dir)], crash_at="checkpoint_write:2")
    assert crashed.returncode == -signal.SIGKILL
    latest = checkpoint.latest(run_dir)
    assert latest is not None and latest.name == "step-150"
    assert list((run_dir / "checkpoints").glob("*.tmp"))  # the half-written one is left aside
    state = torch.load(latest / "state.pt", weights_only=False)
    assert state["step"] == 150


def test_sigterm_checkpoints_then_resume_equals_the_uninterrupted_run(tmp_path: Path, reference: Path) -> None:
    # The stop checkpoint lands on whatever step the signal arrives at, and this run logs
    # progress lines where the reference logs none: neither may change what is computed.
    run_dir = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k != "PEBBLE_CRASH_AT"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pebble.cli",
            "train",
            *RUN,
            "--checkpoint-freq",
            "0",
            "--log-interval",
            "100",
            "--run-dir",
            str(run_dir),
        ],  # fmt: skip
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    for line in proc.stdout:  # wait until the first feedback session is over
        if "feedback session 1" in line:
            break
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "pebble resume" in err
    assert checkpoint.latest(run_dir) is not None
    assert pebble(["resume", str(run_dir)]).returncode == 0
    assert labels(run_dir) == labels(reference) and len(labels(run_dir)) == 30
    ref_w, got_w = reward_weights(reference), reward_weights(run_dir)
    assert all(torch.equal(ref_w[k], got_w[k]) for k in ref_w)
    final = [json.loads((d / "summary.json").read_text())["final_eval_return"] for d in (reference, run_dir)]
    assert final[0] == final[1]


def test_resume_refuses_corrupted_checkpoint_without_touching_it(tmp_path: Path, capsys) -> None:
    run_dir = tmp_path / "run"
    assert pebble(["train", *RUN, "--total-steps", "500", "--run-dir", str(run_dir)]).returncode == 0
    latest = checkpoint.latest(run_dir)
    assert latest is not None
    (latest / "state.pt").write_bytes(b"garbage")
    snapshot = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    assert main(["resume", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert "checkpoint" in err and len(err.strip().splitlines()) == 1
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == snapshot


def test_corrupted_label_store_is_refused_and_kept(tmp_path: Path, capsys) -> None:
    run_dir = tmp_path / "run"
    assert pebble(["train", *RUN, "--total-steps", "500", "--run-dir", str(run_dir)]).returncode == 0
    store = run_dir / "labels.db"
    for suffix in ("-wal", "-shm"):
        Path(str(store) + suffix).unlink(missing_ok=True)
    store.write_bytes(b"not a database at all" * 100)
    assert main(["resume", str(run_dir)]) == 2
    assert "corrupted" in capsys.readouterr().err
    assert store.read_bytes() == b"not a database at all" * 100
    other = tmp_path / "other"
    assert main(["train", *RUN, "--labels-from", str(store), "--run-dir", str(other)]) == 2
    assert not other.exists()


def test_labels_from_warm_starts_a_new_run_and_fit_reward(tmp_path: Path, reference: Path, capsys) -> None:
    store = reference / "labels.db"
    assert main(["fit-reward", str(store), "--out", str(tmp_path / "rm.pt"), "--reward-hidden", "32"]) == 0
    out = capsys.readouterr().out
    assert "test accuracy" in out and (tmp_path / "rm.pt").exists()
    assert "the reward relies on: obs" in out and "action" in out and "next_obs" in out
    # the replay measures each later session's labels before training on them, as the run did
    sessions = len({row[3] for row in labels(reference)})
    assert (
        main(
            [
                "fit-reward",
                str(store),
                "--by-session",
                "--reward-hidden",
                "32",
                "--reward-action-inputs",
                "auto",
                "--reward-feature-screening",
                "0",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert f"in {sessions} sessions" in out
    assert re.search(r"session 1: \d+ new labels, held-out acc [01]\.\d+", out)
    assert "session 0:" not in out  # nothing was trained before the first session's labels
    run_dir = tmp_path / "warm"
    argv = ["train", *RUN, "--total-steps", "300", "--labels-from", str(store), "--run-dir", str(run_dir)]
    assert main(argv) == 0  # one session, at step 200
    out = capsys.readouterr().out
    assert "feedback session 1" in out
    # the first session trains on the 30 borrowed labels plus its own 30; only its own go to its store
    assert "on 60 labels" in out
    assert len(labels(run_dir)) == 30
    shutil.rmtree(run_dir)


def test_clips_keep_their_next_states_and_an_older_store_is_upgraded(tmp_path: Path, reference: Path, capsys) -> None:
    store = LabelStore(reference / "labels.db", read_only=True)
    rows = list(store)
    store.close()
    for row in rows:
        for clip in row.query.clips:
            real = int(clip.mask.sum())
            assert clip.next_observations is not None and clip.next_observations.shape == clip.observations.shape
            # one episode, consecutive steps: each step's next state is the following step's state
            np.testing.assert_array_equal(clip.next_observations[: real - 1], clip.observations[1:real])
    # a store written before next states were kept (schema version 1)
    old = tmp_path / "old.db"
    with sqlite3.connect(reference / "labels.db") as src, sqlite3.connect(old) as dst:
        src.backup(dst)
    with sqlite3.connect(old) as db:
        db.executescript("ALTER TABLE answers DROP COLUMN next_obs; PRAGMA user_version = 1;")
    readonly = LabelStore(old, read_only=True)
    assert all(c.next_observations is None for r in readonly for c in r.query.clips)
    readonly.close()
    argv = ["train", *RUN, "--total-steps", "300", "--labels-from", str(old)]  # r(s, a, s'), the default
    assert main([*argv, "--run-dir", str(tmp_path / "refused")]) == 2
    assert "carry no next observations" in capsys.readouterr().err
    assert main(["fit-reward", str(old)]) == 2
    assert "--no-reward-next-state" in capsys.readouterr().err
    assert main(["fit-reward", str(reference / "labels.db"), "--reward-hidden", "32"]) == 0
    assert main(["fit-reward", str(old), "--no-reward-next-state", "--reward-hidden", "32"]) == 0
    assert "test accuracy" in capsys.readouterr().out
    assert main([*argv, "--no-reward-next-state", "--run-dir", str(tmp_path / "sa")]) == 0
    assert torch.load(tmp_path / "sa" / "reward_model.pt", weights_only=False)["next_state"] is False
    LabelStore(old).close()  # opened for writing: upgraded in place, its labels kept
    with sqlite3.connect(old) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2
        assert db.execute("SELECT COUNT(*) FROM answers").fetchone()[0] == len(rows)
    assert torch.load(reference / "reward_model.pt", weights_only=False)["next_state"] is True


def test_a_run_checkpointed_by_pebble_0_1_resumes(tmp_path: Path) -> None:
    """tests/data/run_v0_1: an InvertedPendulum run killed by pebble 0.1 after its step-450
    checkpoint and its fourth session (one ``loop`` entry in state.pt, the state-entropy
    statistics inside the pickled buffer). It resumes, replays the stored fourth session's
    answers instead of asking again, and finishes."""
    run_dir = tmp_path / "run"
    shutil.copytree(Path(__file__).parent / "data" / "run_v0_1", run_dir)
    before = labels(run_dir)
    assert len(before) == 12
    resumed = pebble(["resume", str(run_dir)])
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout and "step-450" in resumed.stdout
    assert labels(run_dir) == before  # nothing asked twice, nothing lost
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 600 and summary["queries_asked"] == 12 and summary["labels"] == 12


@pytest.mark.parametrize("crash_at", ["answer_stored:23"])  # a later session: pre-training, a reset and
def test_a_jax_run_killed_then_resumed_matches_its_uninterrupted_run(crash_at: str, tmp_path: Path) -> None:
    # checkpoints of SBX's train states and JAX keys lie behind it
    jax_run = [*RUN, "--backend", "jax", "--intrinsic-reward", "apt", "--warm-start-epochs", "2", "--init-ent-coef",
               "0.5", "--no-reset-critic"]  # fmt: skip
    reference = tmp_path / "reference"
    assert pebble(["train", *jax_run, "--run-dir", str(reference)]).returncode == 0
    run_dir = tmp_path / "run"
    assert pebble(["train", *jax_run, "--run-dir", str(run_dir)], crash_at=crash_at).returncode == -signal.SIGKILL
    before = labels(run_dir)
    resumed = pebble(["resume", str(run_dir)])
    assert resumed.returncode == 0, resumed.stderr
    after = labels(run_dir)
    assert len(after) == 30 and after[: len(before)] == before
    assert after == labels(reference)
    ref_w, got_w = reward_weights(reference), reward_weights(run_dir)
    assert all(torch.equal(ref_w[k], got_w[k]) for k in ref_w)
    final = [json.loads((d / "summary.json").read_text())["final_eval_return"] for d in (reference, run_dir)]
    assert final[0] == final[1]
