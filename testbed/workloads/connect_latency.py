"""Time TCP connects (SYN to established) to HOST:PORT, one at a time; print JSON samples in µs.

Runs inside a pod (standard library only, -I -S): each connect is a new connection through the
Service data plane, so its time includes the rule or flow lookup of the first packet.

    python3 -I -S connect_latency.py HOST PORT COUNT [PAUSE_SECONDS]
"""
import json
import socket
import sys
import time


def main() -> int:
    host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    pause = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
    samples, errors = [], 0
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(2)
        started = time.perf_counter()
        try:
            sock.connect((host, port))
            samples.append(round((time.perf_counter() - started) * 1e6, 1))
        except OSError:
            errors += 1
        finally:
            sock.close()
        if pause:
            time.sleep(pause)
    print(json.dumps({"host": host, "port": port, "samples_us": samples, "errors": errors}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
