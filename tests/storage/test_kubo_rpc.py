"""The Kubo RPC backend against a loopback server that answers as Kubo's RPC reference specifies."""

from __future__ import annotations

import socket

import httpx
import pytest

from backend.errors import IntegrityError, StorageError
from backend.storage import BlockNotFoundError, MalformedCidError, compute_cid, open_store
from backend.storage.kubo import KuboStore
from backend.storage.unixfs import CHUNK_SIZE
from tests.storage.conftest import pseudo_random

K = CHUNK_SIZE


@pytest.mark.parametrize("version", [0, 1])
@pytest.mark.parametrize("size", [0, 12, K, 3 * K + 17])
def test_round_trip(kubo, kubo_store, version, size):
    data = pseudo_random(size, seed=size)
    cid = kubo_store.add_bytes(data, cid_version=version)
    assert cid == compute_cid(data, version)
    assert kubo_store.get_bytes(cid) == data
    assert kubo_store.size(cid) == size and kubo_store.has(cid)
    add = next(r for r in kubo.requests if r[1] == "/api/v0/add")
    assert add[2]["cid-version"] == [str(version)] and add[2]["chunker"] == ["size-262144"]
    assert add[2]["raw-leaves"] == ["true" if version else "false"]
    assert kubo.uploads[-1] == {"name": "file", "type": "application/octet-stream"}


def test_reads_go_block_by_block(kubo, kubo_store):
    data = pseudo_random(3 * K + 1)
    cid = kubo_store.add_bytes(data)
    kubo.requests.clear()
    assert kubo_store.get_bytes(cid) == data
    gets = [r for r in kubo.requests if r[1] == "/api/v0/block/get"]
    assert len(gets) == 5 and all(r[0] == "POST" for r in kubo.requests)


def test_add_path_and_pin(kubo, kubo_store, tmp_path):
    path = tmp_path / "update.safetensors"
    path.write_bytes(pseudo_random(2 * K + 3))
    cid = kubo_store.add_path(path, pin=False)
    assert cid not in kubo.pins
    kubo_store.pin(cid)
    assert cid in kubo.pins


def test_open_store_with_a_url(kubo):
    with open_store(kubo.url) as store:
        assert isinstance(store, KuboStore)
        assert store.version() == "0.39.0"


def test_the_server_streams_cat_and_refuses_get(kubo, kubo_store):
    """The loopback node behaves like Kubo: POST only, cat streamed with chunked encoding."""
    data = pseudo_random(2 * K + 9)
    cid = kubo_store.add_bytes(data)
    with httpx.Client() as client:
        assert client.get(f"{kubo.url}/api/v0/cat", params={"arg": cid}).status_code == 405
        with client.stream("POST", f"{kubo.url}/api/v0/cat", params={"arg": cid}) as response:
            assert response.headers["transfer-encoding"] == "chunked"
            assert response.headers["x-stream-output"] == "1"
            assert b"".join(response.iter_bytes()) == data


# -- a node that lies ---------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["root", "leaf"])
def test_tampered_block_is_refused(kubo, kubo_store, which):
    data = pseudo_random(3 * K)
    cid = kubo_store.add_bytes(data)
    kubo.tamper.add(cid if which == "root" else compute_cid(data[K : 2 * K]))
    with pytest.raises(IntegrityError, match="do not hash to"):
        kubo_store.get_bytes(cid)


def test_tampered_block_never_reaches_a_file(kubo, kubo_store, tmp_path):
    data = pseudo_random(3 * K)
    cid = kubo_store.add_bytes(data)
    kubo.tamper.add(compute_cid(data[2 * K :]))
    out = tmp_path / "out.bin"
    with pytest.raises(IntegrityError):
        kubo_store.get_to_path(cid, out)
    assert list(tmp_path.iterdir()) == []


def test_node_returning_a_wrong_cid_on_add_is_refused(kubo, kubo_store):
    kubo.lie_on_add = True
    with pytest.raises(IntegrityError, match="hashes to"):
        kubo_store.add_bytes(b"some update")


# -- bad input and a bad network ----------------------------------------------------------------
def test_unknown_cid(kubo_store):
    with pytest.raises(BlockNotFoundError, match="not found"):
        kubo_store.get_bytes(compute_cid(b"nobody has this"))
    assert not kubo_store.has(compute_cid(b"nobody has this"))


def test_malformed_cid_never_reaches_the_node(kubo, kubo_store):
    with pytest.raises(MalformedCidError):
        kubo_store.get_bytes("Qm-not-a-cid")
    assert kubo.requests == []


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_node(tmp_path):
    with KuboStore(f"http://127.0.0.1:{_closed_port()}", timeout=1, retries=1, backoff=0.01) as store:
        with pytest.raises(StorageError, match="cannot reach the Kubo RPC API") as info:
            store.add_bytes(b"x")
        assert "ipfs daemon" in str(info.value)


def test_transient_errors_are_retried(kubo, kubo_store):
    cid = kubo_store.add_bytes(b"retry me")
    kubo.fail_next = 2
    assert kubo_store.get_bytes(cid) == b"retry me"


def test_persistent_errors_give_up(kubo, kubo_store):
    cid = kubo_store.add_bytes(b"retry me")
    kubo.fail_next = 100
    with pytest.raises(StorageError, match="HTTP 503"):
        kubo_store.get_bytes(cid)


def test_slow_node_times_out(kubo):
    kubo.delay = 0.5
    with KuboStore(kubo.url, timeout=0.1, retries=1, backoff=0.01) as store:
        with pytest.raises(StorageError, match="did not answer"):
            store.version()


def test_something_that_is_not_kubo(kubo):
    with KuboStore(kubo.url + "/elsewhere", timeout=2, retries=0) as store:
        with pytest.raises(StorageError, match="404"):
            store.version()


def test_oversized_block_is_refused_without_reading_it_all(kubo, kubo_store):
    from backend.storage.kubo import MAX_BLOCK

    cid = kubo_store.add_bytes(b"small")
    kubo.blocks[next(iter(kubo.blocks))] = b"x" * (MAX_BLOCK + 1)
    with pytest.raises(IntegrityError, match="more than"):
        kubo_store.get_bytes(cid)
