"""The embedded store: round trips, verified reads, corruption, bad input, full disk."""

from __future__ import annotations

import errno
import io

import pytest

from backend.errors import IntegrityError, StorageError
from backend.storage import BlockNotFoundError, MalformedCidError, compute_cid, is_cid_of, open_store
from backend.storage.embedded import EmbeddedStore
from backend.storage.unixfs import CHUNK_SIZE, MAX_LINKS
from tests.storage.conftest import pseudo_random

K = CHUNK_SIZE


@pytest.mark.parametrize("version", [0, 1])
@pytest.mark.parametrize("size", [0, 1, K, K + 1, 5 * K + 3, MAX_LINKS * K + 1])
def test_round_trip(store, version, size):
    data = pseudo_random(size, seed=size)
    cid = store.add_bytes(data, cid_version=version)
    assert cid == compute_cid(data, version)
    assert store.get_bytes(cid) == data
    assert b"".join(store.get_stream(cid)) == data
    assert all(len(piece) <= K for piece in store.get_stream(cid))
    assert store.has(cid) and store.size(cid) == size


def test_default_is_cidv1_base32_and_both_spellings_resolve(store):
    cid = store.add_bytes(b"x" * 1000)
    assert cid.startswith("bafkrei")
    assert store.get_bytes(cid.upper().replace("BAFKREI", "BAFKREI")) == b"x" * 1000  # base32 upper multibase 'B'


def test_add_path_and_stream_agree(store, tmp_path):
    data = pseudo_random(3 * K + 11)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    assert store.add_path(path) == store.add_stream(io.BytesIO(data)) == store.add_bytes(data)


def test_reader_that_returns_short_reads_gives_the_same_cid(store):
    class Trickle(io.RawIOBase):
        def __init__(self, data):
            self.data, self.pos = data, 0

        def read(self, n=-1):
            piece = self.data[self.pos : self.pos + min(n, 1000)]
            self.pos += len(piece)
            return piece

    data = pseudo_random(2 * K + 5)
    assert store.add_stream(Trickle(data)) == compute_cid(data)


def test_layout_is_kubo_flatfs(store):
    cid = store.add_bytes(b"hello world\n", cid_version=0)
    assert (store.blocks / "SHARDING").read_text() == "/repo/flatfs/shard/v1/next-to-last/2\n"
    assert (
        store.block_path(cid).relative_to(store.blocks).as_posix()
        == "YD/CIQENVCICS44LLYUDQ5KVN6ALXC6QRHK2X4R6EUFRMBB5OSFO2FUYDQ.data"
    )
    assert not list(store.blocks.glob("*/.*.tmp"))


def test_open_store_defaults_to_embedded_under_home(tmp_path):
    with open_store("embedded", home=tmp_path) as s:
        assert isinstance(s, EmbeddedStore) and s.root == tmp_path / "ipfs"


def test_unknown_backend_spec_is_refused(tmp_path):
    from backend.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown IPFS backend"):
        open_store("ftp://x", home=tmp_path)


# -- bad input ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "bad",
    [
        "",
        "   ",
        "Qmfoo",
        "hello",
        "bafy",
        "zzzz",
        "bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",  # dag-cbor
        "bafkr2qfuvtbkq2tdgnbn6n6jqvzmdyvlbnsm5dq3e5nkgjmvkdz3yxg5y4",  # blake2b? garbage
    ],
)
def test_malformed_cid_is_refused_clearly(store, bad):
    with pytest.raises(MalformedCidError) as info:
        store.get_bytes(bad)
    assert "CID" in str(info.value)


def test_unknown_cid(store):
    cid = compute_cid(b"never added")
    with pytest.raises(BlockNotFoundError, match="not in the embedded store"):
        store.get_bytes(cid)
    assert not store.has(cid)
    with pytest.raises(BlockNotFoundError):
        store.pin(cid)


def test_missing_inner_block_is_reported(store):
    data = pseudo_random(3 * K)
    cid = store.add_bytes(data)
    leaf = compute_cid(data[K : 2 * K])
    store.block_path(leaf).unlink()
    with pytest.raises(BlockNotFoundError, match=leaf):
        store.get_bytes(cid)


# -- corruption ---------------------------------------------------------------------------------
@pytest.mark.parametrize("version", [0, 1])
@pytest.mark.parametrize("which", ["leaf", "root"])
def test_corrupt_block_is_detected_and_named(store, version, which):
    data = pseudo_random(3 * K + 1)
    cid = store.add_bytes(data, cid_version=version)
    target = store.block_path(cid if which == "root" else compute_cid(data[:K], version) if version else cid)
    if which == "leaf" and version == 0:
        target = next(p for p in store.blocks.glob("*/*.data") if p != store.block_path(cid))
    raw = bytearray(target.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    target.write_bytes(raw)
    with pytest.raises(IntegrityError) as info:
        store.get_bytes(cid)
    assert str(target) in str(info.value)
    with pytest.raises(IntegrityError):
        store.pin(cid)


def test_truncated_block_is_detected_and_readding_repairs_it(store):
    data = pseudo_random(2 * K)
    cid = store.add_bytes(data)
    leaf = store.block_path(compute_cid(data[:K]))
    leaf.write_bytes(leaf.read_bytes()[:100])
    with pytest.raises(IntegrityError, match="block file"):
        store.get_bytes(cid)
    assert store.add_bytes(data) == cid
    assert store.get_bytes(cid) == data


def test_get_to_path_leaves_no_partial_file(store, tmp_path):
    data = pseudo_random(3 * K)
    cid = store.add_bytes(data)
    store.block_path(compute_cid(data[2 * K :])).write_bytes(b"garbage")
    out = tmp_path / "out" / "model.bin"
    with pytest.raises(IntegrityError):
        store.get_to_path(cid, out)
    assert not out.exists() and list(out.parent.iterdir()) == []
    store.add_bytes(data)
    assert store.get_to_path(cid, out) == len(data) and out.read_bytes() == data


def test_max_size_is_enforced_before_reading(store):
    cid = store.add_bytes(b"x" * 5000)
    with pytest.raises(StorageError, match="over the limit"):
        store.get_bytes(cid, max_size=4999)
    assert store.get_bytes(cid, max_size=5000) == b"x" * 5000


def test_directory_cid_is_refused(store):
    """A UnixFS directory (what `ipfs add -r` makes) is not a file."""
    from backend.storage.cids import cid_prefix
    from backend.storage.unixfs import UnixFSData, encode_node

    block = encode_node([], UnixFSData(Type=1).SerializeToString())
    import hashlib

    cid = cid_prefix(1, "dag-pb").cid_string(hashlib.sha256(block).digest())
    store._put(cid_prefix(1, "dag-pb").cid_bytes(hashlib.sha256(block).digest()), block, [])
    with pytest.raises(StorageError, match="Directory, not a file"):
        store.get_bytes(cid)


def test_adding_a_directory_or_missing_path_is_refused(store, tmp_path):
    with pytest.raises(StorageError, match="is a directory"):
        store.add_path(tmp_path)
    with pytest.raises(StorageError, match="no such file"):
        store.add_path(tmp_path / "nope")


# -- full disk ----------------------------------------------------------------------------------
def test_full_disk_leaves_no_block_behind(store, monkeypatch):
    import backend.storage.embedded as embedded

    real = embedded._write_all
    calls = {"n": 0}

    def flaky(fd, block):
        calls["n"] += 1
        if calls["n"] > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd, block)

    monkeypatch.setattr(embedded, "_write_all", flaky)
    before = sorted(p.name for p in store.blocks.rglob("*"))
    with pytest.raises(StorageError, match="disk full"):
        store.add_bytes(pseudo_random(10 * K))
    assert sorted(p.name for p in store.blocks.rglob("*") if p.is_file()) == sorted(
        p for p in before if p == "SHARDING"
    )
    assert store.pinned() == []


def test_failed_add_keeps_blocks_that_were_already_there(store, monkeypatch):
    import backend.storage.embedded as embedded

    first = store.add_bytes(pseudo_random(K))
    monkeypatch.setattr(embedded, "_write_all", lambda fd, block: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
    with pytest.raises(StorageError, match="disk full"):
        store.add_bytes(pseudo_random(K) + pseudo_random(K, seed=5))
    assert store.get_bytes(first) == pseudo_random(K)


def test_pin_records_the_root(store):
    cid = store.add_bytes(b"abc", pin=False)
    assert store.pinned() == []
    store.pin(cid)
    assert store.pinned() == [cid]


def test_node_linking_to_garbage_is_refused(store):
    """A verified block can still be hostile: its links must be CIDs Merit can fetch."""
    import hashlib

    from backend.storage.cids import cid_prefix
    from backend.storage.unixfs import Link, UnixFSData, encode_node

    block = encode_node([Link(b"\x01\x55\x12\x05hello", 5, 5)], UnixFSData(Type=2, filesize=5).SerializeToString())
    digest = hashlib.sha256(block).digest()
    store._put(cid_prefix(1, "dag-pb").cid_bytes(digest), block, [])
    with pytest.raises(IntegrityError, match="links to a CID Merit cannot fetch"):
        store.get_bytes(cid_prefix(1, "dag-pb").cid_string(digest))


@pytest.mark.parametrize("codec", ["raw", "dag-pb"])
def test_cidv1_text_matches_multiformats(codec):
    from multiformats import CID, multihash

    from backend.storage.cids import format_cid

    for seed in range(200):
        digest = multihash.digest(pseudo_random(37, seed=seed), "sha2-256")
        cid = CID("base32", 1, codec, digest)
        assert format_cid(bytes(cid)) == str(cid)
        assert format_cid(cid) == str(cid)
    v0 = CID("base58btc", 0, "dag-pb", multihash.digest(b"v0", "sha2-256"))
    assert format_cid(bytes(v0)) == str(v0) and str(v0).startswith("Qm")


def test_concurrent_adds_share_the_writers_and_stay_separate(store):
    from concurrent.futures import ThreadPoolExecutor

    datas = [pseudo_random(3 * K + i, seed=100 + i) for i in range(12)]
    with ThreadPoolExecutor(6) as pool:
        cids = list(pool.map(store.add_bytes, datas))
    assert cids == [compute_cid(d) for d in datas]
    assert all(store.get_bytes(c) == d for c, d in zip(cids, datas))


def test_failed_add_while_another_add_runs_removes_only_its_own_blocks(store):
    import threading

    good = pseudo_random(40 * K, seed=7)
    started = threading.Event()

    class Failing(io.RawIOBase):
        def __init__(self):
            self.left = 20 * K

        def readable(self):
            return True

        def readinto(self, buf):
            started.wait(5)
            if self.left <= 0:
                raise OSError(errno.EIO, "device gone")
            n = min(len(buf), self.left)
            buf[:n] = pseudo_random(n, seed=self.left)
            self.left -= n
            return n

    result = {}
    worker = threading.Thread(target=lambda: result.setdefault("cid", store.add_bytes(good)))
    worker.start()
    started.set()
    with pytest.raises(Exception):
        store.add_stream(Failing())
    worker.join()
    assert store.get_bytes(result["cid"]) == good
    blocks = {p.name for p in store.blocks.rglob("*.data")}
    # only the good file's blocks remain: 40 leaves + 1 root
    assert len(blocks) == 41


def test_closing_the_store_during_an_add_fails_the_add_cleanly(tmp_path, monkeypatch):
    import threading
    import time

    import backend.storage.embedded as embedded

    store = EmbeddedStore(tmp_path / "ipfs")
    real = embedded._write_all
    monkeypatch.setattr(embedded, "_write_all", lambda fd, block: (time.sleep(0.05), real(fd, block)))
    outcome = {}

    def add():
        try:
            outcome["cid"] = store.add_bytes(pseudo_random(60 * K, seed=11))
        except StorageError as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=add)
    worker.start()
    time.sleep(0.2)
    store.close()
    worker.join(timeout=20)
    assert not worker.is_alive(), "the add hung after the store was closed"
    assert "error" in outcome and "closed" in str(outcome["error"])
    assert list(store.blocks.rglob("*.data")) == []  # the failed add left no block behind


def test_a_failing_add_keeps_blocks_that_a_concurrent_add_relies_on(store):
    import threading
    import time

    shared = pseudo_random(K, seed=21)  # one 256 KiB chunk both files start with
    shared_block = store.block_path(compute_cid(shared))
    b_done = threading.Event()

    class FailsLate(io.RawIOBase):
        def __init__(self):
            self.data, self.pos = shared + pseudo_random(3 * K, seed=22), 0

        def readable(self):
            return True

        def readinto(self, buf):
            if self.pos >= len(self.data):
                b_done.wait(10)  # fail only after the other add has finished
                raise OSError(errno.EIO, "device gone")
            n = min(len(buf), len(self.data) - self.pos)
            buf[:n] = self.data[self.pos : self.pos + n]
            self.pos += n
            return n

    failure = {}

    def add_a():
        try:
            store.add_stream(FailsLate())
        except Exception as exc:
            failure["a"] = exc

    a = threading.Thread(target=add_a)
    a.start()
    for _ in range(200):  # A has written the shared block
        if shared_block.exists():
            break
        time.sleep(0.01)
    assert shared_block.exists()
    b_data = shared + pseudo_random(2 * K, seed=23)
    b_cid = store.add_bytes(b_data)  # finds the shared block already there
    b_done.set()
    a.join(timeout=20)
    assert "a" in failure
    assert store.get_bytes(b_cid) == b_data  # A's failure did not take B's block with it
    assert shared_block.exists()
    # and A's own blocks, which nobody else uses, are gone
    assert len(list(store.blocks.rglob("*.data"))) == 4  # B: shared + 2 leaves + root


def test_is_cid_of_checks_bytes_in_the_cids_own_version():
    data = b"weights" * 50_000  # more than one chunk
    for version in (0, 1):
        cid = compute_cid(data, cid_version=version)
        assert is_cid_of(data, cid)
        assert not is_cid_of(data + b"!", cid)
