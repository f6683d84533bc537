"""The example training pipeline as an Airflow DAG: the same steps as ``workflows/training_pipeline.py``.

Nothing in this file names a backend. ``@task.allotment`` (registered by allotment's provider) runs
each callable where the deployment says:

* by default, on this machine: each task's callable runs in a child process of the Airflow worker
  under its ``@resources`` (1 core and 512Mi for ``prep``, 2 cores and 1Gi for ``train``), and the
  task log ends with the table of what it used. ``make demo`` runs it with ``airflow dags test``;
* with ``ALLOTMENT_WITH=kubernetes`` (or ``[allotment] with = kubernetes`` in ``airflow.cfg``),
  each task is what ``@task.kubernetes`` would make, a pod of ``python:3.12-slim`` in namespace
  ``ml`` sized by the same spec (``allotment render dags/training_pipeline.py --target airflow
  --with kubernetes`` shows the pods).

The callables are self-contained (their imports inside them), as a pod needs them to be, and
pass small JSON values through XCom; the data set is made again from its seed where it is used.
"""

import pendulum
from airflow.sdk import dag, task
from allotment import resources

POD = {"image": "python:3.12-slim", "namespace": "ml", "do_xcom_push": True}


@dag(
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["allotment", "demo"],
)
def training_pipeline() -> None:
    @resources(cpu=1, memory="512Mi")
    @task.allotment(kubernetes=POD)
    def prep(rows: int = 1000000, seed: int = 7) -> dict:
        import random

        rng = random.Random(seed)
        xs = [rng.random() for _ in range(rows)]
        ys = [3.0 * x + 2.0 + rng.gauss(0.0, 0.1) for x in xs]
        print(f"made {rows} rows from seed {seed}")
        return {"rows": rows, "seed": seed, "mean_y": round(sum(ys) / rows, 4)}

    @resources(cpu=2, memory="1Gi")
    @task.allotment(kubernetes=POD)
    def train(summary: dict, epochs: int = 40) -> dict:
        import multiprocessing
        import random

        rows = summary["rows"]
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
        print(f"fitted y = {slope:.3f} x + {intercept:.3f} on {rows} rows")
        return {"slope": round(slope, 3), "intercept": round(intercept, 3), "rows": rows}

    @resources(cpu=1, memory="512Mi")
    @task.allotment(kubernetes=POD)
    def evaluate(model: dict) -> float:
        import random

        rng = random.Random(11)
        xs = [rng.random() for _ in range(100000)]
        error = sum(abs(model["slope"] * x + model["intercept"] - (3.0 * x + 2.0)) for x in xs) / len(xs)
        print(f"mean absolute error {error:.4f} on 100000 fresh points")
        return round(error, 6)

    evaluate(train(prep()))


training_pipeline()
