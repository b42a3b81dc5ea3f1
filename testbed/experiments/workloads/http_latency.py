"""HTTP request latency on a new connection each time (connect, GET, whole answer), interleaved.

    python3 -I -S http_latency.py COUNT WARMUP NAME=HOST:PORT [NAME=HOST:PORT ...]

Prints {"samples_us": {NAME: [...]}, "errors": {NAME: n}} (as curl's time_total per request).
"""
import json
import socket
import sys
import time


def request_us(host, port):
    started = time.perf_counter()
    with socket.create_connection((host, port), timeout=2) as sock:
        sock.sendall(f"GET /hostname.html HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        while sock.recv(65536):
            pass
    return (time.perf_counter() - started) * 1e6


def main():
    count, warmup = int(sys.argv[1]), int(sys.argv[2])
    targets = []
    for spec in sys.argv[3:]:
        name, address = spec.split("=", 1)
        host, port = address.rsplit(":", 1)
        targets.append((name, host, int(port)))
    samples = {name: [] for name, _, _ in targets}
    errors = {name: 0 for name, _, _ in targets}
    for round_ in range(warmup + count):
        for name, host, port in targets:
            try:
                value = request_us(host, port)
            except OSError:
                errors[name] += 1
                continue
            if round_ >= warmup:
                samples[name].append(round(value, 1))
    print(json.dumps({"samples_us": samples, "errors": errors}))


if __name__ == "__main__":
    main()
