"""deploy/: the Kubernetes manifests, checked the way a reviewer reads them.

Every YAML file is parsed. The base is read as its kustomization lists it; where `kustomize` or
`kubectl` (which carries kustomize) is on PATH, each overlay is also rendered and checked as it
would be applied. The tables below say what each part must be; the code and pyproject.toml say
what is real (entry points, their flags, the settings read, the JetStream consumer names).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import re
import shutil
import socket
import subprocess
import sys
import tomllib
import urllib.request
from collections.abc import Iterator
from importlib import import_module
from pathlib import Path
from typing import Any

import nats
import nats.errors
import pytest
import yaml

from sluice.config import Settings
from sluice.stack.nats_process import nats_binary
from sluice.stack.ports import free_port
from sluice_scheduler.backlog import KINDS

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
BASE = DEPLOY / "base"
OVERLAYS = sorted(p.parent for p in (DEPLOY / "overlays").glob("*/kustomization.yaml"))
KUSTOMIZATIONS = sorted(DEPLOY.rglob("kustomization.yaml"))
SCRIPTS: dict[str, str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]

Manifest = dict[str, Any]

# Deployment, the flag its args listen with, the port that flag names.
GRPC_SERVERS = [
    ("staging", "--address", 50051),
    ("scheduler", "--address", 50052),
    ("worker-cpu", "--health-address", 8081),
    ("worker-gpu", "--health-address", 8081),
    ("exporter", "--health-address", 8081),
]
# Deployment, the flag its args listen with, the port, the HTTP path its probes ask.
HTTP_SERVERS = [("dashboard", "--address", 8501, "/_stcore/health")]
# ScaledObject, the Deployment it scales, the kind of task that Deployment pulls.
SCALERS = [
    ("worker-cpu", "worker-cpu", "cpu"),
    ("worker-gpu", "worker-gpu", "gpu"),
    ("exporter", "exporter", "export"),
]
# ConfigMap setting, the Service and port it must name.
ADDRESSES = [
    ("SLUICE_NATS_URL", "nats", 4222),
    ("SLUICE_STAGING_ADDRESS", "staging", 50051),
    ("SLUICE_SCHEDULER_ADDRESS", "scheduler", 50052),
]
# The Secrets an operator creates (deploy/README.md, deploy/secrets.example.yaml), and their keys.
SECRETS = {
    "sluice-secrets": {"database-url", "internal-token", "nats-password"},
    "sluice-postgres": {"password"},
    "sluice-api-keys": {"api_keys.json"},
}
OPTIONAL_SECRETS = {"sluice-store-credentials"}
SECRET_SETTINGS = {"SLUICE_DATABASE_URL", "SLUICE_INTERNAL_TOKEN", "SLUICE_NATS_PASSWORD"}
GPU_WORKLOADS = {"Deployment/worker-gpu", "Deployment/triton"}
GPU_LABEL = "sluice.dev/gpu"
# Overlay: whether it generates its own Secrets (else they are created by hand).
OVERLAY_SECRETS = {"local-kind": True, "fleet": False}
OVERLAY_HAS_GPUS = {"local-kind": False, "fleet": True}
SLUICE_UID = 10001


def load_yaml(path: Path) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def listed_resources(directory: Path) -> list[Manifest]:
    """The objects a kustomization lists under `resources` (recursively), before any patch."""
    docs: list[Manifest] = []
    for entry in load_yaml(directory / "kustomization.yaml")[0].get("resources", []):
        path = directory / entry
        docs += listed_resources(path) if path.is_dir() else load_yaml(path)
    return docs


BASE_DOCS = listed_resources(BASE)
NAMESPACE = load_yaml(BASE / "kustomization.yaml")[0]["namespace"]


def find(docs: list[Manifest], kind: str, name: str) -> Manifest:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def pod_specs(docs: list[Manifest]) -> Iterator[tuple[str, Manifest, Manifest]]:
    """(Kind/name, the object, its pod spec) for every workload."""
    for doc in docs:
        if doc["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
            yield f"{doc['kind']}/{doc['metadata']['name']}", doc, doc["spec"]["template"]["spec"]


def containers(spec: Manifest) -> list[Manifest]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def only_container(docs: list[Manifest], deployment: str) -> Manifest:
    spec = find(docs, "Deployment", deployment)["spec"]["template"]["spec"]
    assert len(spec["containers"]) == 1
    return spec["containers"][0]


def flag_value(args: list[str], flag: str) -> str:
    for i, arg in enumerate(args):
        if arg == flag:
            return args[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    raise AssertionError(f"{flag} missing from {args}")


def asks_for_gpu(spec: Manifest) -> bool:
    return any("nvidia.com/gpu" in c.get("resources", {}).get("limits", {}) for c in containers(spec))


def is_sluice_image(image: str) -> bool:
    return image.rsplit(":", 1)[0].rsplit("/", 1)[-1] == "sluice"


WORKLOADS = {name: spec for name, _, spec in pod_specs(BASE_DOCS)}
SLUICE_CONTAINERS = {
    f"{name}/{c['name']}": c
    for name, spec in WORKLOADS.items()
    for c in containers(spec)
    if is_sluice_image(c["image"])
}


def lockdown_problems(spec: Manifest) -> list[str]:
    """What keeps a pod from running as non-root with a read-only root and no capabilities."""
    problems = []
    pod = spec.get("securityContext", {})
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key):
            problems.append(f"pod sets {key}")
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for c in containers(spec):
        sc = c.get("securityContext", {})
        name = c["name"]
        if not (sc.get("runAsNonRoot") or pod.get("runAsNonRoot")):
            problems.append(f"{name}: runAsNonRoot is not set")
        if sc.get("runAsUser", pod.get("runAsUser")) == 0:
            problems.append(f"{name}: runs as uid 0")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{name}: root filesystem is writable")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: privilege escalation is allowed")
        if sc.get("privileged"):
            problems.append(f"{name}: privileged")
        capabilities = sc.get("capabilities", {})
        if "ALL" not in capabilities.get("drop", []) or capabilities.get("add"):
            problems.append(f"{name}: capabilities are not all dropped")
        requests = c.get("resources", {}).get("requests", {})
        limits = c.get("resources", {}).get("limits", {})
        if not {"cpu", "memory"} <= requests.keys() or "memory" not in limits:
            problems.append(f"{name}: needs cpu and memory requests and a memory limit")
        tmp = [m for m in c.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
        if not tmp or "emptyDir" not in volumes.get(tmp[0]["name"], {}):
            problems.append(f"{name}: /tmp is not an emptyDir")
        if ":" not in c["image"].rsplit("/", 1)[-1] or c["image"].endswith(":latest"):
            problems.append(f"{name}: image {c['image']} has no fixed tag")
    return problems


def secret_references(docs: list[Manifest]) -> set[tuple[str, str | None]]:
    """(Secret, key) for every key a container reads; key None for a whole required Secret."""
    found: set[tuple[str, str | None]] = set()
    for _, _, spec in pod_specs(docs):
        secret_volumes = {
            v["name"]: v["secret"]["secretName"] for v in spec.get("volumes", []) if "secret" in v
        }
        for c in containers(spec):
            for source in c.get("envFrom", []):
                ref = source.get("secretRef")
                if ref and not ref.get("optional"):
                    found.add((ref["name"], None))
            values = []
            for env in c.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    found.add((ref["name"], ref["key"]))
                values.append(env.get("value", ""))
            for mount in c.get("volumeMounts", []):
                if mount["name"] not in secret_volumes:
                    continue
                secret = secret_volumes[mount["name"]]
                prefix = mount["mountPath"] + "/"
                files = [v.removeprefix(prefix) for v in values if v.startswith(prefix)]
                found.update((secret, f) for f in files or [None])
    return found


def settings_read() -> set[str]:
    """Every SLUICE_* variable the library's Settings, its webhook delivery or a service reads."""
    names = set()
    readers = ("config.py", "webhooks.py", "webhook_addresses.py")
    library = [ROOT / "src" / "sluice" / name for name in readers]
    for path in [*library, *ROOT.glob("services/*/sluice_*/**/*.py")]:
        text = path.read_text()
        names |= {f"SLUICE_{n}" for n in re.findall(r'_env(?:_seconds|_days)?\("([A-Z_]+)"', text)}
        names |= set(re.findall(r'"(SLUICE_[A-Z_]+)"', text))
    return names


def service_port(docs: list[Manifest], name: str, port: int) -> Manifest:
    service = find(docs, "Service", name)
    matching = [p for p in service["spec"]["ports"] if p["port"] == port]
    assert matching, f"Service {name} has no port {port}"
    return matching[0]


# -- files -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(DEPLOY.rglob("*.yaml")), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_yaml_file_parses_into_named_objects(path: Path) -> None:
    docs = load_yaml(path)
    assert docs, f"{path} is empty"
    for doc in docs:
        assert isinstance(doc, dict) and doc.get("apiVersion") and doc.get("kind"), doc
        if doc["kind"] not in {"Kustomization", "Component"}:
            assert doc.get("metadata", {}).get("name"), doc


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS, ids=lambda p: str(p.parent.relative_to(DEPLOY)))
def test_each_kustomization_lists_files_that_exist_and_every_file_it_holds(kustomization: Path) -> None:
    directory = kustomization.parent
    k = load_yaml(kustomization)[0]
    entries = [*k.get("resources", []), *k.get("components", [])]
    entries += [p["path"] for p in k.get("patches", []) if "path" in p]
    for generator in [*k.get("configMapGenerator", []), *k.get("secretGenerator", [])]:
        entries += [f.split("=", 1)[-1] for f in generator.get("files", [])]
    for entry in entries:
        path = (directory / entry).resolve()
        assert path.is_file() or (path / "kustomization.yaml").is_file(), f"{entry} in {kustomization}"
    listed = {(directory / e).resolve() for e in entries}
    unlisted = [p.name for p in directory.iterdir() if p.is_file() and p != kustomization and p not in listed]
    assert not unlisted, f"{directory} holds files its kustomization never uses: {unlisted}"


def test_the_dockerfile_installs_the_project_in_one_step_and_runs_as_the_pods_uid() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    # One install step, as scripts/install.sh: the project with its dependencies, then pip check.
    assert re.search(r'pip install "?\.(\[[a-z,]+\])?"?[ \n]', dockerfile) and "pip check" in dockerfile
    assert "--no-deps" not in dockerfile
    # Every folder the wheel's packages are found in is copied in (the dashboard once was not).
    found_in = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    for folder in {where.split("/")[0] for where in found_in["where"]}:
        assert re.search(rf"^COPY {re.escape(folder)} \./{re.escape(folder)}$", dockerfile, re.M), folder
    assert '".[dashboard]"' in dockerfile  # the dashboard's Deployment runs from the same image
    # opencv-python (what the model packages require) loads libGL and GLib when imported.
    assert "libgl1" in dockerfile and "libglib2.0-0" in dockerfile
    assert f"USER {SLUICE_UID}" in dockerfile
    for name, spec in WORKLOADS.items():
        if any(is_sluice_image(c["image"]) for c in spec["containers"]):
            assert spec["securityContext"]["runAsUser"] == SLUICE_UID, name


# -- every pod ---------------------------------------------------------------------------------


@pytest.mark.parametrize("workload", sorted(WORKLOADS))
def test_every_container_is_non_root_read_only_without_capabilities_and_sized(workload: str) -> None:
    assert lockdown_problems(WORKLOADS[workload]) == []


def test_every_service_selects_pods_and_names_their_ports() -> None:
    for service in [d for d in BASE_DOCS if d["kind"] == "Service"]:
        selector = service["spec"]["selector"]
        pods = [
            (spec, doc["spec"]["template"]["metadata"]["labels"])
            for _, doc, spec in pod_specs(BASE_DOCS)
            if selector.items() <= doc["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert pods, f"Service {service['metadata']['name']} selects no pod"
        for spec, _ in pods:
            ports = {
                p.get("name"): p["containerPort"] for c in spec["containers"] for p in c.get("ports", [])
            }
            for port in service["spec"]["ports"]:
                target = port.get("targetPort", port["port"])
                assert target in ports or target in ports.values(), (service["metadata"]["name"], target)


# -- the Sluice services -----------------------------------------------------------------------


@pytest.mark.parametrize(("deployment", "flag", "port"), GRPC_SERVERS)
def test_every_grpc_server_is_probed_on_the_port_its_args_listen_on(
    deployment: str, flag: str, port: int
) -> None:
    container = only_container(BASE_DOCS, deployment)
    host, listen = flag_value(container["args"], flag).rsplit(":", 1)
    assert (host, int(listen)) == ("0.0.0.0", port)
    assert port in [p["containerPort"] for p in container["ports"]]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == port, probe


@pytest.mark.parametrize(("deployment", "flag", "port", "path"), HTTP_SERVERS)
def test_every_http_server_is_probed_on_the_port_its_args_listen_on(
    deployment: str, flag: str, port: int, path: str
) -> None:
    container = only_container(BASE_DOCS, deployment)
    host, listen = flag_value(container["args"], flag).rsplit(":", 1)
    assert (host, int(listen)) == ("0.0.0.0", port)
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("readinessProbe", "livenessProbe"):
        check = container[probe]["httpGet"]
        assert check["path"] == path and named.get(check["port"], check["port"]) == port, probe
    service_port(BASE_DOCS, deployment, port)


def test_every_sluice_deployment_is_a_probed_server() -> None:
    running_sluice = {
        doc["metadata"]["name"]
        for _, doc, spec in pod_specs(BASE_DOCS)
        if any(is_sluice_image(c["image"]) for c in spec["containers"])
    }
    assert running_sluice == {d for d, _, _ in GRPC_SERVERS} | {d for d, _, _, _ in HTTP_SERVERS}


async def test_the_dashboards_command_serves_what_its_probe_asks(tmp_path: Path) -> None:
    """The Deployment's command and args, run here on a free port: the probe's path answers ok."""
    pytest.importorskip("streamlit")
    ((deployment, _, port, path),) = HTTP_SERVERS
    container = only_container(BASE_DOCS, deployment)
    here = free_port()
    args = [a.replace(f"0.0.0.0:{port}", f"127.0.0.1:{here}") for a in map(str, container["args"])]
    script = Path(sys.executable).with_name(container["command"][0])
    env = {**os.environ, "HOME": str(tmp_path), "SLUICE_STAGING_ADDRESS": "127.0.0.1:1"}
    process = subprocess.Popen(
        [str(script), *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        answer = ""
        for _ in range(300):
            with contextlib.suppress(OSError):
                answer = await asyncio.to_thread(_http_get, here, path)
                break
            await asyncio.sleep(0.1)
        assert answer == "ok", answer
    finally:
        process.terminate()
        process.wait(timeout=30)


def _http_get(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
        return str(response.read().decode())


@pytest.mark.parametrize("name", sorted(SLUICE_CONTAINERS))
def test_commands_are_entry_points_and_args_are_flags_they_accept(name: str) -> None:
    container = SLUICE_CONTAINERS[name]
    assert len(container["command"]) == 1 and container["command"][0] in SCRIPTS, container["command"]
    module = import_module(SCRIPTS[container["command"][0]].split(":")[0])
    declared = set(re.findall(r'add_argument\(\s*"(--[a-z0-9-]+)"', inspect.getsource(module)))
    args = [str(a) for a in container.get("args", [])]
    used = {a.split("=", 1)[0] for a in args if a.startswith("--")}
    assert used <= declared, f"{sorted(used - declared)} not flags of {container['command'][0]}"
    parse = getattr(module, "parse_args", None)
    if parse is not None:  # the entry point exposes its parser: it must accept the args as given
        with_settings = len(inspect.signature(parse).parameters) == 2
        assert parse(*([args, Settings()] if with_settings else [args])) is not None


@pytest.mark.parametrize(("setting", "service", "port"), ADDRESSES)
def test_the_config_map_names_services_and_ports_that_exist(setting: str, service: str, port: int) -> None:
    value = find(BASE_DOCS, "ConfigMap", "sluice-config")["data"][setting]
    assert value.split("://")[-1] == f"{service}:{port}"
    service_port(BASE_DOCS, service, port)


def test_only_settings_the_code_reads_are_set_and_secrets_come_from_secrets() -> None:
    known = settings_read()
    config = find(BASE_DOCS, "ConfigMap", "sluice-config")["data"]
    assert config.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").startswith("http://otel-collector")
    set_here = {k for k in config if k.startswith("SLUICE_")}
    assert not set_here & SECRET_SETTINGS
    for name, container in SLUICE_CONTAINERS.items():
        for env in container.get("env", []):
            if env["name"].startswith("SLUICE_"):
                set_here.add(env["name"])
            if env["name"] in SECRET_SETTINGS:
                assert "secretKeyRef" in env.get("valueFrom", {}), (name, env["name"])
    assert set_here <= known, f"set but never read: {sorted(set_here - known)}"


def test_the_secrets_read_are_the_documented_ones() -> None:
    readme = (DEPLOY / "README.md").read_text()
    examples = {
        d["metadata"]["name"]: set(d["stringData"]) for d in load_yaml(DEPLOY / "secrets.example.yaml")
    }
    for secret, key in secret_references(BASE_DOCS):
        assert key in SECRETS.get(secret, set()), (secret, key)
    for secret, keys in SECRETS.items():
        assert secret in readme and keys <= examples[secret], secret
        assert all(key in readme for key in keys), secret
    assert examples.keys() >= OPTIONAL_SECRETS and all(s in readme for s in OPTIONAL_SECRETS)
    keys_file = {
        e["value"]
        for c in SLUICE_CONTAINERS.values()
        for e in c.get("env", [])
        if e["name"] == "SLUICE_API_KEYS_FILE"
    }
    assert len(keys_file) == 1 and keys_file.pop().endswith("/api_keys.json")


# -- scaling, NATS, GPUs -----------------------------------------------------------------------


@pytest.mark.parametrize(("scaled_object", "deployment", "kind"), SCALERS)
def test_keda_scales_each_worker_on_the_schedulers_backlog_of_its_kind(
    scaled_object: str, deployment: str, kind: str
) -> None:
    spec = find(BASE_DOCS, "ScaledObject", scaled_object)["spec"]
    assert spec["scaleTargetRef"]["name"] == deployment
    assert spec["minReplicaCount"] >= 1
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "metrics-api"
    meta = trigger["metadata"]
    backlog = service_port(BASE_DOCS, "scheduler", 8082)["port"]
    assert meta["url"] == f"http://scheduler.{NAMESPACE}.svc.cluster.local:{backlog}/backlog"
    assert meta["valueLocation"] == kind and kind in KINDS
    assert int(meta["targetValue"]) >= 1
    scheduler = only_container(BASE_DOCS, "scheduler")
    assert flag_value(scheduler["args"], "--backlog-address").endswith(f":{backlog}")
    container = only_container(BASE_DOCS, deployment)
    if kind == "export":
        assert container["command"] == ["sluice-exporter"]
    else:
        assert container["command"] == ["sluice-worker"]
        assert flag_value(container["args"], "--machine-type") == kind


def test_every_scaled_object_is_in_the_table() -> None:
    names = {d["metadata"]["name"] for d in BASE_DOCS if d["kind"] == "ScaledObject"}
    assert names == {name for name, _, _ in SCALERS}


def test_nats_is_a_jetstream_cluster_whose_routes_name_every_server() -> None:
    statefulset = find(BASE_DOCS, "StatefulSet", "nats")
    headless = find(BASE_DOCS, "Service", statefulset["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    replicas = statefulset["spec"]["replicas"]
    assert replicas == 3
    conf = (BASE / "nats.conf").read_text()
    assert re.search(r"^server_name: \$POD_NAME$", conf, re.M) and "jetstream {" in conf
    for i in range(replicas):
        assert f"nats://nats-{i}.{headless['metadata']['name']}:6222" in conf
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    pod_name = [e for e in container["env"] if e["name"] == "POD_NAME"]
    assert pod_name[0]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    store = re.search(r"store_dir: (\S+)", conf)
    assert store and any(store.group(1).startswith(m["mountPath"]) for m in container["volumeMounts"])


def test_the_nats_configuration_is_one_nats_server_accepts() -> None:
    try:
        binary = nats_binary()
    except RuntimeError:
        pytest.skip("no nats-server binary")
    result = subprocess.run(
        [str(binary), "-t", "-c", str(BASE / "nats.conf")],
        env={"POD_NAME": "nats-0", "SLUICE_NATS_PASSWORD": "a-password"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr


async def test_the_fleets_nats_lets_in_only_the_services_user(tmp_path: Path) -> None:
    """base/nats.conf run for real (its ports and folders moved to this test's): a client without
    the services' password, or with a wrong one, is refused; user `sluice` with it gets in."""
    try:
        binary = nats_binary()
    except RuntimeError:
        pytest.skip("no nats-server binary")
    client, cluster, monitor = free_port(), free_port(), free_port()
    conf = (BASE / "nats.conf").read_text()
    for old, new in (
        ("0.0.0.0:4222", f"127.0.0.1:{client}"),
        ("0.0.0.0:6222", f"127.0.0.1:{cluster}"),
        ("0.0.0.0:8222", f"127.0.0.1:{monitor}"),
        ("/data/jetstream", str(tmp_path / "jetstream")),
        ("/var/run/nats/nats.pid", str(tmp_path / "nats.pid")),
    ):
        assert old in conf, old
        conf = conf.replace(old, new)
    (tmp_path / "nats.conf").write_text(conf)
    server = subprocess.Popen(
        [str(binary), "-c", str(tmp_path / "nats.conf")],
        env={"POD_NAME": "nats-0", "SLUICE_NATS_PASSWORD": "the-password"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"nats://127.0.0.1:{client}"
    try:
        for _ in range(100):
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", client), timeout=0.2).close()
                break
            await asyncio.sleep(0.1)
        for credentials in ({}, {"user": "sluice", "password": "not-the-password"}):
            with pytest.raises((nats.errors.Error, OSError)):
                await nats.connect(url, allow_reconnect=False, connect_timeout=2, **credentials)
        nc = await nats.connect(url, user="sluice", password="the-password", allow_reconnect=False)
        sub = await nc.subscribe("sluice.workers.cpu")
        await nc.publish("sluice.workers.cpu", b"beat")
        assert (await sub.next_msg(timeout=5)).data == b"beat"
        await nc.close()
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.parametrize("workload", sorted(GPU_WORKLOADS))
def test_gpu_workloads_ask_for_a_gpu_on_gpu_nodes_and_are_labelled(workload: str) -> None:
    kind, name = workload.split("/")
    doc = find(BASE_DOCS, kind, name)
    spec = WORKLOADS[workload]
    assert doc["metadata"]["labels"][GPU_LABEL] == "true"
    assert all(int(c["resources"]["limits"]["nvidia.com/gpu"]) >= 1 for c in spec["containers"])
    assert spec["nodeSelector"]
    assert any(t["key"] == "nvidia.com/gpu" for t in spec["tolerations"])


def test_everything_tied_to_a_gpu_carries_the_gpu_label() -> None:
    gpu_names = {w.split("/")[1] for w in GPU_WORKLOADS}
    asking = {n for n, spec in WORKLOADS.items() if asks_for_gpu(spec)}
    assert asking == GPU_WORKLOADS
    for doc in BASE_DOCS:
        ref = doc.get("spec", {}).get("scaleTargetRef", {}).get("name")
        if ref in gpu_names:
            assert doc["metadata"]["labels"][GPU_LABEL] == "true", doc["metadata"]["name"]


# -- the overlays, rendered --------------------------------------------------------------------


def render(overlay: Path) -> list[Manifest]:
    kustomize, kubectl = shutil.which("kustomize"), shutil.which("kubectl")
    if kustomize:
        command = [kustomize, "build", str(overlay)]
    elif kubectl:
        command = [kubectl, "kustomize", str(overlay)]
    else:
        pytest.skip("neither kustomize nor kubectl is on PATH")
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc is not None]


def test_the_overlay_table_covers_every_overlay() -> None:
    assert {o.name for o in OVERLAYS} == set(OVERLAY_SECRETS) == set(OVERLAY_HAS_GPUS)


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: p.name)
def test_rendered_overlay_is_locked_down_namespaced_and_its_secrets_resolve(overlay: Path) -> None:
    docs = render(overlay)
    problems = {name: lockdown_problems(spec) for name, _, spec in pod_specs(docs)}
    assert {name: p for name, p in problems.items() if p} == {}
    assert all(d["metadata"].get("namespace") == NAMESPACE for d in docs if d["kind"] != "Namespace")
    secrets = {d["metadata"]["name"]: set(d.get("data", {})) for d in docs if d["kind"] == "Secret"}
    for secret, key in secret_references(docs):
        if OVERLAY_SECRETS[overlay.name]:
            assert secret in secrets and (key is None or key in secrets[secret]), (secret, key)
        else:
            assert key in SECRETS.get(secret, set()), (secret, key)
    asking = {name for name, _, spec in pod_specs(docs) if asks_for_gpu(spec)}
    labelled = [d for d in docs if GPU_LABEL in d["metadata"].get("labels", {})]
    if OVERLAY_HAS_GPUS[overlay.name]:
        assert asking == GPU_WORKLOADS and labelled
    else:
        assert asking == set() and labelled == []
    targets = {d["spec"]["scaleTargetRef"]["name"] for d in docs if d["kind"] == "ScaledObject"}
    deployments = {d["metadata"]["name"] for d in docs if d["kind"] == "Deployment"}
    assert targets <= deployments
