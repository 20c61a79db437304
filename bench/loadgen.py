#!/usr/bin/env python3
"""The load generator in Python, for machines without Go: same flags, same JSON.

Threads and the ssl module: much slower than bench/loadgen (Go), so with it the
client, not the proxy, may be what limits the figures; bench/run says so in
its results.  Modes: keepalive, handshake, idle (see bench/loadgen/main.go).
"""

from __future__ import annotations

import argparse
import json
import socket
import ssl
import sys
import threading
import time


def duration(text: str) -> float:
    """Go's duration syntax, the part bench/run uses: 10s, 2.5s, 500ms."""
    if text.endswith("ms"):
        return float(text[:-2]) / 1000
    if text.endswith("s"):
        return float(text[:-1])
    return float(text)


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prefix_chars="-")
    p.add_argument("-addr", default="127.0.0.1:8443")
    p.add_argument("-cert", required=True)
    p.add_argument("-key", required=True)
    p.add_argument(
        "-mode", default="keepalive", choices=("keepalive", "handshake", "idle")
    )
    p.add_argument("-c", type=int, default=50)
    p.add_argument("-d", type=duration, default=10.0)
    p.add_argument("-warmup", type=duration, default=1.0)
    p.add_argument("-n", type=int, default=1000)
    p.add_argument("-hold", type=duration, default=120.0)
    p.add_argument("-path", default="/")
    p.add_argument("-tls12", action="store_true")
    return p.parse_args(argv)


class Errors:
    def __init__(self) -> None:
        self.count = 0
        self.first = ""
        self.lock = threading.Lock()

    def add(self, e: BaseException) -> None:
        with self.lock:
            self.count += 1
            if not self.first:
                self.first = f"{type(e).__name__}: {e}"


def read_response(f) -> None:
    status = f.readline()
    if not status.startswith(b"HTTP/1."):
        raise OSError(f"bad status line {status[:60]!r}")
    length, chunked = -1, False
    while True:
        line = f.readline()
        if not line:
            raise OSError("connection closed in the head")
        if line in (b"\r\n", b"\n"):
            break
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
    if chunked:
        while True:
            size = int(f.readline().split(b";")[0], 16)
            if size == 0:
                while f.readline() not in (b"\r\n", b"\n", b""):
                    pass
                break
            f.read(size + 2)
    elif length >= 0:
        f.read(length)
    else:
        raise OSError("response without length")
    if status[9:12] != b"200":
        raise OSError(f"status {status[9:12].decode()}")


def main(argv: list[str]) -> int:
    a = parse(argv)
    host, _, port = a.addr.rpartition(":")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.load_cert_chain(a.cert, a.key)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if a.tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2

    def dial() -> ssl.SSLSocket:
        raw = socket.create_connection((host, int(port)), timeout=10)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return ctx.wrap_socket(raw)  # a new session each time: no resumption

    def request_bytes(close: bool) -> bytes:
        head = (
            f"GET {a.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: certlb-bench\r\n"
        )
        return (head + ("Connection: close\r\n" if close else "") + "\r\n").encode()

    errors = Errors()
    if a.mode == "idle":
        return idle(a, dial, request_bytes(False), errors)
    start = time.monotonic() + a.warmup
    end = start + a.d
    samples: list[list[float]] = [[] for _ in range(a.c)]
    keep_alive = a.mode == "keepalive"

    def worker(i: int) -> None:
        req = request_bytes(not keep_alive)
        out = samples[i]
        conn = f = None
        while True:
            t0 = time.monotonic()
            if t0 >= end:
                break
            try:
                if conn is None:
                    conn = dial()
                    f = conn.makefile("rb")
                conn.sendall(req)
                read_response(f)
                if not keep_alive:
                    conn.close()
                    conn = None
            except (OSError, ValueError) as e:
                errors.add(e)
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.001)
                continue
            t1 = time.monotonic()
            if t0 >= start and t1 <= end:
                out.append(t1 - t0)
        if conn is not None:
            conn.close()

    threads = [
        threading.Thread(target=worker, args=(i,), daemon=True) for i in range(a.c)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = sorted(x for s in samples for x in s)
    n = len(every)
    print(
        json.dumps(
            {
                "mode": a.mode,
                "conns": a.c,
                "duration_s": a.d,
                "requests": n,
                "errors": errors.count,
                "per_second": n / a.d,
                "p50_ms": every[n * 50 // 100] * 1000 if n else 0,
                "p99_ms": every[n * 99 // 100] * 1000 if n else 0,
                "first_error": errors.first,
            }
        )
    )
    return 0


def idle(a: argparse.Namespace, dial, req: bytes, errors: Errors) -> int:
    held: list[ssl.SSLSocket] = []
    lock = threading.Lock()
    todo = iter(range(a.n))

    def opener() -> None:
        for _ in todo:  # the iterator is shared: each index is taken once
            try:
                conn = dial()
                conn.sendall(req)
                read_response(conn.makefile("rb"))
                conn.settimeout(None)
                with lock:
                    held.append(conn)
            except (OSError, ValueError) as e:
                errors.add(e)

    threads = [
        threading.Thread(target=opener, daemon=True) for _ in range(min(50, a.n))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = {
        "mode": "idle",
        "conns": a.n,
        "open": len(held),
        "errors": errors.count,
        "first_error": errors.first,
    }
    print(json.dumps(report), flush=True)
    waiter = threading.Thread(target=sys.stdin.read, daemon=True)
    waiter.start()
    waiter.join(a.hold)
    for conn in held:
        conn.close()
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
