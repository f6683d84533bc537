"""Resolution (docs/design.md §2): max over step sources and `with`, defaults fill gaps, `set` replaces,
policy checks last; provenance; and the algebraic laws of merging."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import pytest
from allotment import AllotmentError, Resources, batch, kubernetes, resources, spec_of
from allotment.decorators import Layer, StepSpec
from allotment.explain import explain
from allotment.fields import FIELDS, NUMERIC_FIELDS
from allotment.policy import Policy
from allotment.profiles import get_profile
from allotment.resolve import SEED_DEFAULTS, resolve
from allotment.sources import Contributions, Source, Sourced
from allotment.withspec import WithSpec, parse_withs
from hypothesis import given, settings
from hypothesis import strategies as st

WORKFLOW = Source("workflow default", "default_args")


def values(resolved: Any) -> dict[str, object]:
    return {name: s.value for name, s in resolved.winners.items()}


def sources(resolved: Any) -> dict[str, str]:
    return {name: str(s.source) for name, s in resolved.winners.items()}


def step_spec(name: str = "train", **layers: Resources) -> StepSpec:
    spec = StepSpec(name)
    for decorator, res in layers.items():
        spec = spec.add(Layer(decorator, res))
    return spec


# -- step sources combine by maximum ---------------------------------------------------------


def test_seed_example_resources_and_batch_combine_by_maximum() -> None:
    @resources(cpu=4, memory=8192)
    @batch(cpu=2, memory=16384)
    def train() -> None: ...

    resolved = resolve(spec_of(train))
    assert resolved.backend == "batch"
    assert values(resolved) == {"cpu": 4000, "memory": 16384}
    assert sources(resolved) == {"cpu": "@resources", "memory": "@batch"}


def test_every_numeric_field_combines_by_maximum() -> None:
    @resources(cpu=1, memory=1024, gpu=2, disk=100, shared_memory=512, retry_memory_factor=2)
    @kubernetes(cpu=3, memory=512, gpu=1, disk=200, shared_memory=256, retry_memory_factor=1.5)
    def train() -> None: ...

    resolved = resolve(spec_of(train))
    assert values(resolved) == {"cpu": 3000, "memory": 1024, "gpu": 2, "disk": 200, "shared_memory": 512, "retry_memory_factor": 2.0}
    assert sources(resolved) == {
        "cpu": "@kubernetes",
        "memory": "@resources",
        "gpu": "@resources",
        "disk": "@kubernetes",
        "shared_memory": "@resources",
        "retry_memory_factor": "@resources",
    }


def test_defaults_are_never_part_of_the_maximum() -> None:
    @resources(cpu=0.5)
    def small() -> None: ...

    resolved = resolve(spec_of(small))
    assert values(resolved) == {"cpu": 500, "memory": 4096}
    assert sources(resolved) == {"cpu": "@resources", "memory": "default (built in)"}


def test_seed_defaults() -> None:
    resolved = resolve(None, step="bare")
    assert resolved.backend == "local"
    assert values(resolved) == {"cpu": 1000, "memory": 4096}
    assert SEED_DEFAULTS == Resources(cpu=1, memory=4096)


def test_operator_resources_are_a_step_source() -> None:
    @resources(cpu=2)
    def train() -> None: ...

    resolved = resolve(spec_of(train), extra=[(Resources(cpu=1, memory=9000), Source("resources="))])
    assert values(resolved) == {"cpu": 2000, "memory": 9000}
    assert sources(resolved) == {"cpu": "@resources", "memory": "resources="}


def test_resolve_needs_a_name_and_a_known_backend() -> None:
    with pytest.raises(AllotmentError, match="resolve\\(\\) needs a step name or a spec"):
        resolve(None)
    with pytest.raises(AllotmentError, match=r"^backend='k8s' is not a backend; backends are kubernetes, batch, local$"):
        resolve(None, step="x", backend="k8s")


# -- workflow defaults -------------------------------------------------------------------------


def test_workflow_defaults_fill_gaps_only_and_come_before_seed_defaults() -> None:
    @resources(cpu=0.5)
    def step() -> None: ...

    resolved = resolve(spec_of(step), defaults=[(Resources(cpu=8, memory=1000, disk=2048), WORKFLOW)])
    assert values(resolved) == {"cpu": 500, "memory": 1000, "disk": 2048}
    assert sources(resolved) == {"cpu": "@resources", "memory": "workflow default default_args", "disk": "workflow default default_args"}


def test_first_workflow_default_wins() -> None:
    first, second = Source("workflow default", "dag"), Source("workflow default", "group")
    resolved = resolve(None, step="s", defaults=[(Resources(memory=100), first), (Resources(memory=200, cpu=3), second)])
    assert values(resolved) == {"cpu": 3000, "memory": 100}
    assert sources(resolved)["memory"] == "workflow default dag"


def test_default_gpu_type_does_not_make_a_cpu_step_a_gpu_step() -> None:
    defaults = [(Resources(gpu_type="H100", gpu_vendor="amd"), WORKFLOW)]
    assert values(resolve(None, step="s", defaults=defaults)) == {"cpu": 1000, "memory": 4096}
    gpu_step = step_spec(resources=Resources(gpu=1))
    assert values(resolve(gpu_step, defaults=defaults)) == {"cpu": 1000, "memory": 4096, "gpu": 1, "gpu_type": "H100", "gpu_vendor": "amd"}


# -- runtime `with` ------------------------------------------------------------------------------


def test_with_raises_floors_but_never_lowers() -> None:
    @resources(cpu=4, memory=8192)
    @kubernetes(cpu=2)
    def train() -> None: ...

    resolved = resolve(spec_of(train), withs=parse_withs("kubernetes:cpu=8,memory=1024"))
    assert values(resolved) == {"cpu": 8000, "memory": 8192}
    assert sources(resolved) == {"cpu": "with --with 'kubernetes:cpu=8,memory=1024'", "memory": "@resources"}


def test_with_applies_only_to_the_matching_backend() -> None:
    withs = parse_withs("kubernetes:cpu=8;batch:memory=65536;gpu=1")
    on_k8s = resolve(None, step="free", backend="kubernetes", withs=withs)
    assert values(on_k8s) == {"cpu": 8000, "memory": 4096, "gpu": 1}
    on_batch = resolve(None, step="free", backend="batch", withs=withs)
    assert values(on_batch) == {"cpu": 1000, "memory": 65536, "gpu": 1}
    on_local = resolve(None, step="free", backend="local", withs=withs)
    assert values(on_local) == {"cpu": 1000, "memory": 4096, "gpu": 1}


def test_with_applies_only_to_the_matching_step() -> None:
    withs = parse_withs("train:memory=64Gi;prep.kubernetes:cpu=3;train.batch:cpu=5")
    train = resolve(None, step="train", backend="kubernetes", withs=withs)
    assert values(train) == {"cpu": 1000, "memory": 65536}
    prep = resolve(None, step="prep", backend="kubernetes", withs=withs)
    assert values(prep) == {"cpu": 3000, "memory": 4096}
    train_on_batch = resolve(None, step="train", backend="batch", withs=withs)
    assert values(train_on_batch) == {"cpu": 5000, "memory": 65536}


def test_pinned_step_ignores_with_for_another_backend() -> None:
    @batch(cpu=1)
    def report() -> None: ...

    resolved = resolve(spec_of(report), backend="kubernetes", withs=parse_withs("kubernetes:cpu=8,memory=32768;kubernetes"))
    assert resolved.backend == "batch"
    assert values(resolved) == {"cpu": 1000, "memory": 4096}
    pinned_with = resolve(spec_of(report), backend="kubernetes", withs=parse_withs("batch:cpu=8"))
    assert values(pinned_with)["cpu"] == 8000


def test_backend_only_with_sets_nothing() -> None:
    assert values(resolve(None, step="s", backend="kubernetes", withs=parse_withs("kubernetes"))) == {"cpu": 1000, "memory": 4096}


# -- `set` ---------------------------------------------------------------------------------------


def test_set_replaces_and_may_lower() -> None:
    @resources(cpu=4, memory=8192)
    def train() -> None: ...

    sets = parse_withs("cpu=0.5,memory=1024", "--set", kind="set")
    resolved = resolve(spec_of(train), withs=parse_withs("cpu=16"), sets=sets)
    assert values(resolved) == {"cpu": 500, "memory": 1024}
    assert sources(resolved) == {"cpu": "set --set 'cpu=0.5,memory=1024'", "memory": "set --set 'cpu=0.5,memory=1024'"}
    others = {s.value for s in resolved.contributions.for_field("cpu")}
    assert others == {4000, 16000, 500}  # explain still shows what was replaced


def test_set_for_another_step_or_backend_does_not_apply() -> None:
    sets = parse_withs("other:cpu=8;batch:memory=1", "--set", kind="set")
    assert values(resolve(None, step="s", backend="kubernetes", sets=sets)) == {"cpu": 1000, "memory": 4096}


def test_two_sets_disagreeing_is_an_error() -> None:
    sets = parse_withs("cpu=0.1;train:cpu=0.2", "--set", kind="set")
    with pytest.raises(AllotmentError) as info:
        resolve(None, step="train", sets=sets)
    assert str(info.value) == (
        "step 'train': cpu='200m' from set --set 'train:cpu=0.2' conflicts with cpu='100m' from set --set 'cpu=0.1'; "
        "give one 'set' per field"
    )


def test_set_needs_the_policy_to_allow_it() -> None:
    policy = Policy.from_mapping({"runtime": {"set": False}}, origin="team.yaml")
    with pytest.raises(AllotmentError) as info:
        resolve(None, step="train", sets=parse_withs("cpu=1", "--set", kind="set"), policy=policy)
    assert str(info.value) == (
        "step 'train': from set --set 'cpu=1' is a runtime 'set', which policy team.yaml does not allow; "
        "set runtime.set: true in the policy to allow it"
    )
    allowed = Policy.from_mapping({"runtime": {"set": True}})
    assert values(resolve(None, step="train", sets=parse_withs("cpu=0.25", "--set", kind="set"), policy=allowed))["cpu"] == 250


# -- consistency --------------------------------------------------------------------------------


def test_text_field_conflict_names_both_sources() -> None:
    @resources(gpu=1, gpu_type="H100")
    @kubernetes(gpu_type="A100")
    def train() -> None: ...

    with pytest.raises(AllotmentError) as info:
        resolve(spec_of(train))
    assert str(info.value) == (
        "step 'train': gpu_type='H100' from @resources conflicts with gpu_type='A100' from @kubernetes; "
        "text fields must agree across sources; remove one, or replace it with a 'set' override"
    )


def test_text_field_conflict_with_a_runtime_with() -> None:
    spec = step_spec(resources=Resources(gpu=1, gpu_vendor="nvidia"))
    with pytest.raises(
        AllotmentError, match=r"gpu_vendor='nvidia' from @resources conflicts with gpu_vendor='amd' from with --with 'gpu_vendor=amd'"
    ):
        resolve(spec, withs=parse_withs("gpu_vendor=amd"))


def test_set_resolves_a_text_field_conflict_only_if_sources_agree() -> None:
    spec = step_spec(resources=Resources(gpu=1, gpu_type="H100"))
    resolved = resolve(spec, sets=parse_withs("gpu_type=L4", "--set", kind="set"))
    assert values(resolved)["gpu_type"] == "L4"


def test_shared_memory_above_memory_is_an_error() -> None:
    @resources(memory=1024, shared_memory="2Gi")
    def train() -> None: ...

    with pytest.raises(AllotmentError) as info:
        resolve(spec_of(train))
    assert str(info.value) == (
        "step 'train': shared_memory='2Gi' from @resources is more than memory=1Gi from @resources "
        "(shared memory is charged to the step's memory); ask for at most 1Gi of shared memory, or more memory"
    )


def test_shared_memory_above_the_default_memory_is_an_error_naming_the_default() -> None:
    spec = step_spec(resources=Resources(shared_memory=8192))
    with pytest.raises(AllotmentError, match=r"shared_memory='8Gi' from @resources is more than memory=4Gi from default \(built in\)"):
        resolve(spec)


def test_shared_memory_equal_to_memory_is_fine() -> None:
    assert values(resolve(step_spec(resources=Resources(memory=2048, shared_memory=2048))))["shared_memory"] == 2048


def test_gpu_type_without_gpu_is_an_error() -> None:
    @resources(gpu_type="H100")
    def train() -> None: ...

    with pytest.raises(AllotmentError) as info:
        resolve(spec_of(train))
    assert str(info.value) == "step 'train': gpu_type='H100' from @resources asks for a GPU type but no GPU; set gpu to 1 or more as well"
    with pytest.raises(AllotmentError, match="asks for a GPU type but no GPU"):
        resolve(step_spec(resources=Resources(gpu=0, gpu_type="H100")))


def test_mig_profile_needs_nvidia() -> None:
    with pytest.raises(
        AllotmentError,
        match=r"^step 'train': gpu_type='1g.10gb' from @resources is a MIG profile, "
        r"which needs gpu_vendor 'nvidia' \(got 'amd' from @kubernetes\)",
    ):
        resolve(step_spec(resources=Resources(gpu=1, gpu_type="1g.10gb"), kubernetes=Resources(gpu_vendor="amd")))


# -- provenance ------------------------------------------------------------------------------------


def test_explain_names_the_true_source() -> None:
    @resources(cpu=4, memory="16Gi", gpu=1, gpu_type="H100", shared_memory=8192)
    @kubernetes(cpu=2, memory=32768, qos="guaranteed")
    def train() -> None: ...

    resolved = resolve(spec_of(train), withs=parse_withs("kubernetes:cpu=8"))
    rows = {row.field: row for row in explain(resolved, get_profile(None)).rows}
    assert {f: (r.value, r.source) for f, r in rows.items()} == {
        "cpu": (8000, "with --with 'kubernetes:cpu=8'"),
        "memory": (32768, "@kubernetes"),
        "gpu": (1, "@resources"),
        "gpu_type": ("H100", "@resources"),
        "shared_memory": (8192, "@resources"),
    }
    assert rows["cpu"].others == ("@resources 4", "@kubernetes 2")
    assert rows["memory"].others == ("@resources 16Gi",)


def test_resolved_is_immutable() -> None:
    resolved = resolve(None, step="s")
    with pytest.raises(AttributeError):
        resolved.step = "t"  # type: ignore[misc]
    with pytest.raises(TypeError):
        resolved.winners["cpu"] = resolved.winners["memory"]  # type: ignore[index]
    assert resolved.resources == Resources(cpu=1, memory=4096)


# -- retries ----------------------------------------------------------------------------------------


def test_memory_grows_per_oom_kill() -> None:
    resolved = resolve(step_spec(resources=Resources(memory=1000, retry_memory_factor=1.5)))
    assert resolved.with_memory_after(0) is resolved
    grown = [resolved.with_memory_after(k).value("memory") for k in (0, 1, 2, 3)]
    assert grown == [1000, 1500, 2250, 3375]
    third = resolved.with_memory_after(2, try_number=5)
    assert str(third.winners["memory"].source) == "retry (after 2 OOM kills: 1000Mi x 1.5^2)"
    assert third.notes == ("try 5: memory 1000Mi -> 2250Mi after 2 OOM kills of earlier tries (retry_memory_factor 1.5)",)
    assert resolved.with_memory_after(1).notes == ("memory 1000Mi -> 1500Mi after 1 OOM kill of earlier tries (retry_memory_factor 1.5)",)
    assert resolved.value("memory") == 1000  # unchanged


@pytest.mark.parametrize("count", [-1, 1.0, True, "1", None])
def test_the_oom_kill_count_is_a_whole_number(count: object) -> None:
    resolved = resolve(step_spec(resources=Resources(memory=1000, retry_memory_factor=1.5)), step="train")
    with pytest.raises(AllotmentError, match=r"step 'train': oom_kills=.* is not a count of OOM kills"):
        resolved.with_memory_after(count)  # type: ignore[arg-type]


@given(st.integers(1, 10**6), st.sampled_from([1.1, 1.25, 1.3, 1.5, 2.0, 3.7]), st.integers(0, 5))
def test_memory_growth_is_the_float64_ceiling_never_below_the_exact_one(memory: int, factor: float, kills: int) -> None:
    """Growth is computed in float64, as Argo's expr-lang does at run time, so both engines ask for
    the same amount; that is the exact ceiling or (e.g. 100 x 1.1 = 110.00000000000001) 1 MiB more."""
    resolved = resolve(step_spec(resources=Resources(memory=memory, retry_memory_factor=factor)))
    grown = resolved.with_memory_after(kills).value("memory")
    assert grown == math.ceil(memory * factor**kills)
    exact = math.ceil(Decimal(memory) * Decimal(str(factor)) ** kills)
    assert exact <= grown <= exact + 1


def test_memory_growth_is_capped_by_policy() -> None:
    resolved = resolve(step_spec(resources=Resources(memory=1000, retry_memory_factor=2)))
    policy = Policy.from_mapping({"caps": {"memory": 3000}}, origin="caps.toml")
    assert resolved.with_memory_after(1, policy).value("memory") == 2000
    capped = resolved.with_memory_after(2, policy)
    assert capped.value("memory") == 3000
    assert capped.notes[0] == "memory growth after 2 OOM kills held at 3000Mi by the cap 3000Mi of policy caps.toml (would be 4000Mi)"


def test_memory_growth_under_a_cap_below_the_request_keeps_the_request() -> None:
    resolved = resolve(step_spec(resources=Resources(memory=1000, retry_memory_factor=2)))
    policy = Policy.from_mapping({"caps": {"memory": 500}}, origin="caps.toml")
    held = resolved.with_memory_after(1, policy)
    assert held.value("memory") == 1000
    assert held.notes[0] == "memory growth after 1 OOM kill held at 1000Mi by the cap 500Mi of policy caps.toml (would be 2000Mi)"


def test_no_growth_without_a_factor() -> None:
    resolved = resolve(step_spec(resources=Resources(memory=1000)))
    assert resolved.with_memory_after(5) is resolved
    one = resolve(step_spec(resources=Resources(memory=1000, retry_memory_factor=1)))
    assert one.with_memory_after(5).value("memory") == 1000


def test_the_ladder_shows_each_oom_kill_up_to_the_cap() -> None:
    """``allotment explain``'s ladder (issue 12, scope 4): the first try, then one rung per OOM kill."""
    resolved = resolve(step_spec(resources=Resources(memory="16Gi", retry_memory_factor=1.5)))
    policy = Policy.from_mapping({"caps": {"memory": "32Gi"}}, origin="policy.yaml")
    growth = resolved.retry_growth(policy)
    assert growth is not None and growth.ladder() == (16384, 24576, 32768)
    assert growth.describe_ladder() == (
        "try 1: 16Gi; after an OOM kill: 24Gi; then 32Gi (held by the cap 32Gi of policy policy.yaml; 36Gi without it); "
        "any other failure retries with the memory it had"
    )
    free = resolved.retry_growth()
    assert free is not None and free.ladder() == (16384, 24576, 36864, 55296)
    assert free.describe_ladder() == (
        "try 1: 16Gi; after an OOM kill: 24Gi; then 36Gi; then 54Gi; x1.5 after each further OOM kill, up to 1Ei; "
        "any other failure retries with the memory it had"
    )
    # every rung is what a try after that many OOM kills asks for
    assert [resolved.with_memory_after(k, policy).value("memory") for k in range(3)] == list(growth.ladder())
    low = resolve(step_spec(resources=Resources(memory="16Gi", retry_memory_factor=1.5)))
    small = low.retry_growth(Policy.from_mapping({"caps": {"memory": "8Gi"}}, origin="p.yaml"))
    assert small is not None and small.ladder() == (16384, 16384)
    assert "(no growth: the cap 8Gi of policy p.yaml is below the first try's memory)" in small.describe_ladder()


# -- laws of merging (property-based) ---------------------------------------------------------------

KINDS = ["@resources", "resources=", "@kubernetes", "@batch", "with", "workflow default", "default", "set", "retry"]
source_st = st.builds(Source, st.sampled_from(KINDS), st.sampled_from(["", "a", "b", "--with 'x'"]))


@st.composite
def sourced_st(draw: st.DrawFn) -> Sourced:
    name = draw(st.sampled_from(FIELDS))
    if name == "retry_memory_factor":
        value: int | float | str = draw(st.sampled_from([1.0, 1.5, 2.0]))
    elif name in NUMERIC_FIELDS:
        value = draw(st.integers(0, 64))
    else:
        value = {"gpu_type": "H100", "gpu_vendor": "nvidia"}[name]  # text fields agree (a conflict is tested apart)
    return Sourced(name, value, draw(source_st))


contributions_st = st.builds(Contributions, st.frozensets(sourced_st(), max_size=12))


def same(a: Contributions, b: Contributions) -> bool:
    return a.items == b.items and a.winners() == b.winners() and a.resources() == b.resources()


@given(contributions_st)
def test_merge_with_empty_is_identity(a: Contributions) -> None:
    assert same(a.merge(Contributions()), a)
    assert same(Contributions().merge(a), a)


@given(contributions_st, contributions_st)
def test_merge_is_commutative(a: Contributions, b: Contributions) -> None:
    assert same(a.merge(b), b.merge(a))


@given(contributions_st, contributions_st, contributions_st)
def test_merge_is_associative(a: Contributions, b: Contributions, c: Contributions) -> None:
    assert same(a.merge(b).merge(c), a.merge(b.merge(c)))
    assert same(a.merge(b, c), a.merge(b).merge(c))


@given(contributions_st)
def test_merge_is_idempotent(a: Contributions) -> None:
    assert same(a.merge(a), a)


@given(contributions_st, contributions_st)
def test_adding_a_source_never_lowers_a_winner(a: Contributions, b: Contributions) -> None:
    merged = a.merge(b)
    for name, won in a.winners().items():
        after = merged.winners()[name]
        if name in NUMERIC_FIELDS:
            assert after.value >= won.value  # type: ignore[operator]
        else:
            assert after.value == won.value


@given(contributions_st)
def test_the_winner_is_the_maximum_and_its_source_gave_it(a: Contributions) -> None:
    for name, won in a.winners().items():
        assert won in a.items
        assert won.value == max(s.value for s in a.items if s.field == name)  # type: ignore[type-var]
    assert set(a.winners()) == {s.field for s in a.items}


def test_text_conflict_fails_in_either_order() -> None:
    a = Contributions.of(Resources(gpu_type="H100"), Source("@resources"))
    b = Contributions.of(Resources(gpu_type="L4"), Source("@kubernetes"))
    messages = set()
    for x, y in ((a, b), (b, a)):
        with pytest.raises(AllotmentError) as info:
            x.merge(y)
        messages.add(str(info.value))
    assert messages == {
        "gpu_type='H100' from @resources conflicts with gpu_type='L4' from @kubernetes; "
        "text fields must agree across sources; remove one, or replace it with a 'set' override"
    }


def test_resolve_combines_sources_with_the_merge_the_laws_above_test(monkeypatch: pytest.MonkeyPatch) -> None:
    """The laws above hold for the code resolve() runs: it combines every step source and applying
    `with` spec with one Contributions.merge, so a step's result is that merge's winners."""
    calls: list[int] = []
    real = Contributions.merge

    def spy(self: Contributions, *others: Contributions, step: str | None = None) -> Contributions:
        calls.append(len(others))
        return real(self, *others, step=step)

    monkeypatch.setattr(Contributions, "merge", spy)
    step = StepSpec("train", (Layer("resources", Resources(cpu=4, memory=8192)), Layer("batch", Resources(cpu=2, memory=16384))))
    withs = parse_withs(["batch:cpu=8", "kubernetes:gpu=1"])
    resolved = resolve(step, backend="batch", withs=withs, extra=[(Resources(disk=100), Source("resources=", "on X"))])
    assert calls == [4]  # @resources, @batch, resources=, the batch `with` (the kubernetes one does not apply)
    expected = real(*(Contributions.of(r, Source(k)) for r, k in [(Resources(cpu=4, memory=8192), "@resources")]))
    assert resolved.value("cpu") == 8000 and resolved.value("memory") == 16384 and resolved.value("disk") == 100
    assert expected.items <= resolved.contributions.items


# Laws through resolve(): decorators and `with` specs as a user writes them.

numbers = st.none() | st.integers(1, 64)
layer_st = st.builds(
    Resources.normalized,
    cpu=numbers.map(lambda v: v and v * 250),
    memory=numbers.map(lambda v: v and v * 512),
    gpu=st.none() | st.integers(0, 8),
    disk=numbers,
    shared_memory=st.none() | st.integers(1, 64),
)
with_st = st.lists(
    st.builds(
        lambda target, key, v: f"{target}{key}={v}",
        st.sampled_from(["", "kubernetes:", "batch:", "train:", "train.kubernetes:", "other:"]),
        st.sampled_from(["cpu", "memory", "gpu", "disk"]),
        st.integers(1, 64),
    ),
    max_size=4,
)


def applicable(r: Resources, k: Resources, specs: tuple[WithSpec, ...], name: str) -> list[tuple[Any, str]]:
    """(value, source) of every source that set ``name`` for step train on Kubernetes."""
    given_values = [(getattr(r, name), "@resources"), (getattr(k, name), "@kubernetes")]
    given_values += [(getattr(w.resources, name), str(w.source)) for w in specs if w.applies_to("train", "kubernetes")]
    return [(v, s) for v, s in given_values if v is not None]


# The values drawn go beyond any machine (a sane-bound warning, tested in test_cli_honesty.py).
@pytest.mark.filterwarnings("ignore:.*is more than the largest machine a major cloud sells:allotment.errors.AllotmentWarning")
@given(layer_st, layer_st, with_st, st.sampled_from(["kubernetes", "batch", "local"]))
@settings(max_examples=300)
def test_resolve_takes_the_maximum_and_names_a_source_that_gave_it(r: Resources, k: Resources, withs: list[str], backend: str) -> None:
    spec = step_spec(resources=r, kubernetes=k)
    specs = parse_withs(withs)
    memory = max((v for v, _ in applicable(r, k, specs, "memory")), default=4096)
    shm = max((v for v, _ in applicable(r, k, specs, "shared_memory")), default=0)
    if shm > memory:
        with pytest.raises(AllotmentError, match=r"^step 'train': shared_memory=.* is more than memory="):
            resolve(spec, backend=backend, withs=specs)
        return
    resolved = resolve(spec, backend=backend, withs=specs)
    assert resolved.backend == "kubernetes"  # pinned by @kubernetes whatever the deployment says
    explained = {row.field: row.source for row in explain(resolved, get_profile(None)).rows}
    for name in NUMERIC_FIELDS:
        given_values = applicable(r, k, specs, name)
        won = resolved.winners.get(name)
        if not given_values:
            assert (won.value if won else None) == getattr(SEED_DEFAULTS, name)
            continue
        assert won is not None
        top = max(v for v, _ in given_values)
        assert won.value == top
        assert str(won.source) in {src for v, src in given_values if v == top}
        assert explained[name] == str(won.source)


# The values drawn go beyond any machine (a sane-bound warning, tested in test_cli_honesty.py).
@pytest.mark.filterwarnings("ignore:.*is more than the largest machine a major cloud sells:allotment.errors.AllotmentWarning")
@given(layer_st, with_st, with_st)
@settings(max_examples=200)
def test_adding_a_with_never_lowers_a_step_value(r: Resources, first: list[str], more: list[str]) -> None:
    spec = step_spec(resources=r.model_copy(update={"shared_memory": None}))
    before = resolve(spec, backend="kubernetes", withs=parse_withs(first))
    after = resolve(spec, backend="kubernetes", withs=parse_withs(first + more))
    for name, won in before.winners.items():
        if won.source.kind != "default":
            assert after.winners[name].value >= won.value  # type: ignore[operator]


# The values drawn go beyond any machine (a sane-bound warning, tested in test_cli_honesty.py).
@pytest.mark.filterwarnings("ignore:.*is more than the largest machine a major cloud sells:allotment.errors.AllotmentWarning")
@given(layer_st, with_st)
@settings(max_examples=200)
def test_resolve_with_no_extra_sources_is_the_same(r: Resources, withs: list[str]) -> None:
    spec = step_spec(resources=r.model_copy(update={"shared_memory": None}))
    specs = parse_withs(withs)
    plain = resolve(spec, backend="kubernetes", withs=specs)
    padded = resolve(spec, backend="kubernetes", withs=specs, extra=[(Resources(), Source("resources="))], sets=())
    assert plain.winners == padded.winners
    again = resolve(spec, backend="kubernetes", withs=specs + specs)
    assert again.winners == plain.winners


def test_a_mig_profile_takes_nvidias_own_resource_key_as_vendor() -> None:
    resolved = resolve(step_spec(resources=Resources(gpu=1, gpu_type="1g.10gb", gpu_vendor="nvidia.com/gpu")))
    assert resolved.value("gpu_type") == "1g.10gb"


def test_retry_growth_from_runtime_memory_stays_under_the_runtime_cap() -> None:
    from allotment.withspec import parse_withs

    policy = Policy.from_mapping({"caps": {"memory": "256Gi"}, "runtime": {"caps": {"memory": "64Gi"}}}, origin="p.yaml")
    spec = step_spec(resources=Resources(memory=1024, retry_memory_factor=1.5))
    from_with = resolve(spec, withs=parse_withs("memory=64Gi"), policy=policy).with_memory_after(1, policy)
    assert from_with.value("memory") == 65536  # held by runtime.caps, not grown to 96Gi
    assert from_with.winners["memory"].source.is_runtime
    own = resolve(step_spec(resources=Resources(memory="64Gi", retry_memory_factor=1.5)), policy=policy).with_memory_after(1, policy)
    assert own.value("memory") == 98304  # a step's own memory grows up to caps.memory


# The laws through resolve() itself: the order in which sources are given never changes the
# result (values and the sources named), defaults and `set` included; adding a with never lowers.

_resource_dicts = st.fixed_dictionaries(
    {},
    optional={
        "cpu": st.integers(1, 64_000).map(lambda m: f"{m}m"),
        "memory": st.integers(4, 1 << 20),
        "gpu": st.integers(0, 8),
        "disk": st.integers(1, 1 << 20),
    },
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["resources=", "operator", "@batch"]), _resource_dicts), max_size=4),
    st.lists(_resource_dicts, max_size=3),
    _resource_dicts,
    st.randoms(use_true_random=False),
)
def test_resolution_does_not_depend_on_the_order_of_sources(
    extras: list[tuple[str, dict[str, Any]]], withs: list[dict[str, Any]], defaults: dict[str, Any], rnd: Any
) -> None:
    from allotment.sources import Source
    from allotment.withspec import parse_with

    extra = [(Resources(**fields), Source(kind, f"#{i}")) for i, (kind, fields) in enumerate(extras)]
    specs = [parse_with(",".join(f"{k}={v}" for k, v in w.items()), f"--with#{i}") for i, w in enumerate(withs) if w]
    wf_defaults = [(Resources(**defaults), Source("workflow default", "wf"))]
    first = resolve(step_spec(), extra=extra, withs=specs, defaults=wf_defaults)
    rnd.shuffle(extra)
    rnd.shuffle(specs)
    second = resolve(step_spec(), extra=extra, withs=specs, defaults=wf_defaults)
    assert first.winners == second.winners
    assert {str(s.source) for s in first.winners.values()} == {str(s.source) for s in second.winners.values()}
    fewer = resolve(step_spec(), extra=extra, withs=specs[:-1], defaults=wf_defaults) if specs else first
    for name, won in fewer.winners.items():
        if won.source.kind not in ("default", "workflow default") and isinstance(won.value, int):
            assert first.winners[name].value >= won.value  # a further with never lowers a value
