"""Time TCP connects (SYN sent to connection established) to several targets, interleaved.

    python3 -I -S connect_targets.py COUNT WARMUP NAME=HOST:PORT [NAME=HOST:PORT ...]

Each round connects once to every target in turn, so drift (other load on the machine) affects
every target alike. WARMUP rounds are discarded (ARP, route and conntrack caches). Prints
{"samples_us": {NAME: [...]}, "errors": {NAME: n}}. Each connect is a new connection through the
Service data plane: its time includes the rule or flow lookup of the first packet.
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
                value = connect_us(host, port)
            except OSError:
                errors[name] += 1
                continue
            if round_ >= warmup:
                samples[name].append(round(value, 1))
    print(json.dumps({"samples_us": samples, "errors": errors}))


if __name__ == "__main__":
    main()
