"""Issue 5's load benchmark: concurrent clients posting single images to `actiscope serve`.

    .venv/bin/python bench/bench_serve.py RUN [--clients 8] [--seconds 60] [--workers 2]

Starts the server (gunicorn, WORKERS processes) on a free port with a fresh data directory, waits for
/readyz, then CLIENTS threads post one image each per request for SECONDS. Prints requests/s, p50/p95
latency, errors, the workers' memory before and after, and the Predictor's own batch-1 throughput on
the same images in this process (the ceiling the server is compared against). All clients come from
127.0.0.1, which the API's per-client throttle would count as one client: the benchmark lifts it.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from actiscope.data.split import SplitManifest
from actiscope.predict import Predictor


def worker_rss_mb(server_pid: int) -> list[float]:
    children = Path(f"/proc/{server_pid}/task/{server_pid}/children")
    pids = children.read_text().split() if children.exists() else []
    out = []
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                out.append(round(int(line.split()[1]) / 1024, 1))
    return out


def multipart(path: Path) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{path.name}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()  # fmt: skip
    return body, f"multipart/form-data; boundary={boundary}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run", type=Path)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    images = [s.path for s in SplitManifest.load(args.run / "split.json").samples("test")[:64]]
    predictor = Predictor.load(args.run)
    predictor.predict(images[:2])
    start, done = time.perf_counter(), 0
    while time.perf_counter() - start < 15:
        predictor.predict([images[done % len(images)]])
        done += 1
    own_rate = done / (time.perf_counter() - start)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = tempfile.mkdtemp(prefix="actiscope-serve-bench-")
    server = subprocess.Popen([sys.executable, "-m", "actiscope.cli", "serve", "--runs", str(args.run.parent),
                               "--model", str(args.run), "--port", str(port), "--workers", str(args.workers),
                               "--data-dir", data], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "ACTISCOPE_THROTTLE": "1000000"})  # fmt: skip
    try:
        for _ in range(240):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                conn.request("GET", "/readyz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.5)
        # One request per worker process loads its model before the clock starts (lazy loading).
        for _ in range(args.workers * 2):
            body, kind = multipart(images[0])
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request("POST", "/api/v1/predict", body, {"Content-Type": kind})
            conn.getresponse().read()
        memory_before = worker_rss_mb(server.pid)

        latencies: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()
        stop = time.perf_counter() + args.seconds

        def client(k: int) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            i = k
            while time.perf_counter() < stop:
                body, kind = multipart(images[i % len(images)])
                i += args.clients
                t = time.perf_counter()
                try:
                    conn.request("POST", "/api/v1/predict", body, {"Content-Type": kind})
                    response = conn.getresponse()
                    response.read()
                    ok = response.status == 201
                except OSError as exc:
                    ok, conn = False, http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                    response = None
                    errors.append(str(exc))
                with lock:
                    if ok:
                        latencies.append((time.perf_counter() - t) * 1000)
                    elif response is not None:
                        errors.append(str(response.status))

        threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
        began = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - began
        memory_after = worker_rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    latencies.sort()
    rate = len(latencies) / elapsed
    print(json.dumps({
        "clients": args.clients, "workers": args.workers, "seconds": round(elapsed, 1), "requests": len(latencies),
        "requests_per_s": round(rate, 1), "p50_ms": round(statistics.median(latencies), 1),
        "p95_ms": round(latencies[int(0.95 * len(latencies)) - 1], 1), "errors": len(errors),
        "worker_rss_mb_before": memory_before, "worker_rss_mb_after": memory_after,
        "predictor_batch1_images_per_s": round(own_rate, 1), "backend": predictor.backend,
        "ratio_to_predictor": round(rate / own_rate, 2),
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
