"""The slice of the local Airflow's REST API (/api/v2) that `make up` and the e2e tests use (stdlib only)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


class AirflowAPI:
    """The slice of the REST API (/api/v2) the tests and `make up` use, with a token from /auth/token."""

    def __init__(self, url: str, username: str, password: str) -> None:
        if not url.startswith("http://127.0.0.1:"):
            raise ValueError(f"the local Airflow listens on 127.0.0.1 only, not {url}")
        self.url = url
        self.username = username
        self.password = password
        self._token: str | None = None

    def token(self) -> str:
        if self._token is None:
            body = self._request("POST", "/auth/token", {"username": self.username, "password": self.password})
            self._token = body["access_token"]
        return self._token

    def _request(self, method: str, path: str, payload: Any = None, *, auth: bool = False) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method)  # noqa: S310 - loopback http only
        request.add_header("Content-Type", "application/json")
        if auth:
            request.add_header("Authorization", f"Bearer {self.token()}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback http only
                raw = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:2000]
            raise AirflowAPIError(exc.code, f"{method} {path} -> {exc.code}: {detail}") from None
        return json.loads(raw) if raw else None

    def get(self, path: str) -> Any:
        return self._request("GET", f"/api/v2{path}", auth=True)

    def post(self, path: str, payload: Any) -> Any:
        return self._request("POST", f"/api/v2{path}", payload, auth=True)

    def patch(self, path: str, payload: Any) -> Any:
        return self._request("PATCH", f"/api/v2{path}", payload, auth=True)

    def healthy(self) -> bool:
        try:
            health = self._request("GET", "/api/v2/monitor/health")
        except (OSError, AirflowAPIError):
            return False
        return bool(health and health.get("metadatabase", {}).get("status") == "healthy")


class AirflowAPIError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
