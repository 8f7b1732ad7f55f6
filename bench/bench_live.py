"""The Live page's rate: one browser's camera frames through `actiscope serve`, as live.js sends them.

    .venv/bin/python bench/bench_live.py RUN [--seconds 60] [--min-gap-ms 0] [--backend int8]

Starts the server (gunicorn, its default workers) on a free port with a fresh data directory and RUN
active, then plays live.js's part: frames 320 pixels wide as JPEG (quality 85), the next one sent only
when the answer to the last is back (at most one in flight) and not sooner than --min-gap-ms after the
last was sent (the page's default is 200 ms; 0 measures the most the server gives one browser). Frames are
RUN's test images (for a video model, its test clips' frames in order, with a session id). Prints frames per
second, the round trip (p50/p95/p99: what the page waits for) and the server's own model time per frame.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from PIL import Image

from actiscope.data.split import SplitManifest
from actiscope.package import read_meta
from actiscope.predict.backends import choose_backend
from actiscope.run import RunDir

SIDE = 320  # live.js: frames are sent at most this wide


def jpeg(pixels: np.ndarray | Image.Image) -> bytes:
    image = pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels)
    image = image.convert("RGB")
    scale = min(1.0, SIDE / image.width)
    image = image.resize((round(image.width * scale), round(image.height * scale)))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def frames_of(run: RunDir, kind: str, count: int) -> list[bytes]:
    samples = SplitManifest.load(run.split).samples("test")
    if kind == "image":
        return [jpeg(Image.open(s.path)) for s in samples[:count]]
    from actiscope.data.video import read_clip

    out: list[bytes] = []
    for sample in samples:
        out += [jpeg(frame) for frame in read_clip(sample.path, (640, 480), 32).pixels]
        if len(out) >= count:
            break
    return out[:count]


def form(fields: dict[str, str], frame: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    ]
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="frame"; filename="frame.jpg"\r\n'
    parts.append(f"{head}Content-Type: image/jpeg\r\n\r\n".encode() + frame + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run", type=Path)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--min-gap-ms", type=float, default=0)
    parser.add_argument(
        "--backend", default="auto", help="`serve --backend`: e.g. onnx-int8 (default: auto, as served)"
    )
    args = parser.parse_args()
    run = RunDir(args.run)
    meta = read_meta(run.model)
    # what the server's Predictor.load("auto") picks, or the one asked for
    backend = choose_backend(run.model, meta) if args.backend == "auto" else args.backend
    frames = frames_of(run, meta.kind, 64)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = tempfile.mkdtemp(prefix="actiscope-live-bench-")
    argv = [
        sys.executable,
        "-m",
        "actiscope.cli",
        "serve",
        "--runs",
        str(run.path.parent),
        "--model",
        str(run.path),
        "--port",
        str(port),
        "--data-dir",
        data,
        "--backend",
        args.backend,
    ]
    env = {**os.environ, "ACTISCOPE_THROTTLE": "1000000"}  # one browser at this rate is not abuse
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        for _ in range(240):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                conn.request("GET", "/readyz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.5)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        session = uuid.uuid4().hex
        trips: list[float] = []
        model_ms: list[float] = []
        answered = errors = 0

        def send(i: int) -> dict:
            body, kind = form({"session": session}, frames[i % len(frames)])
            conn.request("POST", "/api/v1/live", body, {"Content-Type": kind})
            response = conn.getresponse()
            answer = json.loads(response.read())
            if response.status != 200:
                raise RuntimeError(f"{response.status}: {answer}")
            return answer

        for i in range(8):  # every worker loads the model (lazily) before the clock starts
            send(i)
        stop = time.perf_counter() + args.seconds
        began = time.perf_counter()
        i = 0
        while time.perf_counter() < stop:
            sent = time.perf_counter()
            try:
                answer = send(i)
                trips.append((time.perf_counter() - sent) * 1000)
                if answer["top"] is not None:
                    model_ms.append(answer["latency_ms"])
                    answered += 1
            except (OSError, RuntimeError):
                errors += 1
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            i += 1
            time.sleep(max(0.0, args.min_gap_ms / 1000 - (time.perf_counter() - sent)))
        elapsed = time.perf_counter() - began
    finally:
        server.terminate()
        server.wait(timeout=60)

    q = statistics.quantiles(trips, n=100) if len(trips) > 1 else [trips[0]] * 99
    print(
        f"model {meta.architecture} ({meta.kind}, {meta.image_size} px; backend {backend}), "
        f"{os.cpu_count()} cores, min gap {args.min_gap_ms:.0f} ms, {elapsed:.0f} s"
    )
    print(f"frames sent {len(trips)}, answered with a prediction {answered}, errors {errors}")
    print(
        f"frames/s {len(trips) / elapsed:.1f}; round trip ms p50 {q[49]:.1f} p95 {q[94]:.1f} p99 {q[98]:.1f}; "
        f"model on the server ms median {statistics.median(model_ms) if model_ms else float('nan'):.1f}"
    )


if __name__ == "__main__":
    main()
