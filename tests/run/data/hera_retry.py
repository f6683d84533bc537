"""A script that fails its first try (it leaves a marker) and succeeds on its retry."""

from allotment import resources
from hera.workflows import DAG, RetryStrategy, Workflow, script


@resources(memory="150Mi")
@script(retry_strategy=RetryStrategy(limit="2"))
def flaky() -> None:
    import os
    import sys
    import tempfile

    marker = os.path.join(tempfile.gettempdir(), "allotment-test-run-hera-flaky")
    if not os.path.exists(marker):
        open(marker, "w").close()
        print("first try fails")
        sys.exit(3)
    os.remove(marker)
    print("second try succeeds")


with Workflow(name="retrying", entrypoint="main") as wf:
    with DAG(name="main"):
        flaky()
