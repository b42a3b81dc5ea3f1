"""Open as many short HTTP connections as possible to HOST:PORT for SECONDS; print JSON counts.

Runs inside a client pod (standard library only): one connection per request, so every request is a
new flow through the Service data plane (what a reactive SDN algorithm pays for).

    python3 -I -S conn_rate.py HOST PORT SECONDS [CONCURRENCY]
"""
import json
import socket
import sys
import threading
import time


def worker(host: str, port: int, deadline: float, counts: dict, lock: threading.Lock) -> None:
    request = f"GET /hostname.html HTTP/1.0\r\nHost: {host}\r\n\r\n".encode()
    ok = errors = 0
    backends: dict[str, int] = {}
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=2) as sock:
                sock.sendall(request)
                data = b""
                while True:
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            body = data.split(b"\r\n\r\n", 1)[-1].decode(errors="replace").strip()
            backends[body] = backends.get(body, 0) + 1
            ok += 1
        except OSError:
            errors += 1
    with lock:
        counts["ok"] += ok
        counts["errors"] += errors
        for name, n in backends.items():
            counts["backends"][name] = counts["backends"].get(name, 0) + n


def main() -> None:
    host, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    concurrency = int(sys.argv[4]) if len(sys.argv) > 4 else 4
    counts = {"ok": 0, "errors": 0, "backends": {}}
    lock = threading.Lock()
    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(host, port, started + seconds, counts, lock))
               for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counts["seconds"] = time.monotonic() - started
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
