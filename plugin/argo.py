"""``allotment.argo``: the Argo (Hera) face, imported lazily.

The face's code lives in the repository's top-level ``argo/`` folder, which has no
``__init__.py`` (like ``airflow/``, so a top-level folder never shadows an installed
package). This module stands in for that missing ``__init__``: it makes ``allotment.argo``
a package whose submodules are that folder's files (``__path__``), and it imports a public
name from them only when it is first used, so ``import allotment`` never imports Hera.

Public names (see ``argo/README.md``): ``install()`` registers Hera pre-build hooks that
turn allotment specs into template fields; ``apply(workflow, settings=None)`` returns a copy
of a workflow with them; ``using_settings(settings)`` makes hooks resolve with given
settings; ``attach(template, **fields)`` and ``container(..., allotment={...})`` put a spec
on a Hera Container; ``overridable(False)`` turns submit-time parameters off for a template
or workflow; ``defaults(workflow, **fields)`` sets workflow-level defaults. A policy's
LimitRange is the core's: ``allotment.kubernetes.limit_range``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from allotment.faces import face_package

if TYPE_CHECKING:  # what type checkers see; at run time each name loads on first use
    from allotment.argo.hooks import apply, install, using_settings
    from allotment.argo.templates import attach, container, defaults, overridable

EXPORTS: Final[dict[str, str]] = {
    "apply": "hooks",
    "install": "hooks",
    "using_settings": "hooks",
    "attach": "templates",
    "container": "templates",
    "defaults": "templates",
    "overridable": "templates",
}
"""Public name -> the submodule of ``allotment.argo`` that defines it."""

__path__, __getattr__, __dir__ = face_package(__name__, __file__, "argo", EXPORTS, globals())
__all__ = ["apply", "attach", "container", "defaults", "install", "overridable", "using_settings"]
