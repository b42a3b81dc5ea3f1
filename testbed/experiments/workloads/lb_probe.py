"""Which endpoint serves each new connection, optionally while other connections are held open.

    python3 -I -S lb_probe.py HOST PORT COUNT [HOLD]

First opens HOLD keep-alive connections (GET /hostname.html on each; they stay open), then makes
COUNT sequential short connections (one GET each, HTTP/1.0). Prints {"held": [pod, ...],
"served": [pod, ...], "errors": n}: the order of `served` is the order of the connections (for
round-robin strictness), `held` tells where the held ones landed (for least-connection checks).
"""
import json
import socket
import sys


def get(sock, host, keep_alive):
    version = "1.1" if keep_alive else "1.0"
    sock.sendall(f"GET /hostname.html HTTP/{version}\r\nHost: {host}\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")),
                  None)
    while length is None or len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            break
        body += chunk
    return body.decode(errors="replace").strip()


def main():
    host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    hold = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    held, held_sockets, served, errors = [], [], [], 0
    for _ in range(hold):
        sock = socket.create_connection((host, port), timeout=2)
        held.append(get(sock, host, True))
        held_sockets.append(sock)
    for _ in range(count):
        try:
            with socket.create_connection((host, port), timeout=2) as sock:
                served.append(get(sock, host, False))
        except OSError:
            errors += 1
    for sock in held_sockets:
        sock.close()
    print(json.dumps({"held": held, "served": served, "errors": errors}))


if __name__ == "__main__":
    main()
