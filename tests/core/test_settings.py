"""Deployment settings: PRECEDENCE (cli, env, config, then the default), `with` from every source,
and the environment read when settings are loaded, not at import."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from allotment import AllotmentError, Resources, kubernetes, resources, spec_of
from allotment.settings import ENV, PRECEDENCE, load_settings
from allotment.withspec import parse_withs

DEFAULTS = {"backend": "local", "policy": None, "profile": "nvidia-gfd"}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ENV.values():
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def policies(tmp_path: Path) -> dict[str, str]:
    out = {}
    for layer in ("cli", "env", "config"):
        path = tmp_path / f"{layer}.yaml"
        path.write_text(f"caps: {{cpu: {len(layer)}}}\n")
        out[layer] = str(path)
    return out


def test_precedence_is_cli_env_config() -> None:
    assert PRECEDENCE == ("cli", "env", "config")
    assert ENV == {
        "with": "ALLOTMENT_WITH",
        "set": "ALLOTMENT_SET",
        "backend": "ALLOTMENT_BACKEND",
        "policy": "ALLOTMENT_POLICY",
        "profile": "ALLOTMENT_PROFILE",
    }


VALUES = {
    "backend": {"cli": "kubernetes", "env": "batch", "config": "local"},
    "profile": {"cli": "gke", "env": "eks-karpenter", "config": "nvidia-gfd"},
}


def chosen(setting: str, settings: Any) -> str | None:
    if setting == "backend":
        return str(settings.backend)
    if setting == "profile":
        return str(settings.profile.name)
    return settings.policy.origin if settings.policy else None


def layers_for(setting: str, present: tuple[str, ...], policies: dict[str, str]) -> dict[str, dict[str, str]]:
    table = VALUES.get(setting) or policies
    out: dict[str, dict[str, str]] = {"cli": {}, "env": {}, "config": {}}
    for layer in present:
        if layer == "env":
            out["env"][ENV[setting]] = table["env"]
        else:
            out[layer][setting] = table[layer]
    return out


PAIRS = [*itertools.combinations(PRECEDENCE, 2)]


@pytest.mark.parametrize("setting", ["backend", "policy", "profile"])
@pytest.mark.parametrize(("winner", "loser"), PAIRS, ids=[f"{a}>{b}" for a, b in PAIRS])
def test_each_precedence_pair(setting: str, winner: str, loser: str, policies: dict[str, str]) -> None:
    layers = layers_for(setting, (winner, loser), policies)
    settings = load_settings(cli=layers["cli"], env=layers["env"], config=layers["config"])
    expected = (VALUES.get(setting) or policies)[winner]
    assert chosen(setting, settings) == expected
    label = {"cli": f"--{setting}", "env": f"env {ENV[setting]}", "config": f"config [allotment] {setting}"}[winner]
    assert settings.origins[setting] == label


@pytest.mark.parametrize("setting", ["backend", "policy", "profile"])
@pytest.mark.parametrize("only", PRECEDENCE)
def test_any_source_beats_the_default(setting: str, only: str, policies: dict[str, str]) -> None:
    layers = layers_for(setting, (only,), policies)
    settings = load_settings(cli=layers["cli"], env=layers["env"], config=layers["config"])
    assert chosen(setting, settings) == (VALUES.get(setting) or policies)[only]


def test_defaults_come_last() -> None:
    settings = load_settings(env={})
    assert settings.backend == "local"
    assert settings.policy is None
    assert settings.profile.name == "nvidia-gfd"
    assert settings.withs == () and settings.sets == ()
    assert dict(settings.origins) == {"backend": "default", "policy": "default", "profile": "default"}


def test_empty_values_do_not_count() -> None:
    settings = load_settings(cli={"backend": None, "with": []}, env={"ALLOTMENT_BACKEND": ""}, config={"backend": "batch"})
    assert settings.backend == "batch"
    assert settings.origins["backend"] == "config [allotment] backend"


def test_with_specs_from_every_source_combine() -> None:
    settings = load_settings(
        cli={"with": ["kubernetes:cpu=8", "train:memory=64Gi"]},
        env={"ALLOTMENT_WITH": "kubernetes:gpu=1;disk=10Gi"},
        config={"with": "kubernetes:memory=1Gi"},
    )
    assert [str(w.source) for w in settings.withs] == [
        "with --with 'kubernetes:cpu=8'",
        "with --with 'train:memory=64Gi'",
        "with env ALLOTMENT_WITH 'kubernetes:gpu=1'",
        "with env ALLOTMENT_WITH 'disk=10Gi'",
        "with config [allotment] with 'kubernetes:memory=1Gi'",
    ]
    assert settings.backend == "kubernetes"
    assert settings.origins["backend"] == "with"

    @resources(cpu=2, memory=1024)
    def train() -> None: ...

    resolved = settings.resolve(spec_of(train))
    assert resolved.backend == "kubernetes"
    assert {k: v.value for k, v in resolved.winners.items()} == {"cpu": 8000, "memory": 65536, "gpu": 1, "disk": 10240}


def test_sets_from_cli_and_env() -> None:
    settings = load_settings(cli={"set": ["cpu=0.5"]}, env={"ALLOTMENT_SET": "memory=512"})
    assert [str(s.source) for s in settings.sets] == ["set --set 'cpu=0.5'", "set env ALLOTMENT_SET 'memory=512'"]

    @resources(cpu=4, memory=8192)
    def train() -> None: ...

    resolved = settings.resolve(spec_of(train))
    assert resolved.resources == Resources(cpu=0.5, memory=512)


def test_extra_withs_at_resolve_time_join_the_settings() -> None:
    settings = load_settings(cli={"with": ["cpu=2"]}, env={})
    resolved = settings.resolve(None, step="s", withs=parse_withs("memory=9000"))
    assert (resolved.value("cpu"), resolved.value("memory")) == (2000, 9000)


def test_several_backends_in_with_need_a_backend() -> None:
    with pytest.raises(AllotmentError) as info:
        load_settings(cli={"with": ["kubernetes:cpu=1", "batch:cpu=1"]}, env={})
    assert str(info.value) == (
        "--with names several backends (batch, kubernetes) and no backend was chosen; "
        "choose the backend for undecorated steps with --backend or ALLOTMENT_BACKEND"
    )
    settings = load_settings(cli={"with": ["kubernetes:cpu=1", "batch:cpu=1"]}, env={"ALLOTMENT_BACKEND": "batch"})
    assert settings.backend == "batch"


def test_with_for_one_step_does_not_choose_the_backend() -> None:
    assert load_settings(cli={"with": ["train.kubernetes:cpu=1"]}, env={}).backend == "local"


def test_bad_backend_names_its_source() -> None:
    with pytest.raises(AllotmentError) as info:
        load_settings(env={"ALLOTMENT_BACKEND": "k8s"})
    assert str(info.value) == "backend='k8s' from env ALLOTMENT_BACKEND is not a backend; backends are kubernetes, batch, local"


def test_bad_profile_names_its_source() -> None:
    with pytest.raises(AllotmentError) as info:
        load_settings(cli={"profile": "aks"}, env={})
    assert str(info.value).startswith("profile='aks' from --profile is not a cluster profile; use one of nvidia-gfd, gke, eks-karpenter")


def test_bad_with_in_env_names_env() -> None:
    with pytest.raises(AllotmentError, match=r"^from env ALLOTMENT_WITH 'kubernetes:cpus=1' unknown key 'cpus'"):
        load_settings(env={"ALLOTMENT_WITH": "kubernetes:cpus=1"})


def test_environment_is_read_at_call_time_not_import_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # allotment.settings was imported when this module was collected, before these variables existed.
    fresh = load_settings
    assert fresh().backend == "local"
    monkeypatch.setenv("ALLOTMENT_BACKEND", "batch")
    monkeypatch.setenv("ALLOTMENT_WITH", "batch:cpu=3")
    monkeypatch.setenv("ALLOTMENT_PROFILE", "gke")
    settings = fresh()
    assert settings.backend == "batch"
    assert settings.origins["backend"] == "env ALLOTMENT_BACKEND"
    assert settings.profile.name == "gke"
    assert [w.text for w in settings.withs] == ["batch:cpu=3"]
    monkeypatch.setenv("ALLOTMENT_BACKEND", "kubernetes")
    assert fresh().backend == "kubernetes"
    monkeypatch.delenv("ALLOTMENT_BACKEND")
    monkeypatch.delenv("ALLOTMENT_WITH")
    assert fresh().backend == "local"


def test_policy_from_env_applies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "p.toml"
    path.write_text("[caps]\ncpu = 2\n")
    monkeypatch.setenv("ALLOTMENT_POLICY", str(path))

    @kubernetes(cpu=4)
    def train() -> None: ...

    with pytest.raises(AllotmentError, match=rf"cpu='4' from @kubernetes exceeds the cap cpu <= 2 \(caps in policy {path}\)"):
        load_settings().resolve(spec_of(train))


def test_user_profile_file_from_config(tmp_path: Path) -> None:
    path = tmp_path / "cluster.toml"
    path.write_text('name = "ours"\nlabel = "example.com/gpu"\n[gpu_types]\nH100 = "h100"\n')
    settings = load_settings(env={}, config={"profile": str(path)})
    assert settings.profile.name == "ours"
    assert settings.profile.node_selector("H100") == {"example.com/gpu": "h100"}


def test_with_config_adds_a_faces_config_below_cli_and_env() -> None:
    loaded = load_settings(
        cli={"with": ["kubernetes:cpu=2"], "profile": "gke"}, env={"ALLOTMENT_WITH": "memory=8Gi", "ALLOTMENT_BACKEND": "batch"}
    )
    completed = loaded.with_config({"with": "gpu=1", "profile": "eks-karpenter", "backend": "kubernetes", "policy": None})
    assert [w.text for w in completed.withs] == ["kubernetes:cpu=2", "memory=8Gi", "gpu=1"]  # floors from every source
    assert completed.profile.name == "gke" and completed.origins["profile"] == "--profile"  # cli beats config
    assert completed.backend == "batch" and completed.origins["backend"] == "env ALLOTMENT_BACKEND"  # env beats config
    plain = load_settings(cli={}, env={}).with_config({"profile": "eks-karpenter"})
    assert plain.profile.name == "eks-karpenter" and plain.origins["profile"] == "config [allotment] profile"
    assert load_settings(cli={}, env={}).with_config({}).origins["profile"] == "default"


def test_using_settings_puts_settings_in_force_for_a_block_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from allotment.settings import current_settings, using_settings

    monkeypatch.setenv("ALLOTMENT_BACKEND", "batch")
    chosen = load_settings(cli={"backend": "kubernetes"}, env={})
    assert current_settings().backend == "batch"  # none in force: loaded from the environment now
    with using_settings(chosen):
        assert current_settings() is chosen
        assert current_settings(lambda: pytest.fail("not loaded while settings are in force")) is chosen
    assert current_settings().backend == "batch"
