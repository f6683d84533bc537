"""A stand-in for the Kubernetes API server, for tests that run Airflow tasks with no cluster.

By default it answers the calls a KubernetesPodOperator makes before its pod exists: listing pods
(none found) and creating one, which it records and then refuses with ``403 Forbidden`` ("this
server runs no pods"), so the task stops right after the pod body was sent. Nothing in Airflow or
the kubernetes client is patched: the operator loads a kubeconfig that points here.

A test can make it do more (``api.plan``: one behaviour per pod creation, in order; then the
default again), to see what Airflow and allotment do when a pod ends, or when creating it fails:

================  ===========================================================================
``refuse``        record the body, answer 403 (the default)
``oom``           create the pod, already ended: phase Failed, container ``base`` terminated
                  ``OOMKilled``, exit code 137 (what the kubelet reports after the kernel's OOM
                  killer ended the container)
``error``         the same with reason ``Error``, exit code 1 (a plain failure)
``evicted``       phase Failed, pod reason ``Evicted`` (node memory pressure), ``base``
                  terminated ``ContainerStatusUnknown``, exit code 137: a SIGKILL, no OOM kill
``succeed``       phase Succeeded, ``base`` terminated ``Completed``, exit code 0
``lost``          create the pod (running, and it stays so) but answer ``500``, as when the
                  API server's response is lost; a retried create then gets ``409 AlreadyExists``
``500``           answer ``500`` and create nothing
================  ===========================================================================

Created pods answer ``GET`` (by name, and listed with a ``labelSelector`` of ``k=v``, ``k!=v``,
``k`` and ``!k`` terms), ``PATCH`` (labels merged) and ``DELETE``; their logs are empty, their
events none. ``api.pods`` holds the pods that exist now.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["BEHAVIOURS", "FakeKubeAPI"]

_PODS = re.compile(r"^/api/v1/namespaces/(?P<namespace>[^/]+)/pods/?$")
_POD = re.compile(r"^/api/v1/namespaces/(?P<namespace>[^/]+)/pods/(?P<name>[^/]+)(?P<log>/log)?/?$")
_EVENTS = re.compile(r"^/api/v1/namespaces/[^/]+/events/?$|^/apis/events\.k8s\.io/v1/namespaces/[^/]+/events/?$")
REFUSAL = "allotment test API: pod body recorded; this server runs no pods"
BEHAVIOURS = ("refuse", "oom", "error", "evicted", "succeed", "lost", "500")

_ENDED: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    # behaviour -> (phase, pod status extras, base container's terminated state)
    "oom": ("Failed", {}, {"exitCode": 137, "reason": "OOMKilled"}),
    "error": ("Failed", {}, {"exitCode": 1, "reason": "Error", "message": "Traceback ... RuntimeError: boom"}),
    "evicted": (
        "Failed",
        {"reason": "Evicted", "message": "The node was low on resource: memory. Threshold quantity: 100Mi, available: 92Mi."},
        {"exitCode": 137, "reason": "ContainerStatusUnknown", "message": "The container could not be located when the pod was terminated"},
    ),
    "succeed": ("Succeeded", {}, {"exitCode": 0, "reason": "Completed"}),
}


def _matches(labels: dict[str, str], selector: str) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.split("=", 1)
            if labels.get(key.rstrip("=")) != value.lstrip("="):
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


class FakeKubeAPI:
    """``with FakeKubeAPI() as api: api.write_kubeconfig(path)``; ``api.created`` holds the pod
    bodies every create request sent, ``api.pods`` the pods that exist, ``api.plan`` what the next
    creates do (module docs)."""

    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str]] = []
        self.plan: list[str] = []
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.deleted: list[str] = []
        self._lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _send(self, code: int, body: dict[str, Any] | str) -> None:
                data = (body if isinstance(body, str) else json.dumps(body)).encode()
                self.send_response(code)
                self.send_header("Content-Type", "text/plain" if isinstance(body, str) else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _status(self, code: int, reason: str, message: str) -> None:
                self._send(code, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                  "message": message, "reason": reason, "code": code})

            def _body(self) -> dict[str, Any]:
                length = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(length) or b"{}")

            def do_GET(self) -> None:
                api.requests.append(("GET", self.path))
                url = urlsplit(self.path)
                listing, single = _PODS.match(url.path), _POD.match(url.path)
                if listing:
                    selector = (parse_qs(url.query).get("labelSelector") or [""])[0]
                    with api._lock:
                        items = [p for (ns, _), p in sorted(api.pods.items()) if ns == listing["namespace"]
                                 and _matches(p["metadata"].get("labels") or {}, selector)]
                    self._send(200, {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": items})
                elif single:
                    pod = api.pods.get((single["namespace"], single["name"]))
                    if pod is None:
                        self._status(404, "NotFound", f'pods "{single["name"]}" not found')
                    elif single["log"]:
                        self._send(200, "")
                    else:
                        self._send(200, pod)
                elif _EVENTS.match(url.path):
                    self._send(200, {"kind": "EventList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": []})
                else:
                    self._status(404, "NotFound", f"{self.path} not found")

            def do_POST(self) -> None:
                api.requests.append(("POST", self.path))
                body = self._body()
                match = _PODS.match(urlsplit(self.path).path)
                if not match:
                    self._status(404, "NotFound", f"{self.path} not found")
                    return
                api.created.append(body)
                name = (body.get("metadata") or {}).get("name") or f"pod-{uuid.uuid4().hex[:8]}"
                key = (match["namespace"], name)
                with api._lock:
                    if key in api.pods:
                        self._status(409, "AlreadyExists", f'pods "{name}" already exists')
                        return
                    behaviour = api.plan.pop(0) if api.plan else "refuse"
                    if behaviour not in ("refuse", "500"):
                        api.pods[key] = api._pod(body, match["namespace"], name, behaviour)
                if behaviour == "refuse":
                    self._status(403, "Forbidden", REFUSAL)
                elif behaviour in ("500", "lost"):
                    self._status(500, "InternalError", "allotment test API: an internal error (the response is lost)")
                else:
                    self._send(201, api.pods[key])

            def do_PATCH(self) -> None:
                api.requests.append(("PATCH", self.path))
                single = _POD.match(urlsplit(self.path).path)
                body = self._body()
                with api._lock:
                    pod = api.pods.get((single["namespace"], single["name"])) if single else None
                    if pod is not None:
                        labels = (body.get("metadata") or {}).get("labels") or {}
                        pod["metadata"].setdefault("labels", {}).update(labels)
                if pod is None:
                    self._status(404, "NotFound", f"{self.path} not found")
                else:
                    self._send(200, pod)

            def do_DELETE(self) -> None:
                api.requests.append(("DELETE", self.path))
                single = _POD.match(urlsplit(self.path).path)
                with api._lock:
                    pod = api.pods.pop((single["namespace"], single["name"]), None) if single else None
                if pod is None:
                    self._status(404, "NotFound", f"{self.path} not found")
                else:
                    api.deleted.append(pod["metadata"]["name"])
                    self._send(200, pod)

            do_PUT = do_GET

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @staticmethod
    def _pod(body: dict[str, Any], namespace: str, name: str, behaviour: str) -> dict[str, Any]:
        """The pod as the API server reports it: the body, with an identity and a status."""
        pod = json.loads(json.dumps(body))
        pod.setdefault("apiVersion", "v1")
        pod.setdefault("kind", "Pod")
        metadata = pod.setdefault("metadata", {})
        metadata.update({"name": name, "namespace": namespace, "uid": str(uuid.uuid4()), "resourceVersion": "1",
                         "creationTimestamp": "2025-01-01T00:00:00Z"})
        containers = [c.get("name", "base") for c in (pod.get("spec") or {}).get("containers") or []] or ["base"]
        if behaviour == "lost":
            state: dict[str, Any] = {"running": {"startedAt": "2025-01-01T00:00:01Z"}}
            pod["status"] = {"phase": "Running", "containerStatuses": [
                {"name": c, "ready": True, "restartCount": 0, "image": "busybox", "imageID": "", "state": state} for c in containers
            ]}
            return pod
        phase, extras, terminated = _ENDED[behaviour]
        statuses = []
        for c in containers:
            ended = dict(terminated) if c == "base" else {"exitCode": 0, "reason": "Completed"}
            ended.update({"startedAt": "2025-01-01T00:00:01Z", "finishedAt": "2025-01-01T00:00:02Z"})
            statuses.append(
                {"name": c, "ready": False, "restartCount": 0, "image": "busybox", "imageID": "", "state": {"terminated": ended}}
            )
        pod["status"] = {"phase": phase, **extras, "containerStatuses": statuses,
                         "conditions": [{"type": "PodScheduled", "status": "True"}]}
        return pod

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def write_kubeconfig(self, path: Path) -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": "fake"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": "default"}}],
            "current-context": "fake",
        }
        path.write_text(json.dumps(config))
        return path

    def __enter__(self) -> FakeKubeAPI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
