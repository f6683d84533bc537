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

Settings are read when a task is built or run, not at import. :func:`use_settings` lets a caller
(``allotment render``) put its own settings in force for a block.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import replace
from pathlib import Path
from typing import Any

from allotment.decorators import BACKENDS
from allotment.errors import AllotmentError
from allotment.policy import load_policy
from allotment.profiles import get_profile
from allotment.settings import ENV, Settings, load_settings
from allotment.withspec import parse_withs

__all__ = ["SECTION", "active_settings", "airflow_config", "airflow_settings", "use_settings", "with_airflow_config"]

SECTION = "allotment"
_KEYS = ("with", "policy", "profile", "backend")

_override: ContextVar[Settings | None] = ContextVar("allotment_settings", default=None)
_cache: dict[tuple[Any, ...], Settings] = {}


def airflow_config() -> dict[str, str | None]:
    """The ``[allotment]`` options of the Airflow config that are set (empty ones left out)."""
    from airflow.providers.common.compat.sdk import conf

    values: dict[str, str | None] = {}
    for key in _KEYS:
        value = conf.get(SECTION, key, fallback=None)
        if value not in (None, "", "None"):
            values[key] = str(value)
    return values


def _mtime(path: str | None) -> float | None:
    try:
        return Path(path).stat().st_mtime if path else None
    except OSError:
        return None


def airflow_settings() -> Settings:
    """Settings from the environment and the Airflow config, cached while neither (nor the policy file) changes."""
    config = airflow_config()
    env = {var: os.environ[var] for var in ENV.values() if var in os.environ}
    policy_path = env.get(ENV["policy"]) or config.get("policy")
    key = (tuple(sorted(env.items())), tuple(sorted(config.items())), _mtime(policy_path))
    if key not in _cache:
        _cache.clear()
        _cache[key] = load_settings(env=env, config=config)
    return _cache[key]


def active_settings() -> Settings:
    """The settings in force: those of :func:`use_settings`, else :func:`airflow_settings`."""
    return _override.get() or airflow_settings()


@contextlib.contextmanager
def use_settings(settings: Settings) -> Iterator[Settings]:
    """Put ``settings`` in force for tasks built or rendered inside the block."""
    token = _override.set(settings)
    try:
        yield settings
    finally:
        _override.reset(token)


def with_airflow_config(settings: Settings) -> Settings:
    """``settings`` (from the CLI and the environment) completed by the Airflow config ``[allotment]``:
    its ``with`` specs are added, and its policy, profile and backend fill what neither CLI nor
    environment chose."""
    config = airflow_config()
    if not config:
        return settings
    origins = dict(settings.origins)
    changes: dict[str, Any] = {}
    if config.get("with"):
        changes["withs"] = (*settings.withs, *parse_withs(config["with"], "config [allotment] with"))
    if config.get("policy") and origins.get("policy") == "default":
        changes["policy"] = load_policy(config["policy"])
        origins["policy"] = "config [allotment] policy"
    if config.get("profile") and origins.get("profile") == "default":
        changes["profile"] = get_profile(config["profile"])
        origins["profile"] = "config [allotment] profile"
    if config.get("backend") and origins.get("backend") in ("default", "with"):
        if config["backend"] not in BACKENDS:
            raise AllotmentError(
                "is not a backend", field="backend", value=config["backend"], source="config [allotment] backend",
                accepted=f"backends are {', '.join(BACKENDS)}",
            )
        changes["backend"] = config["backend"]
        origins["backend"] = "config [allotment] backend"
    return replace(settings, origins=origins, **changes) if changes else settings
