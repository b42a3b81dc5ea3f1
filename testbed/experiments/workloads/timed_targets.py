"""Time new connections to several targets, interleaved: the TCP connect alone, or a whole HTTP
request on a new connection.

    python3 -I -S timed_targets.py connect|http COUNT WARMUP NAME=HOST:PORT [NAME=HOST:PORT ...]

`connect`: SYN sent to connection established; the socket is then reset (SO_LINGER 0), so no
TIME_WAIT piles up. Each connect is a new connection through the Service data plane: its time
includes the rule or flow lookup of the first packet. `http`: connect, `GET /hostname.html`, the
whole answer (as curl's time_total).

Each round times every target once, in turn, so drift (other load on the machine) affects every
target alike. WARMUP rounds are discarded (ARP, route and conntrack caches). Prints
{"samples_us": {NAME: [...]}, "errors": {NAME: n}}. Standard library only: it runs in pods with
-I -S, so it cannot import the testbed.
"""
import json
import socket
import sys
import time


def connect_us(host, port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(2)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST on close
    started = time.perf_counter()
    try:
        sock.connect((host, port))
        return (time.perf_counter() - started) * 1e6
    finally:
        sock.close()


def request_us(host, port):
    started = time.perf_counter()
    with socket.create_connection((host, port), timeout=2) as sock:
        sock.sendall(f"GET /hostname.html HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        while sock.recv(65536):
            pass
    return (time.perf_counter() - started) * 1e6


MEASURES = {"connect": connect_us, "http": request_us}


def main():
    measure, count, warmup = MEASURES[sys.argv[1]], int(sys.argv[2]), int(sys.argv[3])
    targets = []
    for spec in sys.argv[4:]:
        name, address = spec.split("=", 1)
        host, port = address.rsplit(":", 1)
        targets.append((name, host, int(port)))
    samples = {name: [] for name, _, _ in targets}
    errors = {name: 0 for name, _, _ in targets}
    for round_ in range(warmup + count):
        for name, host, port in targets:
            try:
                value = measure(host, port)
            except OSError:
                errors[name] += 1
                continue
            if round_ >= warmup:
                samples[name].append(round(value, 1))
    print(json.dumps({"samples_us": samples, "errors": errors}))


if __name__ == "__main__":
    main()
