"""Advice for a DAG file that failed to import because of a misused Airflow operator, for
``allotment explain`` and ``render`` (registered in :data:`allotment.faces.IMPORT_HINTS`).

The provider's ``KubernetesPodOperator`` (like every Airflow operator) takes ``resources=`` in
Airflow's own form, ``cpus``/``ram``/``disk``/``gpus``: ``BaseOperator.__init__`` calls
``Resources(**resources)`` (``airflow/sdk/bases/operator.py``), which raises a bare ``TypeError``
for any other key. allotment's form (``cpu``, ``memory``, ``shared_memory``...) fails there, in
Airflow's own constructor, before any hook of allotment's runs. So Airflow's own import error
(``airflow dags list-import-errors``) stays Airflow's; allotment's tools add the advice.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["import_hint"]

_UNEXPECTED: Final = re.compile(r"Resources\.__init__\(\) got an unexpected keyword argument '([A-Za-z_][A-Za-z0-9_]*)'")
_OPERATOR_MODULE: Final = "airflow/sdk/bases/operator.py"


def import_hint(error: BaseException) -> str | None:
    """Advice when ``error`` is Airflow's ``Resources`` refusing a key of allotment's form, else None."""
    if not isinstance(error, TypeError):
        return None
    found = _UNEXPECTED.search(str(error))
    if found is None or not _raised_by_base_operator(error):
        return None
    return (
        f"an Airflow operator got resources= with {found.group(1)!r}, which only allotment's form has; the provider's operators "
        "take Airflow's form (cpus, ram, disk, gpus) and size no pod with it: use allotment.airflow.KubernetesPodOperator "
        "(or BatchOperator), which takes resources= in either form"
    )


def _raised_by_base_operator(error: BaseException) -> bool:
    """True when ``error`` was raised in Airflow's ``BaseOperator`` (its innermost frame is there:
    the operator calls ``Resources(**resources)``, and a bad keyword fails at that call)."""
    tb = error.__traceback__
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    return last is not None and last.tb_frame.f_code.co_filename.replace("\\", "/").endswith(_OPERATOR_MODULE)
