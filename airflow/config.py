"""Deployment settings inside Airflow: env ``ALLOTMENT_*`` and the Airflow config section ``[allotment]``.

======== ====================== ===============================================
setting  environment            Airflow config (``airflow.cfg`` or env var)
======== ====================== ===============================================
with     ``ALLOTMENT_WITH``     ``[allotment] with`` (``AIRFLOW__ALLOTMENT__WITH``)
policy   ``ALLOTMENT_POLICY``   ``[allotment] policy``
profile  ``ALLOTMENT_PROFILE``  ``[allotment] profile``
backend  ``ALLOTMENT_BACKEND``  ``[allotment] backend``
======== ====================== ===============================================

``with`` specs from both places apply (they are floors); for the single-valued settings the
environment wins over the Airflow config (:data:`allotment.settings.PRECEDENCE`).

Settings are read when a task is built or run, not at import. ``allotment.settings.using_settings``
lets a caller (``allotment render``, ``allotment explain``) put its own settings (CLI options and
environment) in force for a block; the Airflow config completes them there too
(:func:`active_settings`), so a DAG file parsed by the CLI is parsed exactly as the engine parses
it, with the same ``[allotment]`` policy, profile, backend and ``with`` specs.

While Airflow imports one DAG file (the module it executes), the environment and the config file
are read once for all its tasks (:func:`_once_per_dag_file`), not once per task: the DAG
processor fixes both before it imports a file, and the next import (a new module object, or
:func:`read_config_anew`) reads them again.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from pathlib import Path
from types import ModuleType
from typing import Any, Final, TypeVar

from allotment.facade import ENV, Settings, current_settings, load_settings, using_settings

__all__ = [
    "SECTION",
    "active_settings",
    "airflow_config",
    "airflow_settings",
    "operator_resource_defaults",
    "read_config_anew",
    "reading_for",
    "using_settings",
    "with_airflow_config",
]

SECTION = "allotment"
_KEYS = ("with", "policy", "profile", "backend")

_cache: dict[tuple[Any, ...], Settings] = {}


_read: dict[tuple[Any, ...], dict[str, str | None]] = {}
# Airflow reads an option from AIRFLOW__<SECTION>__<KEY>, or from a command or a secret named by
# AIRFLOW__<SECTION>__<KEY>_CMD / _SECRET: those are every variable the options can come from.
_ENV_NAMES: Final = tuple(f"AIRFLOW__{SECTION.upper()}__{key.upper()}{suffix}" for key in _KEYS for suffix in ("", "_CMD", "_SECRET"))


_T = TypeVar("_T")
_per_file: list[Any] = [None, {}]
"""[the DAG file module being imported (or the DAG in the cluster policy), {what was read: its value}]."""


def _dag_file_module() -> ModuleType | None:
    """The module Airflow is executing for a DAG file now (its importer puts it in ``sys.modules``
    under the name it auto-registers DAGs for), else None."""
    from airflow.sdk.definitions._internal.contextmanager import DagContext

    name = DagContext.current_autoregister_module_name
    return sys.modules.get(name) if name is not None else None


_bagging: ContextVar[Any] = ContextVar("allotment_bagging_dag", default=None)


@contextlib.contextmanager
def reading_for(dag: Any) -> Iterator[None]:
    """Within the block (allotment's cluster policy on a task of ``dag``, which Airflow runs right
    after it imported the DAG file, when no import is under way any more), the deployment is read
    once per ``dag`` object too (:func:`_once_per_dag_file`): a new import builds new DAG objects."""
    token = _bagging.set(dag)
    try:
        yield
    finally:
        _bagging.reset(token)


def _once_per_dag_file(what: str, read: Callable[[], _T]) -> _T:
    """``read()``, once per DAG file import for ``what`` (or per DAG object in the cluster policy,
    :func:`reading_for`); every call outside both reads anew."""
    owner = _dag_file_module() or _bagging.get()
    if owner is None:
        return read()
    if _per_file[0] is not owner:
        _per_file[:] = [owner, {}]  # holds the owner, so its id is not reused while memoized
    memo: dict[str, Any] = _per_file[1]
    if what not in memo:
        memo[what] = read()
    found: _T = memo[what]
    return found


def read_config_anew() -> None:
    """Forget what :func:`_once_per_dag_file` read: for a caller that executes a DAG file again in
    the same module object (allotment's own step finder, :func:`allotment.airflow.discover.dags_of`)."""
    _per_file[:] = [None, {}]


def _config_key() -> tuple[Any, ...]:
    """What the ``[allotment]`` options can change with (:func:`_read_config_key`), once per DAG file import."""
    return _once_per_dag_file("config key", _read_config_key)


def _read_config_key() -> tuple[Any, ...]:
    """What the ``[allotment]`` options can change with: the ``AIRFLOW__ALLOTMENT__*`` environment,
    the config file (its path and modification time) and Airflow's config object itself. (A
    ``conf.set`` in the same process after the first read is not seen; deployments set options in
    the file or the environment.)"""
    from airflow.providers.common.compat.sdk import conf

    env = tuple(os.environ.get(name) for name in _ENV_NAMES)
    path = os.environ.get("AIRFLOW_CONFIG") or getattr(conf, "airflow_config_file", None)
    return (id(conf), env, path, _mtime(str(path)) if path else None)


def airflow_config() -> dict[str, str | None]:
    """The ``[allotment]`` options of the Airflow config that are set (empty ones left out).

    Read once per process while nothing they depend on changes (:func:`_config_key`): a DAG
    file of many tasks reads them for every task, and four ``conf.get`` calls each cost more than
    the rest of a task's parse-time work (bench/RESULTS.md)."""
    key = _config_key()
    found = _read.get(key)
    if found is not None:
        return dict(found)
    from airflow.providers.common.compat.sdk import conf

    values: dict[str, str | None] = {}
    for option in _KEYS:
        value = conf.get(SECTION, option, fallback=None)
        if value not in (None, "", "None"):
            values[option] = str(value)
    _read.clear()
    _read[key] = values
    return dict(values)


_operator_defaults: dict[tuple[Any, ...], dict[str, int]] = {}


def operator_resource_defaults() -> dict[str, int]:
    """Airflow's ``[operators] default_cpus/default_ram/default_disk/default_gpus``, as the keys of
    BaseOperator's ``resources``, read once per process while the config is unchanged: Airflow's
    ``Resources`` reads each missing one through the config parser for every task, which costs
    more than the rest of allotment's work on a task when a DAG file is parsed."""
    key = _config_key()
    found = _operator_defaults.get(key)
    if found is None:
        from airflow.providers.common.compat.sdk import conf

        found = {name: conf.getint("operators", f"default_{name}") for name in ("cpus", "ram", "disk", "gpus")}
        _operator_defaults.clear()
        _operator_defaults[key] = found
    return dict(found)


def _mtime(path: str | None) -> float | None:
    try:
        return Path(path).stat().st_mtime if path else None
    except OSError:
        return None


def airflow_settings() -> Settings:
    """Settings from the environment and the Airflow config, cached while neither (nor the policy file) changes."""
    return _once_per_dag_file("settings", _airflow_settings)


def _airflow_settings() -> Settings:
    config = airflow_config()
    env = {var: os.environ[var] for var in ENV.values() if var in os.environ}
    policy_path = env.get(ENV["policy"]) or config.get("policy")
    key = (tuple(sorted(env.items())), tuple(sorted(config.items())), _mtime(policy_path))
    if key not in _cache:
        _cache.clear()
        _cache[key] = load_settings(env=env, config=config)
    return _cache[key]


def active_settings() -> Settings:
    """The settings in force: those of ``using_settings`` completed by the Airflow config
    (:func:`with_airflow_config`), else :func:`airflow_settings`."""
    return with_airflow_config(current_settings(airflow_settings))


_layered: dict[tuple[Any, ...], Settings] = {}


def with_airflow_config(settings: Settings) -> Settings:
    """``settings`` (from the CLI and the environment) completed by the Airflow config ``[allotment]``:
    its ``with`` specs are added, and its policy, profile and backend fill what neither CLI nor
    environment chose. Settings that already hold this config are returned as they are."""
    config = airflow_config()
    if dict(settings.inputs.get("config") or {}) == config:
        return settings
    policy_path = config.get("policy")
    key = (id(settings), tuple(sorted(config.items())), _mtime(policy_path))
    found = _layered.get(key)
    if found is None or found.inputs.get("cli") != settings.inputs.get("cli") or found.inputs.get("env") != settings.inputs.get("env"):
        if len(_layered) > 32:
            _layered.clear()
        found = _layered[key] = settings.with_config(config)
    return found
