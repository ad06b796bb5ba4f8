"""REST API throughput, memory and the cost of hostile clients.

Part one: the server runs in its own process (``python -m bench.api serve``) under uvicorn on
loopback, with the embedded content store and an "open market" chain view (every address joined,
every round Open), so the numbers measure the API itself: streaming, signature checks, validation
and storage, not chain reads. Each client process signs with its own key and uploads one update
per round, as a trainer would. Forged 64 MiB uploads (a joined address, someone else's signature)
measure what a forgery costs the server: CPU seconds and memory of the server process, from /proc.

Part two (``reads``): `merit api serve` on Anvil with 1,000 projects. One listing of all of them,
cold (first read after a new block) and warm; 8 clients, each from its own loopback address,
listing at once; and a trainer's upload pre-checks (a signed upload the server authenticates,
checks against the chain and reads) idle and while 8 client processes list in a loop.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CLIENTS = 4
FORGED_BODY = 64 * 1024 * 1024
FORGED_REQUESTS = 10
FORGED_CONCURRENT = 8
PROJECTS = 1000
READERS = 8
LISTINGS_PER_READER = 20
PRECHECKS = 160
PRECHECK_BLOCKS = 16  # idle and loaded measured in alternating blocks
SIZES = {"1MB": (1, 256, 1024, 24), "10MB": (2, 1280, 2048, 5)}  # name: (project, rows, cols, uploads per client)
CAP_BYTES = 16 * 1024 * 1024
REFUSED_BODY = 100 * 1024 * 1024
REFUSED_REQUESTS = 20


# ---------------------------------------------------------------- server process
class OpenMarket:
    """A ChainView where every address has joined and every round is Open (projects 1 and 2)."""

    chain_id = 31337
    market_address = "0x" + "ab" * 20

    def __init__(self, model_cids: dict[int, str]):
        from backend.api.chain_view import ProjectView

        self._projects = {
            pid: ProjectView(
                project_id=pid,
                owner="0x" + "00" * 20,
                status="Running",
                current_round=0,
                rounds=10**6,
                trainer_count=CLIENTS,
                min_trainers=1,
                max_trainers=256,
                stake_wei=0,
                reward_pool_wei=0,
                reward_asset="ETH",
                spec_cid="",
                global_model_cid=cid,
            )
            for pid, cid in model_cids.items()
        }

    def project_ids(self):
        return sorted(self._projects)

    def project(self, project_id):
        return self._projects.get(project_id)

    def round(self, project_id, round):
        from backend.api.chain_view import RoundView, RoundPhase

        if project_id not in self._projects or round >= 10**6:
            return None
        return RoundView(
            project_id=project_id,
            round=round,
            phase=RoundPhase.OPEN,
            submission_deadline=2**40,
            aggregation_deadline=2**40,
            challenge_deadline=None,
            submissions=0,
            budget_wei=0,
            global_model_cid=None,
            report_cid=None,
        )

    def is_joined(self, project_id, address):
        return project_id in self._projects

    def has_submitted(self, project_id, round, address):
        return False

    def claimable(self, project_id, address):
        return 0

    def stake(self, project_id, address):
        return 0


def _model_bytes(rows: int, cols: int, seed: int) -> bytes:
    from safetensors.numpy import save

    rng = np.random.default_rng(seed)
    return save({"w": rng.standard_normal((rows, cols), dtype=np.float32) * np.float32(0.01)})


def _open_store(home: Path):
    from backend.storage import open_store

    return open_store("embedded", home=home)


def serve(home: Path) -> None:
    import uvicorn

    from backend.api import create_app
    from backend.api.limits import ApiLimits
    from backend.config import Settings

    store = _open_store(home)
    cids = {project: store.add_bytes(_model_bytes(rows, cols, 0)) for project, rows, cols, _ in SIZES.values()}
    settings = Settings(home=home, chain="embedded", ipfs="embedded", max_update_bytes=CAP_BYTES)
    # rate limits out of the way: this server measures the cost of requests, not how many are let in
    app = create_app(
        settings,
        chain_view=OpenMarket(cids),
        store=store,
        limits=ApiLimits(
            max_body_bytes=CAP_BYTES,
            writes_per_minute=10**7,
            write_burst=10**6,
            ip_writes_per_minute=10**7,
            ip_write_burst=10**6,
            reads_per_minute=10**7,
            read_burst=10**6,
        ),
    )
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", timeout_keep_alive=60)
    server = uvicorn.Server(config)

    async def announce():
        while not server.started:
            await __import__("asyncio").sleep(0.01)
        print(json.dumps({"port": server.servers[0].sockets[0].getsockname()[1]}), flush=True)

    import asyncio

    async def main():
        task = asyncio.create_task(announce())
        await server.serve()
        task.cancel()

    asyncio.run(main())


# ---------------------------------------------------------------- clients
def _client(url: str, project: int, rows: int, cols: int, uploads: int, seed: int, ready, results) -> None:
    from eth_account import Account

    from backend.trainer.api_client import ApiClient

    key = Account.create().key
    bodies = [_model_bytes(rows, cols, seed * 1000 + i + 1) for i in range(uploads)]
    latencies = []
    with ApiClient(url, private_key=key) as client:
        client.health()  # open the connection before the clock starts
        ready.wait()  # every client imported, built its bodies and connected
        for round_, body in enumerate(bodies):
            t0 = time.perf_counter()
            client.upload_update(project, round_, body)
            latencies.append(time.perf_counter() - t0)
    results.put((latencies, sum(len(b) for b in bodies)))


def _upload_run(url: str, project: int, rows: int, cols: int, uploads: int) -> dict:
    ctx = mp.get_context("spawn")
    ready, results = ctx.Barrier(CLIENTS + 1), ctx.Queue()
    procs = [
        ctx.Process(target=_client, args=(url, project, rows, cols, uploads, c + 1 + project * 100, ready, results))
        for c in range(CLIENTS)
    ]
    for p in procs:
        p.start()
    ready.wait(timeout=300)
    t0 = time.perf_counter()
    gathered = [results.get(timeout=600) for _ in procs]
    wall = time.perf_counter() - t0
    for p in procs:
        p.join()
    latencies = np.array([x for lat, _ in gathered for x in lat])
    total_bytes = sum(b for _, b in gathered)
    return {
        "update_bytes": int(total_bytes // len(latencies)),
        "clients": CLIENTS,
        "requests": int(len(latencies)),
        "seconds": round(wall, 3),
        "requests_per_s": round(len(latencies) / wall, 2),
        "mb_per_s": round(total_bytes / wall / 1e6, 2),
        "latency_p50_ms": round(float(np.percentile(latencies, 50)) * 1000, 1),
        "latency_p99_ms": round(float(np.percentile(latencies, 99)) * 1000, 1),
    }


def _rss_kib(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def _refused_run(url: str, pid: int) -> dict:
    """Stream 100 MB bodies the server must refuse (413), with and without Content-Length."""
    import httpx
    from eth_account import Account

    from backend import signing

    key = Account.create().key
    path = "/v1/projects/1/rounds/0/updates"
    chunk = b"\0" * (1024 * 1024)

    def body():
        for _ in range(REFUSED_BODY // len(chunk)):
            yield chunk

    def send(http: httpx.Client, chunked: bool) -> int:
        headers = signing.sign_request(key, _audience(url), "POST", path, b"")  # refused before the body is read
        if not chunked:
            headers["Content-Length"] = str(REFUSED_BODY)
        return http.post(path, content=body(), headers=headers).status_code

    samples, statuses = [], []
    with httpx.Client(base_url=url, timeout=120) as http:
        send(http, False), send(http, True)  # warm-up: first-request allocations are not growth
        before = _rss_kib(pid)
        t0 = time.perf_counter()
        for i in range(REFUSED_REQUESTS):
            statuses.append(send(http, chunked=i % 2 == 1))
            samples.append(_rss_kib(pid)["VmRSS"])
        wall = time.perf_counter() - t0
    after = _rss_kib(pid)
    return {
        "body_bytes": REFUSED_BODY,
        "requests": REFUSED_REQUESTS,
        "half_without_content_length": True,
        "cap_bytes": CAP_BYTES,
        "statuses": sorted(set(statuses)),
        "seconds": round(wall, 2),
        "rss_before_mib": round(before["VmRSS"] / 1024, 1),
        "rss_after_mib": round(after["VmRSS"] / 1024, 1),
        "rss_max_during_mib": round(max(samples) / 1024, 1),
        "rss_growth_mib": round((after["VmRSS"] - before["VmRSS"]) / 1024, 1),
        "peak_rss_mib": round(after["VmHWM"] / 1024, 1),
    }


def _audience(url: str):
    from backend import signing

    return signing.Audience(OpenMarket.chain_id, OpenMarket.market_address, url)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _forged_upload(url: str) -> int:
    """One 64 MiB upload in a joined address's name, signed by another key, sent whole (with its
    Content-Length), as an attacker's HTTP client would; returns the status."""
    import httpx
    from eth_account import Account

    from backend import signing

    path = "/v1/projects/1/rounds/0/updates"
    chunk = b"\0" * (1024 * 1024)
    headers = signing.sign_request(
        Account.create().key, _audience(url), "POST", path, body_sha256=signing.body_digest(b"\0" * FORGED_BODY)
    )
    headers[signing.HEADER_ADDRESS] = Account.create().address  # every address has joined the open market
    headers["Content-Length"] = str(FORGED_BODY)

    def body():
        for _ in range(FORGED_BODY // len(chunk)):
            yield chunk

    with httpx.Client(timeout=60) as http:
        return http.post(url + path, content=body(), headers=headers).status_code


def _forged_run(url: str, pid: int) -> dict:
    """What forged 64 MiB uploads cost the server: CPU seconds each, and memory, one at a time and
    8 at once."""
    from concurrent.futures import ThreadPoolExecutor

    _forged_upload(url)  # warm-up: first-request allocations are not the forgery's
    before, cpu0 = _rss_kib(pid), _cpu_seconds(pid)
    statuses = [_forged_upload(url) for _ in range(FORGED_REQUESTS)]
    cpu1, sequential = _cpu_seconds(pid), _rss_kib(pid)
    with ThreadPoolExecutor(FORGED_CONCURRENT) as pool:
        statuses += list(pool.map(lambda _: _forged_upload(url), range(FORGED_CONCURRENT)))
    cpu2, after = _cpu_seconds(pid), _rss_kib(pid)
    return {
        "body_bytes": FORGED_BODY,
        "requests": FORGED_REQUESTS,
        "concurrent": FORGED_CONCURRENT,
        "statuses": sorted(set(statuses)),
        "server_cpu_ms_per_request": round((cpu1 - cpu0) / FORGED_REQUESTS * 1000, 2),
        "server_cpu_ms_per_request_concurrent": round((cpu2 - cpu1) / FORGED_CONCURRENT * 1000, 2),
        "cpu_clock_tick_ms": round(1000 / os.sysconf("SC_CLK_TCK"), 1),
        "rss_before_mib": round(before["VmRSS"] / 1024, 1),
        "rss_growth_sequential_mib": round((sequential["VmRSS"] - before["VmRSS"]) / 1024, 2),
        "rss_growth_after_concurrent_mib": round((after["VmRSS"] - before["VmRSS"]) / 1024, 2),
        "peak_rss_growth_mib": round((after["VmHWM"] - before["VmHWM"]) / 1024, 2),
    }


def run(out_dir: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="merit-bench-api-") as home:
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
        server = subprocess.Popen(
            [sys.executable, "-m", "bench.api", "serve", home],
            stdout=subprocess.PIPE,
            env=env,
            cwd=Path(__file__).resolve().parents[1],
            text=True,
        )
        try:
            port = json.loads(server.stdout.readline())["port"]
            url = f"http://127.0.0.1:{port}"
            result: dict = {
                "server": "uvicorn, 1 worker, loopback",
                "cpus": os.cpu_count(),
                "chain": "open-market stub (chain reads excluded)",
                "store": "embedded",
            }
            # forged, then refused bodies first, on a fresh server, so its peak RSS is theirs and not the uploads'
            result["forged_64mib"] = _forged_run(url, server.pid)
            result["refused_100mb"] = _refused_run(url, server.pid)
            result["uploads"] = {name: _upload_run(url, *spec) for name, spec in SIZES.items()}
            refused = result["refused_100mb"]
            result["memory_flat"] = refused["rss_growth_mib"] < 32 and refused["statuses"] == [413]
        finally:
            server.terminate()
            server.wait(timeout=30)
    result["reads"] = _reads_run()
    return result


# ---------------------------------------------------------------- reads on a real chain
def _create_projects(chain, owner, count: int, cid: str) -> int:
    """``count`` projects whose model is ``cid`` (the first one Running with a joined trainer);
    returns the trainer's index."""
    from backend.chain.connection import dev_account
    from backend.chain.committee import CommitteeClient
    from backend.chain.types import ETH, ProjectConfig

    aggregator, trainer = owner.as_account(dev_account(1)), owner.as_account(dev_account(3))
    cfg = ProjectConfig(
        asset=ETH,
        pool=1000,
        stake=10,
        aggregatorBond=100,  # the floors: a tenth of a round's budget; the arbiter independent of both
        disputeBond=10,
        aggregator=owner.committee_address(),  # every project's aggregator is the committee
        arbiter=dev_account(2).address,
        rounds=3,
        minTrainers=1,
        maxTrainers=8,
        slashBps=5000,
        submissionWindow=86400,
        aggregationWindow=86400,
        challengePeriod=600,
        specCid=cid,
        initialModelCid=cid,
        validationCommitment=b"\x01" * 32,
        revealWindow=86400,
    )
    CommitteeClient.of(aggregator).register(CommitteeClient.of(owner).minimum_stake())  # drawn at start
    first = owner.create_project(cfg)
    owner.post_aggregator_bond(first)
    trainer.join(first)
    owner.start(first)
    # the rest signed here and sent without waiting for each receipt: setting up, not what is measured
    w3, account = chain.w3, owner.account
    gas = int(
        w3.eth.estimate_gas(
            {
                "from": account.address,
                "to": owner.address,
                "value": cfg.pool,
                "data": owner.contract.functions.createProject(cfg.as_tuple())._encode_transaction_data(),
            }
        )
    )
    tx = owner.contract.functions.createProject(cfg.as_tuple()).build_transaction(
        {
            "from": account.address,
            "value": cfg.pool,
            "gas": 2 * gas,
            "gasPrice": 50 * int(w3.eth.gas_price),
            "nonce": 0,
            "chainId": chain.chain_id,
        }
    )
    nonce = w3.eth.get_transaction_count(account.address, "pending")
    w3.provider.make_request("evm_setAutomine", [False])  # one block per batch of transactions, not per transaction
    for start in range(0, count - 1, 40):  # blocks half full: the base fee stays put
        for i in range(start, min(start + 40, count - 1)):
            w3.eth.send_raw_transaction(account.sign_transaction({**tx, "nonce": nonce + i}).raw_transaction)
        while w3.eth.get_transaction_count(account.address) < nonce + min(start + 40, count - 1):
            w3.provider.make_request("evm_mine", [])
    w3.provider.make_request("evm_setAutomine", [True])
    assert owner.project_count() == count, owner.project_count()
    return 3


def _timed_get(http, url: str) -> tuple[float, int]:
    t0 = time.perf_counter()
    status = http.get(url).status_code
    return time.perf_counter() - t0, status


def _split_cores() -> tuple[set[int], set[int]]:
    """(the server's cores, the readers' cores): the readers stand in for clients on other machines,
    so they get cores of their own; the server, its chain node and the uploading trainer share the rest."""
    cores = sorted(os.sched_getaffinity(0))
    half = max(1, len(cores) // 2)
    return set(cores[:half]), set(cores[half:] or cores)


def _reader(url: str, source: str, cores: set[int], listings: int, ready, go, stop, results) -> None:
    """A client on its own loopback address that lists every project ``listings`` times or, with
    ``listings`` 0, whenever ``go`` is set until ``stop`` is; reports latencies and statuses."""
    import httpx

    os.sched_setaffinity(0, cores)
    with httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=60) as http:
        http.get(url + "/v1/health")
        ready.wait()
        out = []
        while (len(out) < listings) if listings else not stop.is_set():
            if not listings and not go.wait(timeout=0.05):
                continue
            t0 = time.perf_counter()
            response = http.get(f"{url}/v1/projects?limit={PROJECTS}")
            out.append((time.perf_counter() - t0, response.status_code))
    results.put(out)


def _readers(url: str, cores: set[int], listings: int) -> tuple[list, tuple]:
    """``READERS`` reader processes, started and waiting at the starting line; with ``listings`` 0
    they read while the returned ``go`` event is set, until ``stop`` is."""
    ctx = mp.get_context("spawn")
    ready, results, go, stop = ctx.Barrier(READERS + 1), ctx.Queue(), ctx.Event(), ctx.Event()
    procs = [
        ctx.Process(target=_reader, args=(url, f"127.0.0.{10 + i}", cores, listings, ready, go, stop, results))
        for i in range(READERS)
    ]
    for proc in procs:
        proc.start()
    ready.wait(timeout=300)
    return procs, (results, go, stop)


def _gather(procs, results) -> list[tuple[float, int]]:
    gathered = [x for _ in procs for x in results.get(timeout=600)]
    for proc in procs:
        proc.join()
    return gathered


def _interleaved_prechecks(url: str, cores: set[int], key, audience, pid: int) -> tuple[list, list, list]:
    """Pre-checks with the readers paused and reading, in alternating blocks, so that whatever else
    the machine is doing weighs on both alike; returns (idle, loaded, the readers' listings)."""
    procs, (results, go, stop) = _readers(url, cores, 0)
    idle, loaded = [], []
    try:
        for _ in range(PRECHECK_BLOCKS):
            go.clear()
            time.sleep(0.3)  # the readers' requests in flight drain
            idle += _prechecks(url, key, audience, pid, PRECHECKS // PRECHECK_BLOCKS)
            go.set()
            time.sleep(0.3)  # the readers are reading
            loaded += _prechecks(url, key, audience, pid, PRECHECKS // PRECHECK_BLOCKS)
    finally:
        go.clear()
        stop.set()
    return idle, loaded, _gather(procs, results)


def _prechecks(url: str, key, audience, pid: int, n: int) -> list[float]:
    """A trainer's signed upload, authenticated, checked against the chain (fresh reads: project,
    round, joined, submitted) and read; the body is junk, so it ends in 422 and changes nothing."""
    import httpx

    from backend import signing

    path = f"/v1/projects/{pid}/rounds/0/updates"
    out = []
    with httpx.Client(timeout=60) as http:
        for _ in range(n):
            headers = signing.sign_request(key, audience, "POST", path, b"junk")
            t0 = time.perf_counter()
            status = http.post(url + path, content=b"junk", headers=headers).status_code
            out.append(time.perf_counter() - t0)
            assert status == 422, status
    return out


def _ms(values) -> dict:
    arr = np.array(values) * 1000
    return {
        "median_ms": round(float(np.median(arr)), 1),
        "p95_ms": round(float(np.percentile(arr, 95)), 1),
        "max_ms": round(float(arr.max()), 1),
        "n": int(len(arr)),
    }


def _reads_run() -> dict:
    all_cores = os.sched_getaffinity(0)
    server_cores, reader_cores = _split_cores()
    os.sched_setaffinity(0, server_cores)  # the chain node and the server inherit it
    try:
        return {
            **_reads_on_cores(reader_cores),
            "cores": {"server_chain_and_trainer": sorted(server_cores), "readers": sorted(reader_cores)},
        }
    finally:
        os.sched_setaffinity(0, all_cores)


def _reads_on_cores(reader_cores: set[int]) -> dict:
    import httpx

    from backend import signing
    from backend.chain.anvil import AnvilProcess, free_port
    from backend.chain.client import MarketClient
    from backend.chain.connection import connect, dev_account

    with tempfile.TemporaryDirectory(prefix="merit-bench-reads-") as home, AnvilProcess() as node:
        chain = connect(node.url)
        owner = MarketClient.deploy(chain, dev_account(0))
        store = _open_store(Path(home))
        model_cid = store.add_bytes(_model_bytes(16, 16, 0))  # uploads are checked against its layout
        store.close()
        t0 = time.perf_counter()
        trainer = dev_account(_create_projects(chain, owner, PROJECTS, model_cid))
        setup_s = time.perf_counter() - t0
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        root = Path(__file__).resolve().parents[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("MERIT_")}
        # default read limits (what is under test); the trainer's write limits out of the way of its 80 requests
        env.update(
            MERIT_HOME=home,
            MERIT_CHAIN=node.url,
            MERIT_MARKET=owner.address,
            PYTHONPATH=str(root),
            MERIT_API_WRITES_PER_MINUTE="100000",
            MERIT_API_WRITE_BURST="1000",
            MERIT_API_IP_WRITES_PER_MINUTE="100000",
            MERIT_API_IP_WRITE_BURST="1000",
        )
        server = subprocess.Popen(
            [sys.executable, "-m", "backend.cli.main", "api", "serve", "--port", str(port), "--log-level", "warning"],
            env=env,
            cwd=root,
            stdout=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    httpx.get(url + "/v1/health", timeout=2)
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise RuntimeError("merit api serve did not start")
                    time.sleep(0.3)
            listing = f"{url}/v1/projects?limit={PROJECTS}"
            cold, warm = [], []
            with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"), timeout=60) as http:
                for _ in range(5):
                    chain.w3.provider.make_request("evm_mine", [])  # a new block: the cache starts over
                    time.sleep(0.15)  # past the head poll interval
                    elapsed, status = _timed_get(http, listing)
                    assert status == 200 and len(http.get(listing).json()["projects"]) == PROJECTS
                    cold.append(elapsed)
                    warm.append(_timed_get(http, listing)[0])
            cpu0 = _cpu_seconds(server.pid)
            procs, (results, _, _) = _readers(url, reader_cores, LISTINGS_PER_READER)
            concurrent = _gather(procs, results)
            listing_cpu_ms = (_cpu_seconds(server.pid) - cpu0) * 1000 / len(concurrent)
            audience = signing.Audience(chain.chain_id, owner.address, url)
            idle, loaded, hammering = _interleaved_prechecks(url, reader_cores, trainer.key, audience, 1)
        finally:
            server.terminate()
            server.wait(timeout=30)
    ok = [t for t, status in concurrent if status == 200]
    idle_ms, loaded_ms = _ms(idle), _ms(loaded)
    return {
        "chain": "anvil",
        "projects": PROJECTS,
        "setup_seconds": round(setup_s, 1),
        "listing_cold": _ms(cold),
        "listing_warm": _ms(warm),
        "concurrent_listings": {
            "clients": READERS,
            "each": LISTINGS_PER_READER,
            **_ms(ok),
            "statuses": sorted({s for _, s in concurrent}),
        },
        "server_cpu_ms_per_listing": round(listing_cpu_ms, 2),
        "prechecks_idle": idle_ms,
        "prechecks_under_read_load": loaded_ms,
        "prechecks_slowdown": round(loaded_ms["median_ms"] / idle_ms["median_ms"], 2),
        "read_load": {
            "clients": READERS,
            "requests": len(hammering),
            "answered_200": sum(1 for _, s in hammering if s == 200),
            "answered_429": sum(1 for _, s in hammering if s == 429),
        },
        "read_limit_per_ip": "300/min, burst 60 (defaults); an over-limit read's 429 held until its token is due (<= 1 s)",
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "serve":
    serve(Path(sys.argv[2]))
