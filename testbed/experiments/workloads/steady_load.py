"""Steady short-connection load for SECONDS, logging every attempt with its wall-clock time.

    python3 -I -S steady_load.py HOST PORT SECONDS INTERVAL

One new connection (GET /hostname.html, HTTP/1.0, 1 s timeout) every INTERVAL seconds. Prints
{"attempts": [[unix_time, ok, pod_or_error], ...]}: the experiment lines these up with the moment it
deleted a pod (wall clock: the pod and the harness share the machine's clock).
"""
import json
import socket
import sys
import time


def attempt(host, port):
    with socket.create_connection((host, port), timeout=1) as sock:
        sock.sendall(f"GET /hostname.html HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        data = b""
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    status = data.split(b"\r\n", 1)[0]
    if b" 200 " not in status:
        raise ConnectionError(status.decode(errors="replace") or "empty answer")
    return data.split(b"\r\n\r\n", 1)[-1].decode(errors="replace").strip()


def main():
    host, port, seconds, interval = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
    attempts = []
    deadline = time.time() + seconds
    while time.time() < deadline:
        started = time.time()
        try:
            attempts.append([round(started, 4), 1, attempt(host, port)])
        except OSError as err:
            attempts.append([round(started, 4), 0, type(err).__name__])
        pause = interval - (time.time() - started)
        if pause > 0:
            time.sleep(pause)
    print(json.dumps({"attempts": attempts}))


if __name__ == "__main__":
    main()
