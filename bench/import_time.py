"""Import cost of allotment, as ratios to pydantic measured in the same run.

Each case runs in a fresh interpreter with ``-X importtime`` and reads the cumulative
microseconds of its top-level import; the median of ``--runs`` alternating runs is kept.
Cases:

- ``import pydantic``                        the baseline the issue names;
- ``from pydantic import BaseModel``         a baseline that defines models (pydantic's main);
- ``import allotment``                       what every DAG file pays first (goal <= 1.3x pydantic);
- ``import allotment`` + one decorated step  the spec model loads with the first step;
- allotment after a pydantic model exists    the marginal cost inside Airflow's DAG processor, where
                                             pydantic's model machinery is already loaded.

Run: ``python bench/import_time.py [--runs 15]``. Prints a table and the ratios.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

CASES: dict[str, tuple[str, str, str]] = {
    # name: (setup code, measured code, module whose cumulative time is read ("*" = sum of the measured statement))
    "import pydantic": ("", "import pydantic", "pydantic"),
    "from pydantic import BaseModel": ("", "from pydantic import BaseModel", "*"),
    "import allotment": ("", "import allotment", "allotment"),
    "import allotment + first @resources step": (
        "",
        "import allotment\n@allotment.resources(cpu=2, memory='4Gi')\ndef step(): pass",
        "*",
    ),
    "allotment + step, a pydantic model already defined": (
        "from pydantic import BaseModel, field_validator\nclass Other(BaseModel):\n    x: int = 0",
        "import allotment\n@allotment.resources(cpu=2, memory='4Gi')\ndef step(): pass",
        "*",
    ),
}


def _measure(setup: str, code: str, module: str) -> float:
    """Microseconds: the module's cumulative import time, or ("*") the wall time of ``code``
    measured inside the interpreter with perf_counter after ``setup`` ran."""
    if module == "*":
        program = f"{setup}\nimport time\n_t = time.perf_counter()\n{code}\nprint((time.perf_counter() - _t) * 1e6)"
        out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)
        return float(out.stdout.strip().splitlines()[-1])
    program = f"{setup}\n{code}"
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", program], capture_output=True, text=True, check=True)
    for line in out.stderr.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) == 3 and parts[2] == module:
            return float(parts[1])
    raise RuntimeError(f"no import time line for {module!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15, help="runs per case, alternating (default 15)")
    args = parser.parse_args()
    samples: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(args.runs):
        for name, (setup, code, module) in CASES.items():
            samples[name].append(_measure(setup, code, module))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    base = medians["import pydantic"]
    print(f"{'case':50} {'median ms':>10} {'x import pydantic':>18}")
    for name, value in medians.items():
        print(f"{name:50} {value / 1000:10.1f} {value / base:18.2f}")
    ratio = medians["import allotment"] / base
    print(f"\nimport allotment / import pydantic = {ratio:.2f} (goal <= 1.3): {'met' if ratio <= 1.3 else 'NOT met'}")


if __name__ == "__main__":
    main()
