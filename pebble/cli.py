"""The ``pebble`` command line.

``pebble train`` has one flag per leaf of the config tree (:mod:`pebble.config`), generated
from the dataclasses so that flags, config files and saved configs cannot drift apart.
Precedence: defaults < ``--preset NAME`` (:mod:`pebble.presets`) < ``--config FILE`` <
flags. Every error is one line on stderr and a non-zero exit status: 2 for bad input, 1 for
a failure during the run.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
import typing
from collections.abc import Sequence
from typing import Any, Literal, NoReturn

from pebble import config as cfg
from pebble.config import Config, ConfigError
from pebble.presets import PRESETS, preset_config, preset_help

COMMANDS = {
    "train": "train PEBBLE (or, with --true-reward, the plain algorithm) on a Gymnasium task",
    "resume": "continue an interrupted run from its latest checkpoint: pebble resume RUN_DIR",
    "fit-reward": "fit and evaluate a reward model offline from a label store: pebble fit-reward labels.db",
    "sweep": "run a grid of trials as Ray tasks, here or on a cluster: pebble sweep SPEC.toml",
    "report": "tables and learning curves, with confidence intervals, of runs and sweeps: pebble report RUNS...",
}

SECTION_TITLES = {
    (): "run",
    ("algo",): "RL algorithm",
    ("pretrain",): "pre-training",
    ("reward",): "reward model",
    ("feedback",): "feedback",
    ("human",): "human teacher and videos",
    ("log",): "logging and evaluation",
}


class UsageError(Exception):
    """Bad command-line input; the message is one line."""


class OneLineParser(argparse.ArgumentParser):
    """argparse, but errors are one line (with a close-match hint) instead of usage + error.

    Abbreviated flags are refused: ``--reward-next-stat`` must not silently start a run as
    ``--reward-next-state``, and a prefix accepted today could turn ambiguous as flags are added.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments"):
            known = [s for a in self._actions for s in a.option_strings]
            unknown = [w for w in message.split(":", 1)[1].split() if w.startswith("--")]
            close = difflib.get_close_matches(unknown[0].split("=")[0], known, n=1, cutoff=0.75) if unknown else []
            if close:
                message += f" (did you mean {close[0]}?)"
        raise UsageError(f"{self.prog}: {message}")


def _key_value(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return key, value


def add_config_flags(parser: OneLineParser, defaults: Config, section: tuple[str, ...] | None = None) -> None:
    """One flag per leaf of the config tree (or of one ``section``), grouped by section."""
    groups: dict[tuple[str, ...], argparse._ArgumentGroup] = {}
    for path, field in cfg.leaf_fields():
        if section is not None and path[:-1] != section:
            continue
        if path[:-1] not in groups:
            groups[path[:-1]] = parser.add_argument_group(SECTION_TITLES.get(path[:-1], ".".join(path[:-1])))
        kind = cfg.field_type(path)
        origin = typing.get_origin(kind)
        help_text = f"{field.metadata['help']} (default: {cfg.get_leaf(defaults, path)!r})".replace("%", "%%")
        # a renamed setting keeps its old flag too, so that recorded commands still run
        names = ["--" + cfg.flag(n) for n in (path[-1], *field.metadata.get("aliases", ()))]
        common: dict[str, Any] = {"dest": "/".join(path), "default": argparse.SUPPRESS, "help": help_text}
        group = groups[path[:-1]]
        if kind is bool:
            group.add_argument(*names, action=argparse.BooleanOptionalAction, **common)
        elif origin is Literal:
            group.add_argument(*names, choices=typing.get_args(kind), **common)
        elif origin is list:
            group.add_argument(*names, nargs="+", type=int, metavar="N", **common)
        elif origin is dict:
            group.add_argument(*names, nargs="*", type=_key_value, metavar="KEY=VALUE", **common)
        else:
            group.add_argument(*names, type=kind, metavar=kind.__name__.upper(), **common)


def apply_config_flags(config: Config, args: dict[str, Any]) -> None:
    """Set the leaves parsed by :func:`add_config_flags` (``KEY=VALUE`` tables are merged)."""
    for dest, value in args.items():
        path = tuple(dest.split("/"))
        if isinstance(value, list) and value and isinstance(value[0], tuple):
            value = {**cfg.get_leaf(config, path), **dict(value)}
        cfg.set_leaf(config, path, value)


def train_parser(defaults: Config) -> OneLineParser:
    """The ``pebble train`` parser; ``--help`` shows ``defaults`` (after ``--config``)."""
    parser = OneLineParser(
        prog="pebble train",
        description="Train PEBBLE on a Gymnasium continuous-control task. "
        "Settings come from the defaults, then --preset NAME, then --config FILE, then flags.",
    )
    parser.add_argument("--preset", metavar="NAME", choices=list(PRESETS), help=preset_help().replace("%", "%%"))
    parser.add_argument("--config", metavar="FILE", help="JSON or TOML file of settings (e.g. a run's config.json)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    add_config_flags(parser, defaults)
    return parser


def parse_train_args(argv: Sequence[str]) -> tuple[Config, bool]:
    """(config, overwrite) from ``pebble train`` arguments."""
    pre = OneLineParser(prog="pebble train", add_help=False)
    pre.add_argument("--config")
    pre.add_argument("--preset")
    known, _ = pre.parse_known_args(argv)
    base = preset_config(known.preset) if known.preset else Config()
    base = cfg.from_dict(cfg.load_file(known.config), base) if known.config else base
    args = vars(train_parser(base).parse_args(argv))
    overwrite = bool(args.pop("overwrite", False))
    args.pop("config", None)
    args.pop("preset", None)
    apply_config_flags(base, args)
    base.validate()
    return base, overwrite


def main(argv: Sequence[str] | None = None, fixed_reward: Any = None) -> int:
    """The ``pebble`` command; ``fixed_reward`` (a RewardSource) makes ``train`` and ``resume`` learn
    from it after pre-training instead of a reward model (bench/diagnostics/oracle_reward.py)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: pebble COMMAND [options]\n\ncommands:")
        for name, text in COMMANDS.items():
            print(f"  {name:<10} {text}")
        print("\nRun 'pebble COMMAND --help' for the options of a command.")
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    try:
        if command == "train":
            return _train(rest, fixed_reward)
        if command == "resume":
            return _resume(rest, fixed_reward)
        if command == "fit-reward":
            return _fit_reward(rest)
        if command == "sweep":
            return _sweep(rest)
        if command == "report":
            from pebble.report import main as report

            return report(rest)
        close = difflib.get_close_matches(command, list(COMMANDS), n=1)
        hint = f" (did you mean {close[0]}?)" if close else f"; commands: {', '.join(COMMANDS)}"
        raise UsageError(f"pebble: unknown command {command!r}{hint}")
    except (UsageError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run_guarded(start: Any) -> int:
    """Run a training entry point, turning known failures into one-line errors."""
    from envs.make import EnvError
    from pebble.buffer import NonFiniteError
    from pebble.checkpoint import CheckpointError
    from pebble.label_store import LabelStoreError
    from pebble.train import RunInterrupted
    from teachers.contract import TeacherError

    try:
        start()
    except (EnvError, LabelStoreError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except TeacherError as exc:
        # Raised during a run (teachers are built and checked before it starts).
        print(f"error: {exc} (answers so far are in labels.db; fix the teacher, then pebble resume)", file=sys.stderr)
        return 2
    except NonFiniteError as exc:
        print(f"error: {exc} (the last checkpoint and labels.db are intact)", file=sys.stderr)
        return 1
    except RunInterrupted as exc:
        print(f"{exc}", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print(
            "\ninterrupted (labels are in labels.db; resume from the last checkpoint with pebble resume)",
            file=sys.stderr,
        )
        return 130
    return 0


def _train(argv: list[str], fixed_reward: Any = None) -> int:
    config, overwrite = parse_train_args(argv)
    from pebble.train import train

    return _run_guarded(lambda: train(config, overwrite=overwrite, fixed_reward=fixed_reward))


def _resume(argv: list[str], fixed_reward: Any = None) -> int:
    parser = OneLineParser(prog="pebble resume", description="Continue a run from its latest checkpoint.")
    parser.add_argument("run_dir", help="the run folder (holds config.json, labels.db, checkpoints/)")
    parser.add_argument("--total-steps", type=int, help="extend (or shorten) the run to this many env steps")
    args = parser.parse_args(argv)
    from pebble.train import resume

    return _run_guarded(lambda: resume(args.run_dir, total_steps=args.total_steps, fixed_reward=fixed_reward))


def _fit_reward(argv: list[str]) -> int:
    parser = OneLineParser(
        prog="pebble fit-reward",
        description="Fit a reward model to the labels of a store and report held-out accuracy. "
        "The reward-model flags and their defaults are those of pebble train.",
    )
    parser.add_argument("store", help="a label store (RUN_DIR/labels.db)")
    parser.add_argument("--out", default="", help="where to save the fitted reward model (.pt)")
    parser.add_argument("--test-fraction", type=float, default=0.2, help="labels held out for testing (default 0.2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and the training (default 0)")
    parser.add_argument("--by-session", action="store_true",
                        help="replay the run's sessions in order instead of a random split: each session's labels "
                        "are measured before training on them, as the run measured them")  # fmt: skip
    defaults = Config()
    add_config_flags(parser, defaults, section=("reward",))
    args = vars(parser.parse_args(argv))
    options = {k: args.pop(k) for k in ("store", "out", "test_fraction", "seed")}
    by_session = args.pop("by_session")
    apply_config_flags(defaults, args)
    defaults.validate()
    if not 0 <= options["test_fraction"] < 1:
        raise UsageError(f"--test-fraction must be in [0, 1), got {options['test_fraction']}")
    from pebble.offline import fit_reward, replay_sessions

    if by_session:
        del options["test_fraction"]
        return _run_guarded(lambda: replay_sessions(reward=defaults.reward, **options))
    return _run_guarded(lambda: fit_reward(reward=defaults.reward, **options))


def _sweep(argv: list[str]) -> int:
    parser = OneLineParser(
        prog="pebble sweep",
        description="Run the trials of a sweep spec (TOML or JSON) as Ray tasks, one run folder each. Run it "
        "again to continue: finished trials are skipped, interrupted ones resume from their checkpoints.",
    )
    parser.add_argument("spec", help="the sweep spec (see docs/sweeps.md)")
    parser.add_argument("--address", help="join this Ray cluster (HOST:PORT, ray://HOST:PORT or auto) "
                        "instead of starting a local Ray")  # fmt: skip
    parser.add_argument("--cpus", type=int, help="CPUs of the local Ray (default: all cores)")
    parser.add_argument("--out", help="folder of the trials' run folders (default: the spec's out)")
    parser.add_argument("--trials", nargs="+", metavar="PATTERN",
                        help="run only the trials whose name matches a pattern, e.g. '*__0' for seed 0")  # fmt: skip
    parser.add_argument("--dry-run", action="store_true", help="list the trials and their state, run nothing")
    args = parser.parse_args(argv)
    if args.cpus is not None and args.cpus <= 0:
        raise UsageError(f"--cpus must be positive, got {args.cpus}")
    if args.cpus is not None and args.address:
        raise UsageError("--cpus sizes a local Ray; a cluster given by --address has its own")
    from pebble.sweep import SweepInterrupted, check, describe, run_sweep
    from pebble.sweep_spec import load_spec, select

    spec = load_spec(args.spec, out=args.out)
    if args.trials:
        spec = select(spec, args.trials)
    if args.dry_run:
        check(spec)
        try:
            print("\n".join(describe(spec)), flush=True)
        except BrokenPipeError:  # the list piped into head: not an error
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    try:
        result = run_sweep(spec, address=args.address, cpus=args.cpus)
    except SweepInterrupted as exc:
        print(f"{exc}", file=sys.stderr)
        return 130
    for outcome in result.failed:
        print(f"error: trial {outcome.name}: {outcome.error}", file=sys.stderr)
    return 1 if result.failed else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
