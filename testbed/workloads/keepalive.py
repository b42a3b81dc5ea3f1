"""Hold N HTTP keep-alive connections open for SECONDS, sending one request on each every INTERVAL;
print JSON: how many connections survived, and how many new connections succeeded meanwhile.

A connection is "lost" at its first failed request (no reconnect): this measures whether
established connections survive an event such as a controller restart.

    python3 -I -S keepalive.py HOST PORT N SECONDS INTERVAL [NEW]

NEW=0 turns off the side thread that opens a short new connection every 50 ms.
"""
import json
import socket
import sys
import threading
import time


def request(sock: socket.socket, host: str) -> str:
    sock.sendall(f"GET /hostname.html HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed")
        body += chunk
    return body.decode().strip()


def hold(host, port, seconds, interval, result):
    started = time.monotonic()
    try:
        sock = socket.create_connection((host, port), timeout=2)
        backend = request(sock, host)
    except OSError as err:
        result.update(opened=False, error=str(err))
        return
    result.update(opened=True, backend=backend, requests=1)
    while time.monotonic() - started < seconds:
        time.sleep(interval)
        try:
            if request(sock, host) != backend:
                raise ConnectionError("answered by another backend")
            result["requests"] += 1
        except OSError as err:
            result.update(lost_after=round(time.monotonic() - started, 3), error=str(err))
            break
    sock.close()


def new_connections(host, port, seconds, counts):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=2) as sock:
                request(sock, host)
            counts["ok"] += 1
        except OSError:
            counts["failed"] += 1
        time.sleep(0.05)


def main():
    host, port, n, seconds, interval = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
    probe_new = len(sys.argv) <= 6 or sys.argv[6] != "0"
    results = [{} for _ in range(n)]
    counts = {"ok": 0, "failed": 0}
    threads = [threading.Thread(target=hold, args=(host, port, seconds, interval, r)) for r in results]
    if probe_new:
        threads.append(threading.Thread(target=new_connections, args=(host, port, seconds, counts)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps({"connections": n, "opened": sum(1 for r in results if r.get("opened")),
                      "lost": sum(1 for r in results if r.get("opened") and "lost_after" in r),
                      "requests": sum(r.get("requests", 0) for r in results),
                      "new_ok": counts["ok"], "new_failed": counts["failed"], "details": results}))


if __name__ == "__main__":
    main()
