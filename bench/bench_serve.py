"""The serving benchmark (issues 5 and 17): `actiscope serve` under a mixed load, then overloaded.

    .venv/bin/python bench/bench_serve.py RUN [--clients 32] [--seconds 300] [--workers N]
        [--overload-clients 128] [--overload-seconds 30]

Starts the server (gunicorn with serve's default workers and prediction limits unless --workers says
otherwise) on a free port with a fresh data directory, waits for /readyz and lets every worker load
its model. Then:
- mixed: CLIENTS threads for SECONDS, each request chosen at random: a prediction (half), a history
  page (a quarter) or an API read (predictions, models, runs): requests/s, p50/p95/p99 per kind and
  overall, errors (anything but the expected answer; a 503 "busy" with Retry-After is counted apart, as
  the limit's answer), the workers' memory (RSS) at the start and at the end;
- overload: OVERLOAD_CLIENTS threads posting predictions only, for OVERLOAD_SECONDS: how many were
  served and how many refused with 503 + Retry-After, and how fast each kind was answered (the limit
  should answer in milliseconds, well inside the queue's wait, never by timing out).
The images are RUN's test split. The Predictor's own batch-1 rate on them in this process is the
ceiling. All clients come from 127.0.0.1, which the API's per-client throttle would count as one: the
benchmark lifts it. The clients share the machine's cores with the server: on a small machine they
are part of the load.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from actiscope.data.split import SplitManifest
from actiscope.predict import Predictor

READS = ("/api/v1/predictions", "/api/v1/models", "/api/v1/runs")
TIMEOUT_S = 120  # a client's limit on one answer: an answer that takes this long is an error


def worker_rss_mb(server_pid: int) -> list[float]:
    children = Path(f"/proc/{server_pid}/task/{server_pid}/children")
    pids = children.read_text().split() if children.exists() else []
    out = []
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                out.append(round(int(line.split()[1]) / 1024, 1))
    return out


def multipart(name: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    )
    return (
        head.encode() + data + f"\r\n--{boundary}--\r\n".encode(),
        f"multipart/form-data; boundary={boundary}",
    )


@dataclass
class Tally:
    """Latencies (ms) per kind and outcome, and the errors, shared by the client threads."""

    latencies: dict[tuple[str, str], list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, outcome: str, ms: float) -> None:
        with self.lock:
            self.latencies[kind, outcome].append(ms)

    def error(self, what: str) -> None:
        with self.lock:
            self.errors[what] += 1

    def all(self, outcome: str) -> list[float]:
        return [ms for (_, o), values in self.latencies.items() if o == outcome for ms in values]


def percentiles(values: list[float]) -> dict[str, float]:
    if len(values) < 2:
        return {"n": len(values)}
    q = statistics.quantiles(values, n=100, method="inclusive")
    return {
        "n": len(values),
        "p50_ms": round(q[49], 1),
        "p95_ms": round(q[94], 1),
        "p99_ms": round(q[98], 1),
        "max_ms": round(max(values), 1),
    }


class Client:
    """One keep-alive connection; a request's outcome goes to the tally."""

    def __init__(self, port: int, tally: Tally) -> None:
        self.port, self.tally = port, tally
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT_S)

    def ask(self, kind: str, method: str, path: str, body: bytes | None = None, ctype: str = "") -> None:
        expected = 201 if method == "POST" else 200
        start = time.perf_counter()
        try:
            self.conn.request(method, path, body, {"Content-Type": ctype} if ctype else {})
            response = self.conn.getresponse()
            response.read()
        except OSError as exc:  # refused, reset or timed out: an error, and a new connection
            self.tally.error(f"{kind}: {type(exc).__name__}")
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT_S)
            return
        ms = (time.perf_counter() - start) * 1000
        if response.status == expected:
            self.tally.add(kind, "ok", ms)
        elif response.status == 503 and response.getheader("Retry-After"):
            self.tally.add(kind, "busy", ms)  # the limit's answer: refused at once, with when to retry
        else:
            self.tally.error(f"{kind}: HTTP {response.status}")


def run_clients(count: int, client: Callable[[int], None]) -> float:
    """`count` threads running `client(k)` until it returns; the seconds they took."""
    threads = [threading.Thread(target=client, args=(k,)) for k in range(count)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - began


def start_server(run: Path, workers: int | None) -> tuple[subprocess.Popen[bytes], int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = tempfile.mkdtemp(prefix="actiscope-serve-bench-")
    command = [
        sys.executable,
        "-m",
        "actiscope.cli",
        "serve",
        "--runs",
        str(run.parent),
        "--model",
        str(run),
        "--port",
        str(port),
        "--data-dir",
        data,
        *(["--workers", str(workers)] if workers else []),
    ]
    server = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "ACTISCOPE_THROTTLE": "1000000"},
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return server, port
        except OSError:
            pass
        time.sleep(0.5)
    server.terminate()
    raise SystemExit("the server did not become ready within 240 s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run", type=Path)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--workers", type=int, help="gunicorn workers (default: serve's default)")
    parser.add_argument("--overload-clients", type=int, default=128)
    parser.add_argument("--overload-seconds", type=float, default=30)
    parser.add_argument(
        "--ceiling-seconds", type=float, default=10, help="the Predictor's own rate, measured this long"
    )
    args = parser.parse_args()

    paths = [s.path for s in SplitManifest.load(args.run / "split.json").samples("test")[:64]]
    images = [(p.name, p.read_bytes()) for p in paths]
    predictor = Predictor.load(args.run)
    predictor.predict(paths[:2])
    start, done = time.perf_counter(), 0
    while time.perf_counter() - start < args.ceiling_seconds:
        predictor.predict([paths[done % len(paths)]])
        done += 1
    ceiling = done / (time.perf_counter() - start)

    server, port = start_server(args.run, args.workers)
    try:

        def warm_up(k: int) -> None:  # new connections, at once: every worker gets some and loads its model
            for i in range(4):
                Client(port, Tally()).ask(
                    "warm-up", "POST", "/api/v1/predict", *multipart(*images[(k + i) % len(images)])
                )

        run_clients(max(8, args.clients), warm_up)
        memory_start = worker_rss_mb(server.pid)

        mixed, stop = Tally(), time.perf_counter() + args.seconds

        def mixed_client(k: int) -> None:
            client, rng, i = Client(port, mixed), random.Random(k), k
            while time.perf_counter() < stop:
                pick = rng.random()
                if pick < 0.5:
                    i += 1
                    client.ask("predict", "POST", "/api/v1/predict", *multipart(*images[i % len(images)]))
                elif pick < 0.75:
                    client.ask("history", "GET", f"/history?page={rng.randint(1, 5)}")
                else:
                    client.ask("api-read", "GET", rng.choice(READS))

        mixed_elapsed = run_clients(args.clients, mixed_client)
        memory_end = worker_rss_mb(server.pid)

        overload, stop = Tally(), time.perf_counter() + args.overload_seconds

        def overload_client(k: int) -> None:
            client, i = Client(port, overload), k
            while time.perf_counter() < stop:
                i += 1
                client.ask("predict", "POST", "/api/v1/predict", *multipart(*images[i % len(images)]))

        overload_elapsed = run_clients(args.overload_clients, overload_client)
    finally:
        server.terminate()
        server.wait(timeout=60)

    answered = mixed.all("ok") + mixed.all("busy")
    print(
        json.dumps(
            {
                "run": str(args.run),
                "backend": predictor.backend,
                "predictor_batch1_images_per_s": round(ceiling, 1),
                "mixed": {
                    "clients": args.clients,
                    "seconds": round(mixed_elapsed, 1),
                    "requests_per_s": round(len(answered) / mixed_elapsed, 1),
                    "predictions_per_s": round(len(mixed.latencies["predict", "ok"]) / mixed_elapsed, 1),
                    "all": percentiles(mixed.all("ok")),
                    **{
                        kind: percentiles(mixed.latencies[kind, "ok"])
                        for kind in ("predict", "history", "api-read")
                    },
                    "busy_503": len(mixed.all("busy")),
                    "errors": sum(mixed.errors.values()),
                    "error_kinds": dict(mixed.errors),
                    "worker_rss_mb_start": memory_start,
                    "worker_rss_mb_end": memory_end,
                },
                "overload": {
                    "clients": args.overload_clients,
                    "seconds": round(overload_elapsed, 1),
                    "served_201": percentiles(overload.all("ok")),
                    "refused_503_retry_after": percentiles(overload.all("busy")),
                    "errors": sum(overload.errors.values()),
                    "error_kinds": dict(overload.errors),
                },
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
