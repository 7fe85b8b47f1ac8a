"""`digitlearn serve` under a load of drawings, as the page sends them, from kept-alive connections.

    python bench/serve_load.py [--run RUN_DIR] [--connections 16] [--requests 4000] [--seconds 30]
                               [--rounds 3] [--src SRC ...] [-- SERVE_OPTIONS]

Starts `digitlearn serve` as a subprocess on a free port of 127.0.0.1, and sends POST /api/predict
with JSON {"image": "data:image/png;base64,..."}: a 280x280 RGBA PNG of dark antialiased strokes on
white, as the page's canvas makes it. `--connections` clients each keep one connection alive and
send their next request when the answer to the last has arrived. A round ends after `--requests`
answers or `--seconds`, whichever comes first. The client is asyncio on raw sockets, to take as
little of the CPU from the server as it can: it reads the status line and Content-Length, and counts
an answer as an error unless it is a 200 with a label.

`--src` runs the same load against other checkouts' `src` folders too (a `git worktree` of an
earlier commit, say), taking turns round by round, so that each is measured beside the others.
Prints one JSON object: for each source, the median round (by requests/s) and every round's figures,
with the CPU seconds the server (and its worker processes) and this client took.
"""

import argparse
import asyncio
import base64
import io
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parents[1] / "src"


def drawing() -> bytes:
    """A 7 as the page's canvas draws it: #111 strokes, 20 px, round caps and joins, antialiased
    (drawn at 4 times the size, then reduced), on white, saved as an RGBA PNG like toDataURL."""
    scale = 4
    img = Image.new("RGBA", (280 * scale, 280 * scale), "white")
    pen = ImageDraw.Draw(img)
    points = [(70, 62), (205, 58), (170, 130), (120, 236)]
    points = [(x * scale, y * scale) for x, y in points]
    pen.line(points, fill="#111111", width=20 * scale, joint="curve")
    for x, y in (points[0], points[-1]):  # round caps
        r = 10 * scale
        pen.ellipse((x - r, y - r, x + r, y + r), fill="#111111")
    buf = io.BytesIO()
    img.resize((280, 280), Image.Resampling.BOX).save(buf, "PNG")
    return buf.getvalue()


def request_bytes(png: bytes) -> bytes:
    body = json.dumps({"image": "data:image/png;base64," + base64.b64encode(png).decode()}).encode()
    head = (
        "POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One HTTP/1.1 response: its status and body (Content-Length framing, as the server sends)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    match = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
    body = await reader.readexactly(int(match.group(1))) if match else b""
    return status, body


async def one_round(port: int, request: bytes, connections: int, requests: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    sent = 0
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal sent
        reader = writer = None
        while sent < requests and time.perf_counter() < deadline:
            sent += 1
            t0 = time.perf_counter()
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(request)
                status, body = await asyncio.wait_for(answer(reader), 30)
                ok = status == 200 and b'"label"' in body
                kind = None if ok else str(status)
            except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as e:
                kind, writer = type(e).__name__, None
            latencies.append(1000 * (time.perf_counter() - t0))
            if kind:
                errors[kind] = errors.get(kind, 0) + 1
        if writer is not None:
            writer.close()

    cpu0, start = time.process_time(), time.perf_counter()
    await asyncio.gather(*(client() for _ in range(connections)))
    wall = time.perf_counter() - start
    q = statistics.quantiles(latencies, n=100)
    return {
        "requests": len(latencies),
        "seconds": round(wall, 2),
        "requests_per_s": round(len(latencies) / wall, 1),
        "p50_ms": round(statistics.median(latencies), 1),
        "p99_ms": round(q[98], 1),
        "max_ms": round(max(latencies), 1),
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "client_cpu_s": round(time.process_time() - cpu0, 2),
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has taken."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    """The living processes a process started (the server's workers), and theirs."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children = [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
        for child in children:
            found += [child, *descendants(child)]
    return found


class Server:
    """`digitlearn serve` from the source folder `src`, on a free port of 127.0.0.1."""

    def __init__(self, src: Path, run: str | None, options: list[str]) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(src), os.environ.get("PYTHONPATH")])),
        }
        command = [sys.executable, "-m", "digitlearn", "serve", *([run] if run else [])]
        self.proc = subprocess.Popen(
            [*command, "--port", "0", *options], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
            text=True,
        )  # fmt: skip
        line = self.proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if not match:
            self.proc.kill()
            raise SystemExit(f"the server from {src} did not start: {line!r}")
        self.port = int(match.group(1))

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def measure(server: Server, request: bytes, args: argparse.Namespace) -> dict:
    asyncio.run(one_round(server.port, request, args.connections, 50, 10))  # warm-up
    pid, workers = server.proc.pid, descendants(server.proc.pid)
    before = [cpu_seconds(p) for p in (pid, *workers)]
    result = asyncio.run(one_round(server.port, request, args.connections, args.requests, args.seconds))
    after = [cpu_seconds(p) for p in (pid, *workers)]
    result["server_cpu_s"] = round(after[0] - before[0], 2)
    result["workers_cpu_s"] = round(sum(after[1:]) - sum(before[1:]), 2)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", help="a run folder (default: the model that ships with digitlearn)")
    ap.add_argument(
        "--connections", type=int, default=16, help="kept-alive connections, one request at a time each"
    )
    ap.add_argument("--requests", type=int, default=4000, help="answers in a round, at most")
    ap.add_argument("--seconds", type=float, default=30, help="a round's length, at most")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--src", type=Path, action="append", default=[], help="another checkout's src folder")
    ap.add_argument("serve_options", nargs="*", help="options for `digitlearn serve`, after --")
    args = ap.parse_args()
    args.requests, args.seconds = min(args.requests, 100_000), min(args.seconds, 60)  # bounded
    request = request_bytes(drawing())
    sources = [HERE, *args.src]
    servers = {src: Server(src, args.run, args.serve_options) for src in sources}
    rounds: dict[Path, list[dict]] = {src: [] for src in sources}
    try:
        for _ in range(args.rounds):
            for src, server in servers.items():  # in turns: a busy neighbour slows each alike
                rounds[src].append(measure(server, request, args))
    finally:
        for server in servers.values():
            server.close()
    result = {
        "connections": args.connections,
        "body_bytes": len(request),
        "serve_options": args.serve_options,
        "cap": {k: os.environ[k] for k in ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY") if k in os.environ},
        "sources": {
            str(src): {
                "median": sorted(runs, key=lambda r: r["requests_per_s"])[len(runs) // 2],
                "rounds": runs,
            }
            for src, runs in rounds.items()
        },
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
