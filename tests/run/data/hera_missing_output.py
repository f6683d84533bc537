"""An output parameter whose file the script never writes: the node fails, as on Argo."""

from allotment import resources
from hera.workflows import DAG, Parameter, Workflow, script
from hera.workflows import models as m


@resources(memory="150Mi")
@script(outputs=[Parameter(name="out", value_from=m.ValueFrom(path="/tmp/allotment-test-run-hera-never-written"))])
def forgetful() -> None:
    print("done, but no file")


with Workflow(name="forgetful", entrypoint="main") as wf:
    with DAG(name="main"):
        forgetful()
