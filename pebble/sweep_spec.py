"""A sweep specification: a base config, variants and a grid over config fields, and seeds.

A spec is a TOML or JSON file::

    name = "halfcheetah_100k"          # default: the file's name without suffix
    out = "runs/sweeps/halfcheetah"    # where the trials' run folders go (default: runs/sweeps/{name})
    seeds = [0, 1, 2, 3]
    cpus_per_trial = 1                 # Ray resources of each trial (defaults 1 and 0)
    gpus_per_trial = 0

    [base]                             # settings of every trial
    total_steps = 100000

    [[variants]]                       # optional: a list of named settings, crossed with the grid
    name = "sac_true"
    true_reward = true
    [[variants]]
    name = "pebble_1000"
    max_feedback = 1000

    [grid]                             # optional: every combination of these values
    env = ["HalfCheetah-v5", "Hopper-v5"]

Settings are named as ``pebble train``'s flags with underscores (``max_feedback``, leaf names
are unique in the config tree) or given as a config file's nested sections (``[base.algo]``).
Trials are variants x grid x seeds; each one is an ordinary run folder
``{out}/{env}__{label}__{seed}``, where the label names the variant and the grid values that
vary. Everything is checked here, before any trial starts.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import itertools
import json
import re
import tomllib
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pebble import config as cfg
from pebble.config import Config, ConfigError

#: The top-level keys of a spec.
SPEC_KEYS = ("name", "out", "seeds", "cpus_per_trial", "gpus_per_trial", "base", "variants", "grid")

#: Sections of the config tree that a settings table may hold as nested tables.
SECTIONS = tuple(name for name, kind in typing.get_type_hints(Config).items() if dataclasses.is_dataclass(kind))


@dataclass(frozen=True)
class Trial:
    """One run of a sweep: its name (the run folder's name) and its full config."""

    name: str
    config: Config

    @property
    def run_dir(self) -> Path:
        return Path(self.config.run_dir)


@dataclass
class SweepSpec:
    """A parsed spec: where trials go, their Ray resources, and the trials themselves."""

    name: str
    out: Path
    cpus_per_trial: float
    gpus_per_trial: float
    trials: list[Trial]
    source: dict[str, Any]


def apply_settings(config: Config, settings: dict[str, Any], where: str) -> Config:
    """A copy of ``config`` with ``settings`` (leaf names, or nested config-file sections) applied;
    ``preset = "NAME"`` lays a preset (:mod:`pebble.presets`) over ``config`` first."""
    settings = dict(settings)
    if "preset" in settings:
        from pebble.presets import preset_config

        try:
            config = preset_config(str(settings.pop("preset")), config)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    nested = {k: v for k, v in settings.items() if k in SECTIONS and isinstance(v, dict)}
    flat = {k: v for k, v in settings.items() if k not in nested}
    if "seed" in flat:
        raise ConfigError(f"{where}: give seeds in the spec's top-level 'seeds = [...]', not as a setting")
    if "run_dir" in flat:
        raise ConfigError(f"{where}: run_dir is set by the sweep ({{out}}/{{env}}__{{label}}__{{seed}}); set 'out'")
    try:
        return cfg.override(cfg.from_dict(nested, base=config), **flat)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def load_spec(path: str | Path, out: str | Path | None = None) -> SweepSpec:
    """Read and check a spec file; ``out`` overrides the spec's output folder."""
    path = Path(path)
    try:
        text = path.read_bytes().decode()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read sweep spec {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except ValueError as exc:
        kind = "JSON" if path.suffix == ".json" else "TOML"
        raise ConfigError(f"sweep spec {path} is not valid {kind}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"sweep spec {path} must hold a table")
    return parse_spec(data, default_name=path.stem, out=out)


def parse_spec(data: dict[str, Any], default_name: str = "sweep", out: str | Path | None = None) -> SweepSpec:
    """Check a spec's data and expand it into trials (see the module docstring)."""
    unknown = sorted(set(data) - set(SPEC_KEYS))
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r} in the sweep spec; keys: {', '.join(SPEC_KEYS)}")
    name = str(data.get("name", default_name))
    # absolute, because Ray's workers need not start where the sweep was started
    folder = (Path(out) if out is not None else Path(data.get("out", Path("runs") / "sweeps" / name))).absolute()
    seeds = _seeds(data.get("seeds", [0]))
    cpus, gpus = _resource(data, "cpus_per_trial", 1), _resource(data, "gpus_per_trial", 0)
    if cpus <= 0:
        raise ConfigError(f"cpus_per_trial must be positive, got {cpus}")
    base = _table(data.get("base", {}), "base")
    base_config = apply_settings(Config(), base, "base")
    if "threads" not in base and "torch_threads" not in base:
        base_config.threads = max(1, int(cpus))  # one framework thread per CPU the trial is given
    trials = []
    for label, config in _combinations(base_config, data, name):
        for seed in seeds:
            trial_name = _safe(f"{config.env}__{label}__{seed}")
            run = cfg.override(config, seed=seed, run_dir=str(folder / trial_name))
            try:
                run.validate()
            except ConfigError as exc:
                raise ConfigError(f"trial {trial_name}: {exc}") from None
            trials.append(Trial(trial_name, run))
    names = [t.name for t in trials]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"two trials would share the run folder {twice[0]}: give the variants different names")
    return SweepSpec(name, folder, cpus, gpus, trials, data)


def select(spec: SweepSpec, patterns: list[str]) -> SweepSpec:
    """The spec with only the trials whose name matches one of the shell-style ``patterns``
    (``'*__0'``: seed 0 of every trial); a pattern that matches nothing is a ConfigError."""
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(t.name, pattern) for t in spec.trials):
            raise ConfigError(f"--trials {pattern!r} matches no trial of the spec (e.g. {spec.trials[0].name})")
    kept = [t for t in spec.trials if any(fnmatch.fnmatchcase(t.name, p) for p in patterns)]
    return dataclasses.replace(spec, trials=kept)


def _seeds(value: Any) -> list[int]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"seeds must be a non-empty list of integers, got {value!r}")
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in value):
        raise ConfigError(f"seeds must be integers, got {value!r}")
    if len(set(value)) != len(value):
        raise ConfigError(f"seeds holds a seed twice: {value!r}")
    return list(value)


def _resource(data: dict[str, Any], key: str, default: float) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ConfigError(f"{key} must be a number >= 0, got {value!r}")
    return float(value)


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a table of settings, got {value!r}")
    return value


def _combinations(base: Config, data: dict[str, Any], name: str) -> list[tuple[str, Config]]:
    """(label, config) for every variant x grid combination, before seeds."""
    variants = data.get("variants", [{}])
    if not isinstance(variants, list) or not variants:
        raise ConfigError("variants must be a non-empty list of tables ([[variants]] in TOML)")
    grid = _table(data.get("grid", {}), "grid")
    for key, values in grid.items():
        if not isinstance(values, list):
            raise ConfigError(f"grid.{key} must be a list of values, got {values!r}")
        if not values:
            raise ConfigError(f"grid.{key} is empty: the sweep would have no trials")
    varying = [k for k, v in grid.items() if len(v) > 1]
    out = []
    for i, variant in enumerate(variants):
        variant = dict(_table(variant, f"variants[{i}]"))
        variant_name = str(variant.pop("name", "")) if len(variants) == 1 else str(variant.pop("name", f"v{i}"))
        config = apply_settings(base, variant, f"variant {variant_name or i}")
        for values in itertools.product(*grid.values()):
            point = dict(zip(grid, values))
            where = "grid " + ", ".join(f"{k}={v}" for k, v in point.items())
            trial_config = apply_settings(config, point, where)
            parts = [variant_name] if variant_name else []
            parts += [f"{k}={_text(point[k])}" for k in varying if k != "env"]
            out.append(("__".join(parts) if parts else name, trial_config))
    return out


def _text(value: Any) -> str:
    if isinstance(value, list):
        return "x".join(map(str, value))
    return str(value).lower() if isinstance(value, bool) else str(value)


def _safe(name: str) -> str:
    """A folder name: characters other than letters, digits and ``_.=,-`` become ``-``."""
    return re.sub(r"[^A-Za-z0-9_.=,-]+", "-", name)
