"""A plain-Python flow: the steps of a small training pipeline, decorated with allotment."""

from allotment import batch, kubernetes, resources


@resources(cpu=2, memory="8Gi")
def prepare() -> None:
    """Runs on whatever backend the deployment chooses."""


@resources(cpu=4, memory="16Gi", gpu=1, gpu_type="H100", shared_memory=8192)
@kubernetes(cpu=2, memory=32768, qos="guaranteed")
def train() -> None:
    """Pinned to Kubernetes; @resources and @kubernetes combine by maximum."""


@batch(cpu=1, memory=2048, queue="cpu-queue")
def report() -> None:
    """Pinned to AWS Batch."""
