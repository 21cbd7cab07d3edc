"""A client for remote Cortex-compatible servers (Cortex 2+, or Cerana).

Every failure is turned into `CortexUnavailable` naming the instance; the
API key never appears in a message, a log line or the text form.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from cerana.analysis.errors import CortexUnavailable

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RemoteCortex:
    """One remote instance from a ``[cortex.<name>]`` table."""

    name: str
    url: str
    key: str = field(default="", repr=False)
    ca_file: str | None = None
    cert_file: str | None = None
    cert_key_file: str | None = None
    timeout: float = 10.0


def remote_instances(tables: Mapping[str, Any]) -> list[RemoteCortex]:
    """Returns the remote instances of the ``cortex`` setting, by name."""
    remotes = []
    for name, raw in sorted(tables.items()):
        if not isinstance(raw, Mapping) or not raw.get("url"):
            logger.warning("cortex instance %s has no url; ignored", name)
            continue
        remotes.append(
            RemoteCortex(
                name=name,
                url=str(raw["url"]).rstrip("/"),
                key=str(raw.get("key") or ""),
                ca_file=raw.get("ca_file"),
                cert_file=raw.get("cert_file"),
                cert_key_file=raw.get("cert_key_file"),
                timeout=float(raw.get("timeout", 10.0)),
            )
        )
    return remotes


class CortexClient:
    """Calls one remote instance's REST API."""

    def __init__(self, remote: RemoteCortex, *, timeout: float | None = None) -> None:
        self.remote = remote
        headers = {"Authorization": f"Bearer {remote.key}"} if remote.key else {}
        cert = (
            (remote.cert_file, remote.cert_key_file)
            if remote.cert_file and remote.cert_key_file
            else remote.cert_file
        )
        self._client = httpx.Client(
            base_url=f"{remote.url}/api",
            headers=headers,
            verify=remote.ca_file or True,
            cert=cert,
            timeout=timeout or remote.timeout,
        )

    def __enter__(self) -> CortexClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.close()

    def status(self) -> str:
        """Returns the instance's Cortex version."""
        body = self._call("GET", "/status")
        return str((body.get("versions") or {}).get("Cortex") or "")

    def analyzers(self, data_type: str | None = None) -> list[dict[str, Any]]:
        path = f"/analyzer/type/{data_type}" if data_type else "/analyzer"
        found = self._call("GET", path, params={"range": "all"})
        return (
            [a for a in found if isinstance(a, dict)] if isinstance(found, list) else []
        )

    def run(self, analyzer_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        found = self._call("POST", f"/analyzer/{analyzer_id}/run", json=dict(body))
        return dict(found)

    def run_file(
        self, analyzer_id: str, attributes: Mapping[str, Any], name: str, content: bytes
    ) -> dict[str, Any]:
        found = self._call(
            "POST",
            f"/analyzer/{analyzer_id}/run",
            data={"_json": json.dumps(dict(attributes))},
            files={"data": (name, content)},
        )
        return dict(found)

    def report(self, job_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/job/{job_id}/report"))

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        name = self.remote.name
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise CortexUnavailable(
                f"Cortex instance {name} is unreachable ({type(exc).__name__})"
            ) from exc
        if response.status_code >= 400:
            raise CortexUnavailable(
                f"Cortex instance {name} answered {response.status_code} "
                f"to {method} {path}: {_message(response)}"
            )
        try:
            return response.json()
        except ValueError:
            raise CortexUnavailable(
                f"Cortex instance {name} answered {method} {path} with invalid JSON"
            ) from None


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])[:200]
    return str(body)[:200]
