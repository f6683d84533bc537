"""A stand-in for the Argo Workflows server, for tests that call Hera's ``create()`` and ``lint()``
with no cluster.

It answers the calls Hera's ``WorkflowsService`` makes to create or lint a Workflow, a
WorkflowTemplate, a CronWorkflow or a ClusterWorkflowTemplate (``POST /api/v1/...``, the paths of
Argo's REST API): it records the request body and answers ``200`` with the object it was sent,
named (``generateName`` + ``fake``) where only a ``generateName`` was given, as the real server
answers with the object it stored. Any other call is a ``404``. Nothing in Hera is patched: the
workflow's ``WorkflowsService(host=...)`` points here.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeArgoServer", "Recorded"]

# Argo's REST API (argo-workflows' api/openapi-spec): collection path -> the request's object key.
_ROUTES = [
    (re.compile(r"^/api/v1/workflows/(?P<namespace>[^/]+)(?P<lint>/lint)?$"), "Workflow", "workflow"),
    (re.compile(r"^/api/v1/workflow-templates/(?P<namespace>[^/]+)(?P<lint>/lint)?$"), "WorkflowTemplate", "template"),
    (re.compile(r"^/api/v1/cron-workflows/(?P<namespace>[^/]+)(?P<lint>/lint)?$"), "CronWorkflow", "cronWorkflow"),
    (re.compile(r"^/api/v1/cluster-workflow-templates(?P<lint>/lint)?$"), "ClusterWorkflowTemplate", "template"),
]


class Recorded(dict[str, Any]):
    """One recorded call: ``kind``, ``action`` (``create``/``lint``), ``namespace`` (None for a
    cluster-scoped kind), ``body`` (the request as sent) and ``object`` (the manifest in it)."""


class FakeArgoServer:
    """``with FakeArgoServer() as argo: ...``; ``argo.url`` for ``WorkflowsService(host=...)``,
    ``argo.calls`` holds what was sent, in order."""

    def __init__(self) -> None:
        self.calls: list[Recorded] = []
        self.unanswered: list[tuple[str, str]] = []
        server = self

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

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                path = self.path.split("?")[0]
                for pattern, kind, key in _ROUTES:
                    match = pattern.match(path)
                    if match and isinstance(body.get(key), dict):
                        manifest = body[key]
                        server.calls.append(
                            Recorded(
                                kind=kind,
                                action="lint" if match.group("lint") else "create",
                                namespace=match.groupdict().get("namespace"),
                                body=body,
                                object=manifest,
                            )
                        )
                        answer = json.loads(json.dumps(manifest))
                        metadata = answer.setdefault("metadata", {})
                        if not metadata.get("name"):
                            metadata["name"] = f"{metadata.get('generateName', '')}fake"
                        self._send(200, answer)
                        return
                self._unanswered()

            def _unanswered(self) -> None:
                server.unanswered.append((self.command, self.path))
                self._send(404, {"code": 5, "message": f"{self.command} {self.path}: not served by the stand-in Argo server"})

            do_GET = do_PUT = do_DELETE = _unanswered

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeArgoServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
