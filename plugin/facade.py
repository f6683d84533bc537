"""The faces' whole view of the core: every name ``allotment.airflow`` and ``allotment.argo`` use.

A face translates these typed objects into engine objects and makes no resource decision of its
own; ``import-linter`` (``pyproject.toml``, run by CI) forbids a face to import any other core
module, the core to import a face, and one face to import the other. The names, by what a face
does with them:

================  =======================================================================
read specs        :class:`Resources`, :class:`StepSpec` (:class:`Layer`), :func:`spec_of`, :func:`innermost`,
                  the decorators :func:`resources` and :func:`kubernetes` (to record a spec
                  on an object that is no function), :data:`FIELDS`
resolve           :class:`Settings` (``.resolve``, ``.with_config``, ``.policy``,
                  ``.profile``) with :func:`load_settings`, :func:`current_settings`,
                  :func:`using_settings` and :data:`ENV`; :class:`Source`; :class:`Resolved`
                  (``.value``, ``.winners``, ``.retry_growth``, ``.with_memory_after``)
OOM kills         what counts as one (docs/design.md §7.3), read from an engine's records:
                  :class:`TryEnd`, :func:`pod_try_end`, :func:`batch_try_end`,
                  :func:`local_try_end`, :data:`KUBERNETES_OOM_REASON`; Argo's count
                  :func:`argo_oom_kills`
runtime input     :func:`parse_runtime` (a run's block of ``with``/``set``/``tasks``),
                  :func:`check_steps`, :class:`WithSpec`
engine options    :func:`agree_option` (an engine argument vs. a decorator option)
Kubernetes        :func:`fit_pod` (a spec fitted into the user's pod: :class:`PodFit`),
                  :class:`PodParts`, :data:`SHM_VOLUME`; :func:`read_pod` (what the user's own
                  pod settings ask for, as step sources: :class:`PodRead`), :func:`is_templated`,
                  :func:`compile_pod`
targets           :data:`TARGETS`: each field's key on every target (Airflow's ``resources``
                  form, Argo's parameter names)
AWS Batch         :func:`compile_batch` (:class:`BatchPlan`), :func:`merge_submit_overrides`,
                  :func:`merge_container_overrides`, :func:`ensure_job_definition`,
                  :func:`job_name`, :data:`PLATFORMS`
files             :class:`Step`, :func:`iter_steps`, :func:`load_module`, :func:`python_files`
local backend     :func:`run_local` (a task's callable in a child process under its
                  spec) with :func:`local_table`; :class:`LocalRun` and :class:`StepRun`
                  (what a face's ``allotment run`` runner drives)
words             :class:`AllotmentError`, :func:`describe_value`; :func:`defer_errors_while` (a
                  face reports a decorator's error where its engine shows it in one line);
                  :data:`DEBUG_ENV`, :func:`debugging`, :func:`show_whole_chain` (the switch
                  that shows an error's whole chain)
================  =======================================================================
"""

from __future__ import annotations

from .batch import PLATFORMS, BatchPlan, compile_batch, ensure_job_definition, job_name, merge_container_overrides, merge_submit_overrides
from .decorators import Layer, StepSpec, agree_option, defer_errors_while, innermost, kubernetes, resources, spec_of
from .discover import Step, iter_steps, load_module, python_files
from .errors import DEBUG_ENV, AllotmentError, debugging, show_whole_chain
from .fields import FIELDS
from .kubernetes import PodFit, PodParts, PodRead, compile_pod, is_templated, read_pod
from .kubernetes import fit as fit_pod
from .model import Resources, describe_value
from .oom import KUBERNETES_OOM_REASON, TryEnd, argo_oom_kills, batch_try_end, local_try_end, pod_try_end
from .policy import runtime_bound
from .resolve import Resolved
from .run import LocalRun, StepRun, local_table, run_local
from .settings import ENV, Settings, current_settings, load_settings, using_settings
from .sources import Source
from .targets import SHM_VOLUME, TARGETS
from .withspec import WithSpec, check_steps, parse_runtime

__all__ = [
    "DEBUG_ENV",
    "ENV",
    "FIELDS",
    "KUBERNETES_OOM_REASON",
    "PLATFORMS",
    "SHM_VOLUME",
    "TARGETS",
    "AllotmentError",
    "BatchPlan",
    "Layer",
    "LocalRun",
    "PodFit",
    "PodParts",
    "PodRead",
    "Resolved",
    "Resources",
    "Settings",
    "Source",
    "Step",
    "StepRun",
    "StepSpec",
    "TryEnd",
    "WithSpec",
    "agree_option",
    "argo_oom_kills",
    "batch_try_end",
    "check_steps",
    "compile_batch",
    "compile_pod",
    "current_settings",
    "debugging",
    "defer_errors_while",
    "describe_value",
    "ensure_job_definition",
    "fit_pod",
    "innermost",
    "is_templated",
    "iter_steps",
    "job_name",
    "kubernetes",
    "load_module",
    "load_settings",
    "local_table",
    "local_try_end",
    "merge_container_overrides",
    "merge_submit_overrides",
    "parse_runtime",
    "pod_try_end",
    "python_files",
    "read_pod",
    "resources",
    "run_local",
    "runtime_bound",
    "show_whole_chain",
    "spec_of",
    "using_settings",
]
