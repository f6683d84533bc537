"""A stand-in for the Kubernetes API server, for tests that run Airflow tasks with no cluster.

It answers the calls a KubernetesPodOperator makes before its pod exists: listing pods (none
found) and creating one, which it records and then refuses with ``403 Forbidden`` ("this server
runs no pods"), so the task stops right after the pod body was sent. Nothing in Airflow or the
kubernetes client is patched: the operator loads a kubeconfig that points here.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = ["FakeKubeAPI"]

_PODS = re.compile(r"^/api/v1/namespaces/(?P<namespace>[^/]+)/pods/?$")
REFUSAL = "allotment test API: pod body recorded; this server runs no pods"


class FakeKubeAPI:
    """``with FakeKubeAPI() as api: api.write_kubeconfig(path)``; ``api.created`` holds the pod bodies."""

    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str]] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _send(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _status(self, code: int, reason: str, message: str) -> None:
                self._send(code, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                  "message": message, "reason": reason, "code": code})

            def do_GET(self) -> None:
                api.requests.append(("GET", self.path))
                if _PODS.match(self.path.split("?")[0]):
                    self._send(200, {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": []})
                else:
                    self._status(404, "NotFound", f"{self.path} not found")

            def do_POST(self) -> None:
                api.requests.append(("POST", self.path))
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if _PODS.match(self.path.split("?")[0]):
                    api.created.append(body)
                    self._status(403, "Forbidden", REFUSAL)
                else:
                    self._status(404, "NotFound", f"{self.path} not found")

            do_PUT = do_PATCH = do_DELETE = do_GET

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

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
