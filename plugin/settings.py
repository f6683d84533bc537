"""Deployment settings: backend, runtime specs, policy and cluster profile, and where each came from.

Single-valued settings (``backend``, ``policy``, ``profile``) take the first source that
gives them, in :data:`PRECEDENCE` order. Runtime ``with`` specs from every source are kept
together: they are floors, combined by maximum, so their order does not matter.

========== ===================== ======================== ==============================
setting    CLI                   environment              config (a face, e.g. Airflow)
========== ===================== ======================== ==============================
with       ``--with`` (repeat)   ``ALLOTMENT_WITH`` (;)   ``[allotment] with``
set        ``--set`` (repeat)    ``ALLOTMENT_SET`` (;)    —
backend    ``--backend``         ``ALLOTMENT_BACKEND``    ``[allotment] backend``
policy     ``--policy``          ``ALLOTMENT_POLICY``     ``[allotment] policy``
profile    ``--profile``         ``ALLOTMENT_PROFILE``    ``[allotment] profile``
========== ===================== ======================== ==============================

Nothing is read at import time: :func:`load_settings` reads the environment when called.
:func:`using_settings` puts given settings in force for a block (the CLI does, so a face that
resolves while a file is imported or rendered uses the CLI's settings); :func:`current_settings`
returns them, else loads them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Final

from .decorators import BACKENDS, StepSpec
from .errors import AllotmentError, debug_cause
from .model import Resources
from .policy import Policy, load_policy
from .profiles import Profile, get_profile
from .resolve import Resolved, resolve
from .sources import Source
from .withspec import WithSpec, parse_withs

__all__ = ["ENV", "PRECEDENCE", "Settings", "current_settings", "load_settings", "using_settings"]

PRECEDENCE: Final = ("cli", "env", "config")
"""Sources of single-valued settings, first one wins; then the built-in default."""

ENV: Final = {
    "with": "ALLOTMENT_WITH",
    "set": "ALLOTMENT_SET",
    "backend": "ALLOTMENT_BACKEND",
    "policy": "ALLOTMENT_POLICY",
    "profile": "ALLOTMENT_PROFILE",
}


@dataclass(frozen=True)
class Settings:
    """Resolved deployment settings. ``origins`` says which source gave each single value."""

    backend: str = "local"
    withs: tuple[WithSpec, ...] = ()
    sets: tuple[WithSpec, ...] = ()
    policy: Policy | None = None
    profile: Profile = field(default_factory=lambda: get_profile(None))
    origins: Mapping[str, str] = field(default_factory=dict)
    inputs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, repr=False)
    """What :func:`load_settings` was given, per source (``cli``, ``env``, ``config``)."""

    def with_config(self, config: Mapping[str, Any]) -> Settings:
        """These settings loaded again with a face's config (e.g. Airflow's ``[allotment]``) as the
        ``config`` source: its ``with`` specs are added; its single values fill what neither the
        CLI nor the environment chose (:data:`PRECEDENCE`)."""
        if not config:
            return self
        return load_settings(cli=self.inputs.get("cli", {}), env=self.inputs.get("env", {}), config=config)

    def resolve(
        self,
        spec: StepSpec | None,
        *,
        step: str | None = None,
        backend: str | None = None,
        defaults: Sequence[tuple[Resources, Source]] = (),
        extra: Sequence[tuple[Resources, Source]] = (),
        withs: Sequence[WithSpec] = (),
        sets: Sequence[WithSpec] = (),
    ) -> Resolved:
        """Resolve a step under these settings (plus any further ``withs``/``sets``, e.g. a run's conf)."""
        return resolve(
            spec,
            step=step,
            backend=backend or self.backend,
            withs=(*self.withs, *withs),
            sets=(*self.sets, *sets),
            defaults=defaults,
            extra=extra,
            policy=self.policy,
        )


def _first(name: str, layers: Mapping[str, Mapping[str, Any]]) -> tuple[Any, str]:
    for source in PRECEDENCE:
        value = layers[source].get(name)
        if value not in (None, "", ()):
            label = {"cli": f"--{name}", "env": f"env {ENV[name]}", "config": f"config [allotment] {name}"}[source]
            return value, label
    return None, "default"


def load_settings(
    cli: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config: Mapping[str, Any] | None = None,
) -> Settings:
    """Settings from the CLI options (``with``/``set`` as lists), the environment (default:
    ``os.environ``, read now) and a face's config, per :data:`PRECEDENCE`."""
    env = os.environ if env is None else env
    layers: dict[str, Mapping[str, Any]] = {
        "cli": cli or {},
        "env": {key: env.get(var) for key, var in ENV.items()},
        "config": config or {},
    }
    withs = (
        *parse_withs(layers["cli"].get("with") or (), "--with"),
        *parse_withs(layers["env"].get("with") or "", f"env {ENV['with']}"),
        *parse_withs(layers["config"].get("with") or "", "config [allotment] with"),
    )
    sets = (
        *parse_withs(layers["cli"].get("set") or (), "--set", kind="set"),
        *parse_withs(layers["env"].get("set") or "", f"env {ENV['set']}", kind="set"),
    )
    origins: dict[str, str] = {}
    backend, origins["backend"] = _first("backend", layers)
    if backend is None:
        named = sorted({w.backend for w in withs if w.backend and w.step is None})
        if len(named) > 1:
            raise AllotmentError(
                f"--with names several backends ({', '.join(named)}) and no backend was chosen",
                accepted="choose the backend for undecorated steps with --backend or ALLOTMENT_BACKEND",
            )
        backend, origins["backend"] = (named[0], "with") if named else ("local", "default")
    if backend not in BACKENDS:
        raise AllotmentError(
            "is not a backend", field="backend", value=backend, source=origins["backend"], accepted=f"backends are {', '.join(BACKENDS)}"
        )
    policy_path, origins["policy"] = _first("policy", layers)
    profile_name, origins["profile"] = _first("profile", layers)
    try:
        profile = get_profile(profile_name)
    except AllotmentError as e:
        raise e.with_context(source=origins["profile"]) from debug_cause(e)
    policy = load_policy(policy_path) if policy_path else None
    inputs = {"cli": dict(cli or {}), "env": {var: env[var] for var in ENV.values() if var in env}, "config": dict(config or {})}
    return Settings(str(backend), withs, sets, policy, profile, origins, inputs)


_in_force: ContextVar[Settings | None] = ContextVar("allotment_settings", default=None)


@contextlib.contextmanager
def using_settings(settings: Settings) -> Iterator[Settings]:
    """Put ``settings`` in force for the block: :func:`current_settings` returns them."""
    token = _in_force.set(settings)
    try:
        yield settings
    finally:
        _in_force.reset(token)


def current_settings(load: Callable[[], Settings] = load_settings) -> Settings:
    """The settings :func:`using_settings` put in force, else ``load()`` (by default the environment's)."""
    return _in_force.get() or load()
