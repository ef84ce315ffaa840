"""A fake Kubernetes API server for the backend's tests: a real HTTP server on 127.0.0.1 (a thread) that answers the
requests the official client makes with what the API server answers (objects with resourceVersion and uid,
lists, Status objects for 404/409/422), stores what it is sent, validates custom resources against the pinned CRDs,
and plays the agent-sandbox controller (tests/kubernetes_cluster.py). The shapes follow tests/kubernetes/*.json.

With a `kubelet` (tests/kubernetes_kubelet.py) the pods really run, as Docker containers: their status is what
Docker says of them, deleting a pod removes them, and pods/exec works over WebSocket (tests/kubernetes_exec.py)."""

from __future__ import annotations

import copy
import json
import re
import ssl
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jsonschema

from tests.kubernetes_cluster import FakeCluster, now, shape
from tests.kubernetes_exec import serve_exec
from tests.kubernetes_schemas import validate_custom
from tests.second_dockerd import Certificates

AGENTS = "extensions.agents.x-k8s.io"
KINDS = {"sandboxtemplates": "SandboxTemplate", "sandboxwarmpools": "SandboxWarmPool",
         "sandboxclaims": "SandboxClaim", "networkpolicies": "NetworkPolicy", "pods": "Pod", "secrets": "Secret"}
ROUTE = re.compile(r"^/(?:apis/(?P<group>[^/]+)/(?P<version>[^/]+)|api/v1)/namespaces/(?P<ns>[^/]+)/"
                   r"(?P<plural>[^/]+)(?:/(?P<name>[^/]+)(?:/(?P<sub>[^/]+))?)?$")


def status(code: int, reason: str, message: str, details: dict[str, Any]) -> dict[str, Any]:
    """A metav1.Status, as the API server sends it with an error code."""
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "details": details, "code": code}


def qualified(plural: str, group: str | None) -> str:
    return f"{plural}.{group}" if group else plural


def _matches(obj: dict[str, Any], selector: str) -> bool:
    labels = obj["metadata"].get("labels") or {}
    return all(labels.get(key) == value for key, _, value in (term.partition("=") for term in selector.split(",")))


class _Handler(BaseHTTPRequestHandler):
    cluster: FakeCluster

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, code: int, body: dict[str, Any] | str) -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain" if isinstance(body, str) else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict[str, Any]:
        return json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")

    def _route(self, method: str) -> None:
        path, _, query = self.path.partition("?")
        self.cluster.requests.append((method, path))
        if path.rstrip("/") == "/version" and method == "GET":
            return self._send(200, shape("version.json"))
        found = ROUTE.match(path)
        if not found or found["plural"] not in KINDS or (found["group"] == AGENTS and not self.cluster.crds):
            return self._send(404, "404 page not found\n")  # what the API server says of an unknown group
        if found["plural"] == "pods" and method == "GET" and not found["sub"]:
            self.cluster.refresh(found["ns"], found["name"])
        if found["sub"]:
            return self._subresource(method, found, query)
        params = {key: values[-1] for key, values in parse_qs(query).items()}
        with self.cluster.lock:
            code, body = _Verbs(self.cluster, found).run(method, self._body() if method in ("POST", "PUT") else {},
                                                         params.get("labelSelector", ""))
        self.cluster.reap()
        self._send(code, body)

    def _subresource(self, method: str, found: re.Match[str], query: str) -> None:
        if (found["plural"], found["sub"]) != ("pods", "exec") or method not in ("GET", "POST"):
            return self._send(404, "404 page not found\n")
        with self.cluster.lock:  # the status as last reported, as the API server has it
            verbs = _Verbs(self.cluster, found)
            pod = copy.deepcopy(self.cluster.objects.get(verbs.key))
        if pod is None:
            return self._send(*verbs.not_found())
        serve_exec(self, self._send, self.cluster.kubelet, pod, query)

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_PUT(self) -> None:
        self._route("PUT")

    def do_DELETE(self) -> None:
        self._route("DELETE")


class _Verbs:
    """One request's verb on one resource path."""

    def __init__(self, cluster: FakeCluster, found: re.Match[str]) -> None:
        self.cluster, self.ns, self.plural = cluster, found["ns"], found["plural"]
        self.name, self.group, self.version = found["name"], found["group"], found["version"] or "v1"
        self.key = (self.plural, self.ns, self.name or "")

    def _details(self, name: str) -> dict[str, Any]:
        return {"name": name, "group": self.group or "", "kind": self.plural} if self.group else \
            {"name": name, "kind": self.plural}

    def not_found(self) -> tuple[int, dict[str, Any]]:
        return 404, status(404, "NotFound", f'{qualified(self.plural, self.group)} "{self.name}" not found',
                           self._details(self.name))

    def run(self, method: str, body: dict[str, Any], selector: str) -> tuple[int, dict[str, Any]]:
        if method == "GET" and not self.name:
            return self.list(selector)
        if method == "POST":
            return self.create(body)
        current = self.cluster.objects.get(self.key)
        if current is None:
            return self.not_found()
        if method == "GET":
            return 200, current
        if method == "PUT":
            return self.replace(current, body)
        return self.delete(current)

    def list(self, selector: str) -> tuple[int, dict[str, Any]]:
        items = [obj for (plural, ns, _), obj in self.cluster.objects.items()
                 if plural == self.plural and ns == self.ns and (not selector or _matches(obj, selector))]
        api = f"{self.group}/{self.version}" if self.group else "v1"
        return 200, {"apiVersion": api, "kind": f"{KINDS[self.plural]}List", "items": items,
                     "metadata": {"resourceVersion": str(next(self.cluster._versions))}}

    def invalid(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        if not self.group or self.group != AGENTS:
            return None
        try:
            validate_custom(body)
        except jsonschema.ValidationError as exc:
            name = body.get("metadata", {}).get("name", "")
            message = f'{KINDS[self.plural]}.{self.group} "{name}" is invalid: {exc.message}'
            return 422, status(422, "Invalid", message, {**self._details(name), "kind": KINDS[self.plural]})
        return None

    def create(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        name = body["metadata"]["name"]
        self.key = (self.plural, self.ns, name)
        if refused := self.invalid(body):
            return refused
        if self.key in self.cluster.objects:
            return 409, status(409, "AlreadyExists", f'{qualified(self.plural, self.group)} "{name}" already exists',
                               self._details(name))
        body["metadata"] |= {"uid": str(uuid.uuid4()), "creationTimestamp": now(), "generation": 1}
        self.cluster.stamp(body)
        self.cluster.objects[self.key] = body
        if self.plural == "sandboxclaims":
            self.cluster.claim_created(self.ns, body)
        return 201, body

    def replace(self, current: dict[str, Any], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if refused := self.invalid(body):
            return refused
        asked = body["metadata"].get("resourceVersion")
        if asked and asked != current["metadata"]["resourceVersion"]:
            message = (f'Operation cannot be fulfilled on {qualified(self.plural, self.group)} "{self.name}": the '
                       "object has been modified; please apply your changes to the latest version and try again")
            return 409, status(409, "Conflict", message, self._details(self.name))
        kept = {key: current["metadata"][key] for key in ("uid", "creationTimestamp")}
        body["metadata"] |= kept | {"generation": current["metadata"].get("generation", 1) + 1}
        if "status" in current:
            body["status"] = current["status"]  # the status subresource is not written through the main resource
        self.cluster.stamp(body)
        self.cluster.objects[self.key] = body
        return 200, body

    def delete(self, current: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        del self.cluster.objects[self.key]
        if self.plural == "sandboxclaims":  # the claim owns its sandbox and pod: garbage collection
            pod = ((current.get("status") or {}).get("sandbox") or {}).get("name")
            self.cluster.doomed.extend(filter(None, [self.cluster.objects.pop(("pods", self.ns, pod or ""), None)]))
        if self.plural == "pods":
            self.cluster.doomed.append(current)
            return 200, current
        return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                     "details": {**self._details(self.name), "uid": current["metadata"]["uid"]}}


@contextmanager
def fake_api_server(cluster: FakeCluster, tls: Certificates | None = None) -> Iterator[str]:
    """Serve `cluster` on a free loopback port for the block; its URL. With `tls`, over HTTPS with its server
    certificate, asking every client for a certificate of its CA, as an API server does."""
    handler = type("Handler", (_Handler,), {"cluster": cluster})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(tls.ca))
        context.load_cert_chain(str(tls.server_cert), str(tls.server_key))
        context.verify_mode = ssl.CERT_REQUIRED
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def permission(method: str, path: str) -> tuple[str, str, str]:
    """The RBAC (apiGroup, resource, verb) a request to a namespaced resource needs. A subresource is
    "resource/sub"; a websocket exec (a GET that upgrades) needs `create` on pods/exec, as a POST does."""
    parts = path.strip("/").split("/")
    group = "" if parts[0] == "api" else parts[1]
    rest = parts[parts.index("namespaces") + 2:]
    if len(rest) > 2:
        return group, f"{rest[0]}/{rest[2]}", "create" if rest[2] in ("exec", "attach", "portforward") else \
            {"PUT": "update", "PATCH": "patch"}.get(method, "get")
    verb = {"POST": "create", "PUT": "update", "DELETE": "delete"}.get(method) or ("get" if len(rest) > 1 else "list")
    return group, rest[0], verb


def kubeconfig(path: Path, server: str, namespace: str = "toolshed", tls: Certificates | None = None) -> Path:
    """A kubeconfig file whose current context is `server`: with `tls`, its CA and a client certificate; else a
    bearer token, as a service account has."""
    cluster: dict[str, str] = {"server": server}
    user: dict[str, str] = {"token": "fake-token"}
    if tls is not None:
        cluster["certificate-authority"] = str(tls.ca)
        user = {"client-certificate": str(tls.client_cert), "client-key": str(tls.client_key)}
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": cluster}],
        "users": [{"name": "toolshed", "user": user}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "toolshed", "namespace": namespace}}],
    }))
    return path
