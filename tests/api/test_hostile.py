"""A hostile client against a real deployment: Anvil, a deployed Marketplace with joined trainers,
and `merit api serve` in its own process, as an operator runs it. One test per finding of issue 14
(forged uploads, replays, path encoding, upload-status leak, paths in errors, slowloris,
pagination, rate limits, bytes in flight).

Each test talks to the server over real sockets; tests that flood a limit do it from their own
loopback address (127.0.0.x), so that they do not spend the budget of the others.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import torch
from eth_account import Account

from backend import signing
from backend.chain.anvil import AnvilProcess, free_port
from backend.chain.connection import connect
from backend.models import save_weights
from backend.storage import open_store
from backend.trainer.api_client import ApiClient, ApiRequestError
from tests.api.fakes import store_logreg_spec
from tests.chain.helpers import VALIDATION_CID, Market, make_market, start_project

pytestmark = [pytest.mark.anvil, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
MAX_UPDATE = 1 << 20  # the server's cap on one update, and on upload bytes in flight (below)
FORGED_LENGTH = 64 << 20  # what a forged upload declares


@dataclass
class Deployment:
    url: str
    port: int
    home: Path
    market: Market
    pid: int  # Running, round 0 Open; trainers 0-4 joined, trainer 5 not
    broken_pid: int  # its initial model is in no store: reading it fails on the server side
    initial: str
    model: torch.nn.Module
    server: subprocess.Popen

    def audience(self, **overrides) -> signing.Audience:
        values = dict(chain_id=self.market.chain.chain_id, market=self.market.owner.address, origin=self.url)
        return signing.Audience(**{**values, **overrides})

    def upload_path(self, round_: int = 0, pid: int | None = None) -> str:
        return f"/v1/projects/{self.pid if pid is None else pid}/rounds/{round_}/updates"

    def update(self, trainer) -> bytes:
        state = {k: torch.randn_like(v) * 1e-3 for k, v in self.model.state_dict().items()}
        return save_weights(
            state, {"project": self.pid, "round": 0, "trainer": trainer.account.address, "base": self.initial}
        )


def _wait_for(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"merit api serve exited: {proc.stdout.read().decode()[-3000:]}")
        try:
            if httpx.get(url + "/v1/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("merit api serve did not answer")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    home = tmp_path_factory.mktemp("merit-home")
    store = open_store("embedded", home=home)
    model, initial, spec_cid = store_logreg_spec(store)
    store.close()
    with AnvilProcess() as node:
        market = make_market(connect(node.url), trainers=6)
        pid = start_project(market, market.config(specCid=spec_cid, initialModelCid=initial, minTrainers=1), joiners=5)
        broken = market.owner.create_project(market.config(specCid=VALIDATION_CID, initialModelCid=VALIDATION_CID))
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("MERIT_")}
        env.update(
            MERIT_HOME=str(home),
            MERIT_CHAIN=node.url,
            MERIT_MARKET=market.owner.address,
            MERIT_MAX_UPDATE_BYTES=str(MAX_UPDATE),
            MERIT_API_MAX_INFLIGHT_UPLOAD_BYTES=str(MAX_UPDATE),
            MERIT_API_HEADER_TIMEOUT_S="1",
            PYTHONPATH=str(ROOT),
        )
        server = subprocess.Popen(
            [sys.executable, "-m", "backend.cli.main", "api", "serve", "--port", str(port), "--log-level", "warning"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_for(url, server)
            yield Deployment(url, port, home, market, pid, broken, initial, model, server)
        finally:
            server.terminate()
            server.wait(timeout=30)


def raw_exchange(port: int, head: bytes, source: str = "127.0.0.1", timeout: float = 10) -> tuple[bytes, float]:
    """Send a request head (and no body) on a fresh connection; return what the server answers
    until it closes the connection, and how long that took."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0)) as sock:
        start = time.monotonic()
        sock.sendall(head)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer, time.monotonic() - start


def http_head(method: str, target: str, port: int, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{port}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def json_body(answer: bytes) -> dict:
    return json.loads(answer.split(b"\r\n\r\n", 1)[1])


def post(d: Deployment, path: str, body: bytes, headers: dict[str, str], source: str = "127.0.0.1") -> httpx.Response:
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(transport=transport, timeout=30) as http:
        return http.post(d.url + path, content=body, headers=headers)


def assert_error(response: httpx.Response, status: int, error: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error, body
    return body


def test_a_forged_upload_is_answered_before_its_body_is_sent(deployment):
    """Headers of a 64 MiB upload in a joined trainer's name, signed by someone else, and then no
    body at all: the server answers 401 and closes, so it cannot have waited for (or read) the body."""
    d = deployment
    victim = d.market.trainers[0].account
    path = d.upload_path()
    headers = signing.sign_request(Account.create().key, d.audience(), "POST", path, body_sha256="00" * 32)
    headers[signing.HEADER_ADDRESS] = victim.address
    headers.update({"Content-Length": str(FORGED_LENGTH), "Content-Type": "application/octet-stream"})
    answer, _ = raw_exchange(d.port, http_head("POST", path, d.port, headers))
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert b"connection: close" in answer.lower()
    assert json_body(answer)["error"] == "bad_signature"
    # the same with the whole body sent, as an HTTP client does: the client still gets the answer
    forged = signing.sign_request(Account.create().key, d.audience(), "POST", path, b"\0" * 1024)
    forged[signing.HEADER_ADDRESS] = victim.address
    assert_error(post(d, path, b"\0" * 1024, forged), 401, "bad_signature")
    # unsigned and MERIT-API-1-style requests are refused the same way, naming the scheme
    unsigned = {k: v for k, v in forged.items() if k != signing.HEADER_CONTENT_SHA256}
    assert "MERIT-API-2" in assert_error(post(d, path, b"x", unsigned), 401, "unauthorized")["detail"]


def test_a_signed_upload_cannot_be_replayed_to_another_chain_market_or_server(deployment):
    d = deployment
    trainer = d.market.trainers[4]
    path, body = d.upload_path(), d.update(trainer)
    elsewhere = [
        d.audience(chain_id=d.market.chain.chain_id + 1),
        d.audience(market="0x" + "12" * 20),
        d.audience(origin="http://api-b.example.org"),
    ]
    for audience in elsewhere:
        headers = signing.sign_request(trainer.account.key, audience, "POST", path, body)
        assert_error(post(d, path, body, headers), 401, "bad_signature")
    # the same origin reached under another name is another origin
    headers = signing.sign_request(
        trainer.account.key, d.audience(origin=f"http://localhost:{d.port}"), "POST", path, body
    )
    assert_error(post(d, path, body, {**headers, "Host": f"localhost:{d.port}"}), 401, "wrong_origin")
    # none of it used up the trainer's slot or stored anything: its own upload goes through
    with ApiClient(d.url, private_key=trainer.account.key) as client:
        assert client.upload_update(d.pid, 0, body)


def test_the_signature_covers_the_target_as_sent(deployment):
    """`%31` is `1` once decoded: a signature over the decoded path does not cover the encoded one,
    and a signature over the target exactly as sent is good."""
    d = deployment
    trainer = d.market.trainers[1].account
    body = d.update(d.market.trainers[1])
    encoded, decoded = f"/v1/projects/%{ord(str(d.pid)):x}/rounds/0/updates", d.upload_path()
    assert httpx.URL(d.url + encoded).raw_path.decode() == encoded  # the client sends it untouched
    wrong = signing.sign_request(trainer.key, d.audience(), "POST", decoded, body)
    assert_error(post(d, encoded, body, wrong), 401, "bad_signature")
    right = signing.sign_request(trainer.key, d.audience(), "POST", encoded, body)
    response = post(d, encoded, body, right)
    assert response.status_code == 201, response.text
    # a query string is part of what is signed too
    queried = signing.sign_request(trainer.key, d.audience(), "POST", decoded, body)
    assert_error(post(d, decoded + "?x=1", body, queried), 401, "bad_signature")


def test_upload_status_is_told_only_to_the_trainer(deployment):
    d = deployment
    trainer = d.market.trainers[0]
    body = d.update(trainer)
    with ApiClient(d.url, private_key=trainer.account.key) as client:
        client.upload_update(d.pid, 0, body)
        with pytest.raises(ApiRequestError) as err:
            client.upload_update(d.pid, 0, d.update(trainer))
        assert (err.value.status, err.value.error) == (409, "duplicate_update")
    # a stranger asking in its name learns nothing: 401, not 409
    forged = signing.sign_request(Account.create().key, d.audience(), "POST", d.upload_path(), body)
    forged[signing.HEADER_ADDRESS] = trainer.account.address
    assert_error(post(d, d.upload_path(), body, forged), 401, "bad_signature")
    junk = {**forged, signing.HEADER_SIGNATURE: "0x" + "11" * 65}
    assert post(d, d.upload_path(), body, junk).status_code == 401


def test_chain_checks_follow_authentication_and_read_the_chain_fresh(deployment):
    d = deployment
    newcomer = d.market.trainers[5]
    body = d.update(newcomer)

    def signed_post(path):
        return post(d, path, body, signing.sign_request(newcomer.account.key, d.audience(), "POST", path, body))

    assert_error(signed_post(d.upload_path()), 403, "not_joined")
    assert_error(signed_post(d.upload_path(round_=99)), 404, "round_not_found")
    assert_error(signed_post(d.upload_path(round_=2**40)), 404, "round_not_found")
    assert_error(signed_post(d.upload_path(pid=999)), 404, "project_not_found")
    assert_error(signed_post(d.upload_path(pid=d.broken_pid)), 403, "not_joined")
    newcomer.join(d.pid)  # on-chain, then at once: no cached "not joined" stands in the way
    assert signed_post(d.upload_path()).status_code == 201


def test_a_body_that_is_not_the_signed_one_is_refused(deployment):
    d = deployment
    trainer = d.market.trainers[3].account
    headers = signing.sign_request(trainer.key, d.audience(), "POST", d.upload_path(), b"what was signed")
    assert_error(post(d, d.upload_path(), b"something else", headers), 401, "body_mismatch")


def test_a_poison_update_is_refused_and_the_server_lives_on(deployment):
    """A safetensors header nested 100,000 deep once killed the server with a segmentation fault
    (Python's JSON parser recursing under the Ethereum libraries' recursion limit)."""
    import struct

    d = deployment
    trainer = d.market.trainers[3].account
    header = b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    poison = struct.pack("<Q", len(header)) + header
    headers = signing.sign_request(trainer.key, d.audience(), "POST", d.upload_path(), poison)
    body = assert_error(post(d, d.upload_path(), poison, headers), 422, "invalid_update")
    assert "nests 100001 levels deep" in body["detail"], body
    assert d.server.poll() is None, "the server died"
    assert httpx.get(d.url + "/v1/health", timeout=5).status_code == 200


def test_errors_never_reveal_local_paths(deployment):
    d = deployment
    responses = [
        httpx.get(f"{d.url}/v1/projects/{d.broken_pid}/model"),
        httpx.get(f"{d.url}/v1/projects/{d.broken_pid}/spec"),
        httpx.get(d.url + "/v1/../../etc/passwd"),
        httpx.get(d.url + "/static-offline-docs/../../pyproject.toml"),
    ]
    assert responses[0].status_code == 503 and responses[0].json()["error"] == "storage_unavailable"
    for response in responses:
        assert response.status_code >= 400
        text = response.text
        for secret in (str(d.home), str(ROOT), "/tmp/", "/root", "/home/"):
            assert secret not in text, (response.status_code, text)


def test_a_slow_client_is_cut_off_at_the_header_timeout(deployment):
    d = deployment
    with socket.create_connection(("127.0.0.1", d.port), timeout=10) as sock:
        start = time.monotonic()
        sock.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")
        closed_after = None
        try:
            for _ in range(40):  # one header byte every 0.25 s: never a whole head within 1 s
                sock.sendall(b"X")
                time.sleep(0.25)
        except (BrokenPipeError, ConnectionResetError):
            closed_after = time.monotonic() - start
        if closed_after is None:
            answer = sock.recv(65536)
            closed_after = time.monotonic() - start
            assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer
    assert closed_after < 8, closed_after
    # a connection that never sends a byte is closed too, with a 408 that says why
    answer, took = raw_exchange(d.port, b"")
    assert answer.startswith(b"HTTP/1.1 408") and json_body(answer)["error"] == "header_timeout" and took < 8
    # ...and so is one that stays silent after its response
    answer, took = raw_exchange(d.port, http_head("GET", "/v1/health", d.port, {}))
    assert answer.startswith(b"HTTP/1.1 200") and took < 8
    # ...and the server still answers everyone else
    assert httpx.get(d.url + "/v1/health").status_code == 200


def test_project_lists_come_in_pages(deployment):
    d = deployment
    total = httpx.get(d.url + "/v1/projects?limit=1").json()["total"]
    assert total >= 2
    seen, offset, pages = [], 0, 0
    while offset is not None:
        page = httpx.get(f"{d.url}/v1/projects", params={"offset": offset, "limit": 1}).json()
        assert page["offset"] == offset and len(page["projects"]) == 1
        seen += [p["project_id"] for p in page["projects"]]
        offset, pages = page["next_offset"], pages + 1
    assert seen == list(range(1, total + 1)) and pages == total
    with ApiClient(d.url) as client:
        assert [p["project_id"] for p in client.projects(page_size=1)] == seen
    assert httpx.get(f"{d.url}/v1/projects?offset={total}").json() == {
        "projects": [],
        "total": total,
        "offset": total,
        "next_offset": None,
    }
    for bad in ("limit=0", "limit=1001", "offset=-1", "limit=abc"):
        assert_error(httpx.get(f"{d.url}/v1/projects?{bad}"), 422, "invalid_request")
    doc = httpx.get(d.url + "/openapi.json").json()
    params = {p["name"] for p in doc["paths"]["/v1/projects"]["get"]["parameters"]}
    assert {"offset", "limit"} <= params


def test_reads_and_writes_are_rate_limited_per_client(deployment):
    d = deployment
    reader = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.7"), timeout=10)
    with reader:
        statuses = []
        while 429 not in statuses and len(statuses) < 2000:  # 60 at once, then 5 a second
            limited = reader.get(d.url + ("/v1/health" if len(statuses) % 2 else "/v1/projects"))
            statuses.append(limited.status_code)
        assert statuses[0] == 200 and statuses[-1] == 429 and len(statuses) > 60, statuses
    assert_error(limited, 429, "rate_limited")
    assert int(limited.headers["Retry-After"]) >= 1
    assert httpx.get(d.url + "/v1/health").status_code == 200  # other clients are not affected
    # forged writes spend the client's budget before any signature is checked
    path = d.upload_path()
    forged = signing.sign_request(Account.create().key, d.audience(), "POST", path, b"x")
    forged[signing.HEADER_ADDRESS] = d.market.trainers[2].account.address
    statuses = []
    while 429 not in statuses and len(statuses) < 300:  # the budget refills as we go: 30 at once, then 2 a second
        statuses.append(post(d, path, b"x", forged, source="127.0.0.8").status_code)
    assert statuses[0] == 401 and statuses[-1] == 429 and len(statuses) > 30, statuses


def test_upload_bytes_in_flight_are_capped(deployment):
    """A trainer that declares a near-cap body and then stalls holds the server's whole budget for
    bodies in flight: another upload gets 503 busy until the stalled one is gone."""
    d = deployment
    staller, waiter = d.market.trainers[2].account, d.market.trainers[3]
    path = d.upload_path()
    headers = signing.sign_request(staller.key, d.audience(), "POST", path, body_sha256="00" * 32)
    headers.update({"Content-Length": str(MAX_UPDATE - 1000), "Content-Type": "application/octet-stream"})
    with socket.create_connection(("127.0.0.1", d.port), timeout=10) as sock:
        sock.sendall(http_head("POST", path, d.port, headers) + b"\0" * 1000)
        time.sleep(1.0)  # the server has authenticated it and is waiting for the rest of the body
        with ApiClient(d.url, private_key=waiter.account.key) as client, pytest.raises(ApiRequestError) as err:
            client.upload_update(d.pid, 0, d.update(waiter))
        assert (err.value.status, err.value.error) == (503, "busy")
    time.sleep(0.5)  # the stalled client went away: its reservation is released
    with ApiClient(d.url, private_key=waiter.account.key) as client:
        assert client.upload_update(d.pid, 0, d.update(waiter))


def test_docs_work_offline(deployment):
    d = deployment
    page = httpx.get(d.url + "/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower() and "/static-offline-docs/swagger-ui-bundle.js" in page.text
    assert httpx.get(d.url + "/static-offline-docs/swagger-ui-bundle.js").status_code == 200
    assert d.server.poll() is None  # after everything above, the server is still up
