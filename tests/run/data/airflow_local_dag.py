"""Behaviours of the local backend under Airflow, for `airflow dags test` (tests/run/test_run_airflow.py).

* ``where``: a plain ``@task`` with ``@resources`` under the LocalExecutor: its callable runs in the
  local executor's child process (``child.py``), pinned to one core;
* ``hungry``: ``@task.allotment`` over its memory: OOM-killed, retried once by Airflow with the same
  memory (it has no ``retry_memory_factor``), and failed with the reason in its log;
* ``after``: never runs (its upstream failed);
* ``grows``: ``@task.allotment`` over its memory with ``retry_memory_factor=2``: OOM-killed at 96Mi,
  retried by Airflow (a new process) with 192Mi, as the task state store says try 1 was an OOM
  kill (issue 12), and succeeds.
"""

import pendulum
from airflow.sdk import dag, task
from allotment import resources


@dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False)
def allotment_local_behaviour() -> None:
    @resources(cpu=1, memory="200Mi")
    @task
    def where() -> dict:
        import os

        with open("/proc/self/cmdline", "rb") as f:
            program = f.read().split(b"\0")[2].decode()  # python -P <program> WORKDIR
        return {"program": os.path.basename(program), "cores": len(os.sched_getaffinity(0))}

    @resources(memory="96Mi")
    @task.allotment(retries=1, retry_delay=0)
    def hungry(seen: dict) -> int:
        block = bytearray(300 * 1024 * 1024)
        for i in range(0, len(block), 4096):
            block[i] = 1
        return len(block)

    @task
    def after(size: int) -> None:
        print(size)

    @resources(memory="96Mi", retry_memory_factor=2)
    @task.allotment(retries=1, retry_delay=0)
    def grows() -> int:
        block = bytearray(160 * 1024 * 1024)
        for i in range(0, len(block), 4096):
            block[i] = 1
        return len(block) // (1024 * 1024)

    after(hungry(where()))
    grows()


allotment_local_behaviour()
