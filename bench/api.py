"""REST API throughput and memory: signed uploads from concurrent client processes, and the
server's memory under a stream of 100 MB bodies that it refuses.

The server runs in its own process (``python -m bench.api serve``) under uvicorn on loopback,
with the embedded content store and an "open market" chain view (every address joined, every
round Open), so the numbers measure the API itself: streaming, signature checks, validation and
storage, not chain reads. Each client process signs with its own key and uploads one update per
round, as a trainer would.
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
SIZES = {"1MB": (1, 256, 1024, 24), "10MB": (2, 1280, 2048, 5)}  # name: (project, rows, cols, uploads per client)
CAP_BYTES = 16 * 1024 * 1024
REFUSED_BODY = 100 * 1024 * 1024
REFUSED_REQUESTS = 20


# ---------------------------------------------------------------- server process
class OpenMarket:
    """A ChainView where every address has joined and every round is Open (projects 1 and 2)."""

    def __init__(self, model_cids: dict[int, str]):
        from backend.api.chain_view import ProjectInfo

        self._projects = {pid: ProjectInfo(
            project_id=pid, owner="0x" + "00" * 20, status="Running", current_round=0, rounds=10**6, trainer_count=CLIENTS,
            min_trainers=1, max_trainers=256, stake_wei=0, reward_pool_wei=0, reward_asset="ETH", spec_cid="",
            global_model_cid=cid) for pid, cid in model_cids.items()}

    def project_ids(self):
        return sorted(self._projects)

    def project(self, project_id):
        return self._projects.get(project_id)

    def round(self, project_id, round):
        from backend.api.chain_view import RoundInfo, RoundPhase

        if project_id not in self._projects or round >= 10**6:
            return None
        return RoundInfo(project_id=project_id, round=round, phase=RoundPhase.OPEN, submission_deadline=2**40,
                         aggregation_deadline=2**40, challenge_deadline=None, submissions=0, budget_wei=0,
                         global_model_cid=None, report_cid=None)

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
    app = create_app(settings, chain_view=OpenMarket(cids), store=store,
                     limits=ApiLimits(max_body_bytes=CAP_BYTES, writes_per_minute=10**7, write_burst=10**6))
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
        ready.wait()     # every client imported, built its bodies and connected
        for round_, body in enumerate(bodies):
            t0 = time.perf_counter()
            client.upload_update(project, round_, body)
            latencies.append(time.perf_counter() - t0)
    results.put((latencies, sum(len(b) for b in bodies)))


def _upload_run(url: str, project: int, rows: int, cols: int, uploads: int) -> dict:
    ctx = mp.get_context("spawn")
    ready, results = ctx.Barrier(CLIENTS + 1), ctx.Queue()
    procs = [ctx.Process(target=_client, args=(url, project, rows, cols, uploads, c + 1 + project * 100, ready, results))
             for c in range(CLIENTS)]
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

    from backend.api import signing

    key = Account.create().key
    path = "/v1/projects/1/rounds/0/updates"
    chunk = b"\0" * (1024 * 1024)

    def body():
        for _ in range(REFUSED_BODY // len(chunk)):
            yield chunk

    def send(http: httpx.Client, chunked: bool) -> int:
        headers = signing.sign_request(key, "POST", path, b"")  # refused before the signature matters
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


def run(out_dir: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="merit-bench-api-") as home:
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
        server = subprocess.Popen([sys.executable, "-m", "bench.api", "serve", home], stdout=subprocess.PIPE, env=env,
                                  cwd=Path(__file__).resolve().parents[1], text=True)
        try:
            port = json.loads(server.stdout.readline())["port"]
            url = f"http://127.0.0.1:{port}"
            result: dict = {"server": "uvicorn, 1 worker, loopback", "cpus": os.cpu_count(),
                            "chain": "open-market stub (chain reads excluded)", "store": "embedded"}
            # refused bodies first, on a fresh server, so its peak RSS is theirs and not the uploads'
            result["refused_100mb"] = _refused_run(url, server.pid)
            result["uploads"] = {name: _upload_run(url, *spec) for name, spec in SIZES.items()}
            refused = result["refused_100mb"]
            result["memory_flat"] = refused["rss_growth_mib"] < 32 and refused["statuses"] == [413]
            return result
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "serve":
    serve(Path(sys.argv[2]))
