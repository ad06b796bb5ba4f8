"""The trainer's client for Merit's REST API: reads, and signed uploads of updates.

    client = ApiClient("http://127.0.0.1:8000", private_key=key)
    weights, cid = client.model(project_id)
    cid = client.upload_update(project_id, round, update_bytes)   # then submitUpdate(project, round, cid) on-chain
"""
from __future__ import annotations

from typing import Any

import httpx
from eth_account.signers.local import LocalAccount

from backend.api.signing import sign_request
from backend.errors import IntegrityError, MeritError
from backend.storage import compute_cid

CID_HEADER = "X-Merit-CID"


class ApiRequestError(MeritError):
    """The API refused a request. ``status`` is the HTTP status, ``error`` the API's code."""

    def __init__(self, status: int, error: str, detail: str):
        super().__init__(f"API refused the request: {detail}", f"HTTP {status} {error}")
        self.status = status
        self.error = error
        self.detail = detail


class ApiClient:
    def __init__(self, base_url: str, private_key: str | bytes | LocalAccount | None = None, timeout: float = 120.0,
                 transport: httpx.BaseTransport | None = None):
        if not base_url.startswith(("http://", "https://")):
            raise MeritError(f"API URL {base_url!r} is not http(s)", "pass --api http://HOST:PORT")
        self._key = private_key
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "ApiClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- reads
    def health(self) -> dict[str, Any]:
        return self._get("/v1/health").json()

    def projects(self) -> list[dict[str, Any]]:
        return self._get("/v1/projects").json()["projects"]

    def project(self, project_id: int) -> dict[str, Any]:
        return self._get(f"/v1/projects/{int(project_id)}").json()

    def round(self, project_id: int, round: int) -> dict[str, Any]:
        return self._get(f"/v1/projects/{int(project_id)}/rounds/{int(round)}").json()

    def rewards(self, project_id: int, address: str) -> dict[str, Any]:
        return self._get(f"/v1/projects/{int(project_id)}/rewards/{address}").json()

    def model(self, project_id: int, expected_cid: str | None = None) -> tuple[bytes, str]:
        """The current global weights (safetensors) and their CID, checked against each other.

        The server is not trusted: pass ``expected_cid``, the global model CID read from the chain,
        and bytes for any other model are refused.
        """
        response = self._get(f"/v1/projects/{int(project_id)}/model")
        cid = response.headers.get(CID_HEADER, "")
        data = response.content
        _check_cid(data, cid)
        if expected_cid is not None and cid != expected_cid:
            raise IntegrityError(f"the API serves model {cid}, but the chain says {expected_cid}",
                                 "the API is behind the chain or lying; retry, or use another API")
        return data, cid

    # -- writes
    def upload_update(self, project_id: int, round: int, data: bytes) -> str:
        """Upload an update (safetensors bytes) for a round; returns its CID, to commit on-chain."""
        path = f"/v1/projects/{int(project_id)}/rounds/{int(round)}/updates"
        response = self._signed("POST", path, data)
        return response.json()["cid"]

    def _signed(self, method: str, path: str, body: bytes) -> httpx.Response:
        if self._key is None:
            raise MeritError("signed API requests need the trainer's key", "set MERIT_PRIVATE_KEY")
        headers = sign_request(self._key, method, path, body)
        headers["Content-Type"] = "application/octet-stream"
        return self._checked(self._http.request(method, path, content=body, headers=headers))

    def _get(self, path: str) -> httpx.Response:
        return self._checked(self._http.get(path))

    @staticmethod
    def _checked(response: httpx.Response) -> httpx.Response:
        if response.is_success:
            return response
        try:
            body = response.json()
            error, detail = str(body["error"]), str(body["detail"])
        except (ValueError, KeyError, TypeError):
            error, detail = "http_error", response.text[:200] or response.reason_phrase
        raise ApiRequestError(response.status_code, error, detail)


def _check_cid(data: bytes, cid: str) -> None:
    """Refuse model bytes that do not hash to the CID the server named."""
    if not cid:
        raise MeritError("the API sent a model without its CID header", "is the URL a Merit API?")
    version = 0 if cid.startswith("Qm") else 1
    if compute_cid(data, cid_version=version) != cid:
        raise IntegrityError(f"model bytes from the API do not match CID {cid}", "the server or network is faulty")
