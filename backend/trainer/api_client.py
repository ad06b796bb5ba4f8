"""The trainer's client for Merit's REST API: reads, and signed uploads of updates.

    client = ApiClient("http://127.0.0.1:8000", private_key=key)
    weights, cid = client.model(project_id)
    cid = client.upload_update(project_id, round, update_bytes)   # then commitUpdate during Open, revealUpdate after the deadline
"""
from __future__ import annotations

import time
from typing import Any

import httpx
from eth_account.signers.local import LocalAccount

from backend.api.signing import sign_request
from backend.errors import IntegrityError, MeritError
from backend.limits import GLOBAL_MODEL_MAX_BYTES, SPEC_MAX_BYTES
from backend.storage import is_cid_of

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
                 transport: httpx.BaseTransport | None = None, retry_seconds: float = 30.0):
        """``retry_seconds``: how long to keep retrying an API that cannot be reached (starting up,
        restarting) before giving up with a clear error. Reads retry on any transport error; an
        upload only when the connection was never made, so it is never sent twice."""
        if not base_url.startswith(("http://", "https://")):
            raise MeritError(f"API URL {base_url!r} is not http(s)", "pass --api http://HOST:PORT")
        self._key = private_key
        self._retry_seconds = float(retry_seconds)
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
        return _verified(*self._get_capped(f"/v1/projects/{int(project_id)}/model", "model", GLOBAL_MODEL_MAX_BYTES),
                         "model", expected_cid)

    def spec(self, project_id: int, expected_cid: str | None = None) -> tuple[bytes, str]:
        """The project's model spec (JSON bytes, as stored) and its CID, checked against each other
        and, with ``expected_cid`` (the spec CID on-chain), against the chain."""
        return _verified(*self._get_capped(f"/v1/projects/{int(project_id)}/spec", "model spec", SPEC_MAX_BYTES),
                         "model spec", expected_cid)

    # -- writes
    def upload_update(self, project_id: int, round: int, data: bytes) -> str:
        """Upload an update (safetensors bytes) for a round; returns its CID, to commit on-chain.
        The CID is recomputed here: a server that names another one is refused, since committing
        it would point the chain at bytes this trainer never sent."""
        path = f"/v1/projects/{int(project_id)}/rounds/{int(round)}/updates"
        response = self._signed("POST", path, data)
        try:
            cid = str(response.json()["cid"])
        except (ValueError, KeyError, TypeError):
            raise MeritError("the API answered the upload without a CID", "is the URL a Merit API?") from None
        if not is_cid_of(data, cid):
            raise IntegrityError(f"the API says the update is stored as {cid}, which is not the CID of its bytes",
                                 "do not commit it; the server is faulty or lying, use another API or storage")
        return cid

    def _signed(self, method: str, path: str, body: bytes) -> httpx.Response:
        if self._key is None:
            raise MeritError("signed API requests need the trainer's key", "set MERIT_PRIVATE_KEY")
        headers = sign_request(self._key, method, path, body)
        headers["Content-Type"] = "application/octet-stream"
        return self._checked(self._send(method, path, retry_on=(httpx.ConnectError, httpx.ConnectTimeout),
                                        content=body, headers=headers))

    def _get(self, path: str) -> httpx.Response:
        return self._checked(self._send("GET", path, retry_on=(httpx.TransportError,)))

    def _get_capped(self, path: str, what: str, max_size: int) -> tuple[bytes, httpx.Headers]:
        """A GET whose body is read only up to ``max_size`` bytes: a larger one (declared or sent) is
        refused before it fills memory."""
        response = self._send("GET", path, retry_on=(httpx.TransportError,), stream=True)
        try:
            if not response.is_success:
                response.read()
                self._checked(response)
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > max_size:
                raise IntegrityError(f"the API offers a {what} of {int(declared)} bytes, more than the {max_size} allowed")
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_size:
                    raise IntegrityError(f"the API sent a {what} of more than the {max_size} bytes allowed")
                chunks.append(chunk)
        except httpx.TransportError as exc:
            raise MeritError(f"lost the connection to the Merit API at {self._http.base_url} while reading the {what}: "
                             f"{str(exc) or type(exc).__name__}", "try again") from None
        finally:
            response.close()
        return b"".join(chunks), response.headers

    def _send(self, method: str, path: str, retry_on: tuple[type[Exception], ...], stream: bool = False,
              **kwargs) -> httpx.Response:
        deadline = time.monotonic() + self._retry_seconds
        delay = 0.2
        while True:
            try:
                return self._http.send(self._http.build_request(method, path, **kwargs), stream=stream)
            except httpx.TransportError as exc:
                reason = str(exc) or type(exc).__name__
                if not isinstance(exc, retry_on):  # the request may have arrived: never send it twice
                    raise MeritError(f"lost the connection to the Merit API at {self._http.base_url} during "
                                     f"{method} {path}: {reason}",
                                     "it may have been processed; check the round (merit project status) "
                                     "before trying again") from None
                if time.monotonic() + delay > deadline:
                    raise MeritError(f"cannot reach the Merit API at {self._http.base_url}: {reason}",
                                     "is `merit api serve` running there? check --api or MERIT_API_URL") from None
                time.sleep(delay)
                delay = min(2 * delay, 2.0)

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


def _verified(data: bytes, headers: httpx.Headers, what: str, expected_cid: str | None) -> tuple[bytes, str]:
    """The body and the CID the server named for it, refused unless the bytes hash to that CID
    and (``expected_cid``) it is the one the chain names."""
    cid = headers.get(CID_HEADER, "")
    if not cid:
        raise MeritError(f"the API sent a {what} without its CID header", "is the URL a Merit API?")
    if not is_cid_of(data, cid):
        raise IntegrityError(f"{what} bytes from the API do not match CID {cid}", "the server or network is faulty")
    if expected_cid is not None and cid != expected_cid:
        raise IntegrityError(f"the API serves {what} {cid}, but the chain says {expected_cid}",
                             "the API is behind the chain or lying; retry, or use another API")
    return data, cid
