"""The example training pipeline as a Hera workflow: prepare a data set, train a model on it, evaluate it.

Run it here, each step in a child process under its cpu and memory, with a table of what each used::

    allotment run workflows/training_pipeline.py --report report.json

Render it for Argo (the same steps as Kubernetes pods: ``training_pipeline.yaml`` beside this file)::

    allotment render workflows/training_pipeline.py --target argo

The steps pass on what Argo passes on: ``prep`` prints a JSON summary (its ``outputs.result``) and
writes the row count to a file (its output parameter ``rows``); ``train`` reads both as input
parameters and prints the fitted model; ``evaluate`` reads that. The data set is made from a seed,
so each step can make it again where it runs (a real pipeline would read it from object storage).
``train`` fits a straight line by least squares, its partial sums computed by two processes, hence
its two cores. The sizes fit a small machine (this is the demo of ``make demo``).
"""

from allotment import resources
from hera.workflows import DAG, Parameter, Workflow, script
from hera.workflows import models as m

ROWS_FILE = "/tmp/allotment-demo-rows"


@resources(cpu=1, memory="512Mi")
@script(image="python:3.12-slim", outputs=[Parameter(name="rows", value_from=m.ValueFrom(path=ROWS_FILE))])
def prep(rows: int = 1000000, seed: int = 7) -> None:
    import json
    import random

    rng = random.Random(seed)
    xs = [rng.random() for _ in range(rows)]
    ys = [3.0 * x + 2.0 + rng.gauss(0.0, 0.1) for x in xs]
    with open("/tmp/allotment-demo-rows", "w") as f:
        f.write(str(len(xs)))
    print(json.dumps({"rows": rows, "seed": seed, "mean_y": round(sum(ys) / rows, 4)}))


@resources(cpu=2, memory="1Gi")
@script(image="python:3.12-slim")
def train(summary: dict, rows: int, epochs: int = 40) -> None:
    import json
    import multiprocessing
    import random

    rng = random.Random(summary["seed"])
    xs = [rng.random() for _ in range(rows)]
    ys = [3.0 * x + 2.0 + rng.gauss(0.0, 0.1) for x in xs]

    def partial_sums(lo, hi, out):
        sx = sy = sxx = sxy = 0.0
        for _ in range(epochs):
            sx = sum(xs[lo:hi])
            sy = sum(ys[lo:hi])
            sxx = sum(x * x for x in xs[lo:hi])
            sxy = sum(x * y for x, y in zip(xs[lo:hi], ys[lo:hi], strict=True))
        out.send((sx, sy, sxx, sxy))

    fork = multiprocessing.get_context("fork")
    half = rows // 2
    pipes = [fork.Pipe(duplex=False) for _ in range(2)]
    spans = [(0, half), (half, rows)]
    workers = [fork.Process(target=partial_sums, args=(lo, hi, send)) for (lo, hi), (_, send) in zip(spans, pipes, strict=True)]
    for w in workers:
        w.start()
    sx, sy, sxx, sxy = (sum(part) for part in zip(*(receive.recv() for receive, _ in pipes), strict=True))
    for w in workers:
        w.join()
    slope = (rows * sxy - sx * sy) / (rows * sxx - sx * sx)
    intercept = (sy - slope * sx) / rows
    print(json.dumps({"slope": round(slope, 3), "intercept": round(intercept, 3), "rows": rows}))


@resources(cpu=1, memory="512Mi")
@script(image="python:3.12-slim")
def evaluate(model: dict) -> None:
    import random

    rng = random.Random(11)
    xs = [rng.random() for _ in range(100000)]
    error = sum(abs(model["slope"] * x + model["intercept"] - (3.0 * x + 2.0)) for x in xs) / len(xs)
    print(f"mean absolute error {error:.4f} on 100000 fresh points")


with Workflow(generate_name="training-pipeline-", entrypoint="pipeline") as pipeline:
    with DAG(name="pipeline"):
        prepared = prep()
        trained = train(arguments={"summary": prepared.result, "rows": prepared.get_parameter("rows")})
        checked = evaluate(arguments={"model": trained.result})
        prepared >> trained >> checked
