"""The trainer's client for Merit's REST API: reads, and signed uploads of updates.

client = ApiClient("http://127.0.0.1:8000", private_key=key)
weights, cid = client.model(project_id)
cid = client.upload_update(project_id, round, update_bytes)   # then commitUpdate during Open, revealUpdate after the deadline
"""

from __future__ import annotations

from typing import Any

import httpx
from eth_account.signers.local import LocalAccount

from backend.signing import Audience, canonical_origin, sign_request
from backend import safe_json
from backend.errors import IntegrityError, MeritError
from backend.limits import GLOBAL_MODEL_MAX_BYTES, SPEC_MAX_BYTES
from backend.retry import RetryPolicy, retry_call
from backend.storage import is_cid_of

CID_HEADER = "X-Merit-CID"
API_JSON_MAX_BYTES = 16 << 20  # a page of 1,000 projects is far smaller


class ApiRequestError(MeritError):
    """The API refused a request. ``status`` is the HTTP status, ``error`` the API's code."""

    def __init__(self, status: int, error: str, detail: str):
        super().__init__(f"API refused the request: {detail}", f"HTTP {status} {error}")
        self.status = status
        self.error = error
        self.detail = detail


class ApiClient:
    def __init__(
        self,
        base_url: str,
        private_key: str | bytes | LocalAccount | None = None,
        timeout: float = 120.0,
        transport: httpx.BaseTransport | None = None,
        retry_seconds: float = 30.0,
        chain_id: int | None = None,
        market: str | None = None,
    ):
        """``retry_seconds``: how long to keep retrying an API that cannot be reached (starting up,
        restarting) before giving up with a clear error. Reads retry on any transport error; an
        upload only when the connection was never made, so it is never sent twice.

        Signatures name the chain, the market and this URL's origin (MERIT-API-2). Pass
        ``chain_id`` and ``market`` when you know them (from the chain); otherwise the server's
        ``/v1/health`` names them. Either way a signature is good only at the origin of
        ``base_url``, so a server cannot replay it elsewhere."""
        if not base_url.startswith(("http://", "https://")):
            raise MeritError(f"API URL {base_url!r} is not http(s)", "pass --api http://HOST:PORT")
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, transport=transport)
        url = self._http.base_url
        try:
            self._origin = canonical_origin(f"{url.scheme}://{url.netloc.decode('ascii')}")
        except ValueError as exc:
            raise MeritError(f"API URL {base_url!r}: {exc}", "pass --api http://HOST:PORT") from None
        self._key = private_key
        self._retry_seconds = float(retry_seconds)
        self._audience = Audience(chain_id, market, self._origin) if chain_id is not None and market else None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "ApiClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- reads
    def health(self) -> dict[str, Any]:
        return _json(self._get("/v1/health"))

    def projects(self, page_size: int = 1000) -> list[dict[str, Any]]:
        """Every project, a page at a time."""
        projects: list[dict[str, Any]] = []
        offset: int | None = 0
        while offset is not None:
            page = _json(self._get(f"/v1/projects?offset={offset}&limit={int(page_size)}"))
            projects += page["projects"]
            following = page.get("next_offset")
            if following is not None and (not isinstance(following, int) or following <= offset):
                raise MeritError(
                    f"the API's project list does not advance (offset {offset} -> {following!r})",
                    "is the URL a Merit API?",
                )
            offset = following
        return projects

    def project(self, project_id: int) -> dict[str, Any]:
        return _json(self._get(f"/v1/projects/{int(project_id)}"))

    def round(self, project_id: int, round: int) -> dict[str, Any]:
        return _json(self._get(f"/v1/projects/{int(project_id)}/rounds/{int(round)}"))

    def rewards(self, project_id: int, address: str) -> dict[str, Any]:
        return _json(self._get(f"/v1/projects/{int(project_id)}/rewards/{address}"))

    def model(self, project_id: int, expected_cid: str | None = None) -> tuple[bytes, str]:
        """The current global weights (safetensors) and their CID, checked against each other.

        The server is not trusted: pass ``expected_cid``, the global model CID read from the chain,
        and bytes for any other model are refused.
        """
        return _verified(
            *self._get_capped(f"/v1/projects/{int(project_id)}/model", "model", GLOBAL_MODEL_MAX_BYTES),
            "model",
            expected_cid,
        )

    def spec(self, project_id: int, expected_cid: str | None = None) -> tuple[bytes, str]:
        """The project's model spec (JSON bytes, as stored) and its CID, checked against each other
        and, with ``expected_cid`` (the spec CID on-chain), against the chain."""
        return _verified(
            *self._get_capped(f"/v1/projects/{int(project_id)}/spec", "model spec", SPEC_MAX_BYTES),
            "model spec",
            expected_cid,
        )

    # -- writes
    def upload_update(self, project_id: int, round: int, data: bytes) -> str:
        """Upload an update (safetensors bytes) for a round; returns its CID, to commit on-chain.
        The CID is recomputed here: a server that names another one is refused, since committing
        it would point the chain at bytes this trainer never sent."""
        path = f"/v1/projects/{int(project_id)}/rounds/{int(round)}/updates"
        response = self._signed("POST", path, data)
        try:
            cid = str(_json(response)["cid"])
        except (ValueError, KeyError, TypeError):
            raise MeritError("the API answered the upload without a CID", "is the URL a Merit API?") from None
        if not is_cid_of(data, cid):
            raise IntegrityError(
                f"the API says the update is stored as {cid}, which is not the CID of its bytes",
                "do not commit it; the server is faulty or lying, use another API or storage",
            )
        return cid

    def audience(self) -> Audience:
        """What this client's signatures name: chain id, market and the API's origin."""
        if self._audience is None:
            health = self.health()
            try:
                self._audience = Audience(int(health["chain_id"]), str(health["market"]), self._origin)
            except (KeyError, TypeError, ValueError):
                raise MeritError(
                    f"the API at {self._origin} does not name its chain and market in /v1/health",
                    "is it a Merit API of version 2 or later?",
                ) from None
        return self._audience

    def _signed(self, method: str, path: str, body: bytes) -> httpx.Response:
        if self._key is None:
            raise MeritError("signed API requests need the trainer's key", "set MERIT_PRIVATE_KEY")
        request = self._http.build_request(
            method, path, content=body, headers={"Content-Type": "application/octet-stream"}
        )
        # sign the target exactly as it goes on the request line (percent-encoded, with the query)
        request.headers.update(
            sign_request(self._key, self.audience(), method, request.url.raw_path.decode("ascii"), body)
        )
        return self._checked(self._send(request, retry_on=(httpx.ConnectError, httpx.ConnectTimeout)))

    def _get(self, path: str) -> httpx.Response:
        return self._checked(self._send(self._http.build_request("GET", path), retry_on=(httpx.TransportError,)))

    def _get_capped(self, path: str, what: str, max_size: int) -> tuple[bytes, httpx.Headers]:
        """A GET whose body is read only up to ``max_size`` bytes: a larger one (declared or sent) is
        refused before it fills memory."""
        response = self._send(self._http.build_request("GET", path), retry_on=(httpx.TransportError,), stream=True)
        try:
            if not response.is_success:
                response.read()
                self._checked(response)
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > max_size:
                raise IntegrityError(
                    f"the API offers a {what} of {int(declared)} bytes, more than the {max_size} allowed"
                )
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_size:
                    raise IntegrityError(f"the API sent a {what} of more than the {max_size} bytes allowed")
                chunks.append(chunk)
        except httpx.TransportError as exc:
            raise MeritError(
                f"lost the connection to the Merit API at {self._http.base_url} while reading the {what}: "
                f"{str(exc) or type(exc).__name__}",
                "try again",
            ) from None
        finally:
            response.close()
        return b"".join(chunks), response.headers

    def _send(
        self, request: httpx.Request, retry_on: tuple[type[Exception], ...], stream: bool = False
    ) -> httpx.Response:
        method, path = request.method, request.url.path

        def send() -> httpx.Response:
            return self._http.send(request, stream=stream)

        def give_up(exc: BaseException, _attempts: int) -> MeritError:
            return MeritError(
                f"cannot reach the Merit API at {self._http.base_url}: {str(exc) or type(exc).__name__}",
                "is `merit api serve` running there? check --api or MERIT_API_URL",
            )

        try:
            return retry_call(
                send,
                RetryPolicy(retries=None, base_delay=0.2, max_delay=2.0, deadline=self._retry_seconds),
                transient=lambda exc: isinstance(exc, retry_on),
                give_up=give_up,
            )
        except httpx.TransportError as exc:  # not in retry_on: the request may have arrived, never send it twice
            raise MeritError(
                f"lost the connection to the Merit API at {self._http.base_url} during "
                f"{method} {path}: {str(exc) or type(exc).__name__}",
                "it may have been processed; check the round (merit project status) before trying again",
            ) from None

    @staticmethod
    def _checked(response: httpx.Response) -> httpx.Response:
        if response.is_success:
            return response
        try:
            body = safe_json.loads(response.content, what="the API's error")
            error, detail = str(body["error"]), str(body["detail"])
        except (ValueError, KeyError, TypeError):
            error, detail = "http_error", response.text[:200] or response.reason_phrase
        raise ApiRequestError(response.status_code, error, detail)


def _json(response: httpx.Response) -> Any:
    """An API answer's JSON, parsed with bounded depth: the API is a stranger's server."""
    try:
        return safe_json.loads(
            response.content, what=f"the API's answer to {response.request.url.path}", max_bytes=API_JSON_MAX_BYTES
        )
    except safe_json.UntrustedJSONError as exc:
        raise MeritError(str(exc), "is --api pointing at a Merit API?") from None


def _verified(data: bytes, headers: httpx.Headers, what: str, expected_cid: str | None) -> tuple[bytes, str]:
    """The body and the CID the server named for it, refused unless the bytes hash to that CID
    and (``expected_cid``) it is the one the chain names."""
    cid = headers.get(CID_HEADER, "")
    if not cid:
        raise MeritError(f"the API sent a {what} without its CID header", "is the URL a Merit API?")
    if not is_cid_of(data, cid):
        raise IntegrityError(f"{what} bytes from the API do not match CID {cid}", "the server or network is faulty")
    if expected_cid is not None and cid != expected_cid:
        raise IntegrityError(
            f"the API serves {what} {cid}, but the chain says {expected_cid}",
            "the API is behind the chain or lying; retry, or use another API",
        )
    return data, cid
