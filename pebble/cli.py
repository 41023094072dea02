"""The ``pebble`` command line.

``pebble train`` has one flag per leaf of the config tree (:mod:`pebble.config`), generated
from the dataclasses so that flags, config files and saved configs cannot drift apart.
Precedence: defaults < ``--config FILE`` < flags. Every error is one line on stderr and a
non-zero exit status: 2 for bad input, 1 for a failure during the run.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
import typing
from collections.abc import Sequence
from typing import Any, Literal, NoReturn

from pebble import config as cfg
from pebble.config import Config, ConfigError

COMMANDS = {
    "train": "train PEBBLE (or, with --true-reward, the plain algorithm) on a Gymnasium task",
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
    """argparse, but errors are one line (with a close-match hint) instead of usage + error."""

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments"):
            known = [s for a in self._actions for s in a.option_strings]
            unknown = [w for w in message.split(":", 1)[1].split() if w.startswith("--")]
            close = difflib.get_close_matches(unknown[0].split("=")[0], known, n=1) if unknown else []
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


def _get(config: Config, path: tuple[str, ...]) -> Any:
    value: Any = config
    for name in path:
        value = getattr(value, name)
    return value


def _set(config: Config, path: tuple[str, ...], value: Any) -> None:
    node: Any = config
    for name in path[:-1]:
        node = getattr(node, name)
    setattr(node, path[-1], value)


def train_parser(defaults: Config) -> OneLineParser:
    """The ``pebble train`` parser; ``--help`` shows ``defaults`` (after ``--config``)."""
    parser = OneLineParser(
        prog="pebble train",
        description="Train PEBBLE on a Gymnasium continuous-control task. "
        "Settings come from the defaults, then --config FILE, then flags.",
    )
    parser.add_argument("--config", metavar="FILE", help="JSON or TOML file of settings (e.g. a run's config.json)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    groups: dict[tuple[str, ...], argparse._ArgumentGroup] = {}
    for path, field in cfg.leaf_fields():
        section = path[:-1]
        if section not in groups:
            groups[section] = parser.add_argument_group(SECTION_TITLES.get(section, ".".join(section)))
        kind = cfg.field_type(path)
        origin = typing.get_origin(kind)
        current = _get(defaults, path)
        help_text = f"{field.metadata['help']} (default: {current!r})".replace("%", "%%")
        name = "--" + cfg.flag(path[-1])
        dest = "/".join(path)
        common: dict[str, Any] = {"dest": dest, "default": argparse.SUPPRESS, "help": help_text}
        if kind is bool:
            groups[section].add_argument(name, action=argparse.BooleanOptionalAction, **common)
        elif origin is Literal:
            groups[section].add_argument(name, choices=typing.get_args(kind), **common)
        elif origin is list:
            groups[section].add_argument(name, nargs="+", type=int, metavar="N", **common)
        elif origin is dict:
            groups[section].add_argument(name, nargs="*", type=_key_value, metavar="KEY=VALUE", **common)
        else:
            groups[section].add_argument(name, type=kind, metavar=kind.__name__.upper(), **common)
    return parser


def parse_train_args(argv: Sequence[str]) -> tuple[Config, bool]:
    """(config, overwrite) from ``pebble train`` arguments."""
    pre = OneLineParser(prog="pebble train", add_help=False)
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv)
    base = cfg.from_dict(cfg.load_file(known.config)) if known.config else Config()
    args = vars(train_parser(base).parse_args(argv))
    overwrite = bool(args.pop("overwrite", False))
    args.pop("config", None)
    for dest, value in args.items():
        path = tuple(dest.split("/"))
        if isinstance(value, list) and value and isinstance(value[0], tuple):
            value = {**_get(base, path), **dict(value)}
        _set(base, path, value)
    base.validate()
    return base, overwrite


def main(argv: Sequence[str] | None = None) -> int:
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
            return _train(rest)
        close = difflib.get_close_matches(command, list(COMMANDS), n=1)
        hint = f" (did you mean {close[0]}?)" if close else f"; commands: {', '.join(COMMANDS)}"
        raise UsageError(f"pebble: unknown command {command!r}{hint}")
    except (UsageError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _train(argv: list[str]) -> int:
    from envs.make import EnvError
    from pebble.buffer import NonFiniteError
    from teachers.contract import TeacherError

    config, overwrite = parse_train_args(argv)
    from pebble.train import train

    try:
        train(config, overwrite=overwrite)
    except (EnvError, TeacherError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except NonFiniteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
