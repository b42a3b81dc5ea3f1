"""The default pod workload: an HTTP echo server like the one Kubernetes' Ingress conformance tests use.

Any path answers JSON with the pod's name, namespace, the request's path, host, method and headers
(and the addresses, which a Service study needs: who connected, to which address). `/hostname.html`
answers the pod name alone, as the `ikubernetes/myapp` image does. UDP ports echo each datagram back,
prefixed with the pod name.

Standalone on purpose (standard library only, started with `python3 -I -S`): it runs inside every pod,
so it must start fast and small.

    python3 echo_server.py --pod NAME --namespace NS --tcp 80 --tcp 8080 --udp 53
"""
import argparse
import json
import os
import socket
import socketserver
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class EchoHandler(BaseHTTPRequestHandler):
    server_version = "testbed-echo/1"
    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes; on a keep-alive connection Nagle's algorithm would hold
    # the body until the client's delayed ACK of the headers (~40 ms per request).
    disable_nagle_algorithm = True

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        pod = self.server.pod
        if self.path.split("?")[0] == "/hostname.html":
            body, content_type = (pod + "\n").encode(), "text/plain"
        else:
            local = self.connection.getsockname()
            body = json.dumps({
                "pod": pod, "namespace": self.server.namespace, "path": self.path,
                "host": self.headers.get("Host", ""), "method": self.command,
                "headers": {k: v for k, v in self.headers.items()},
                "podIP": local[0], "port": local[1],
                "client": f"{self.client_address[0]}:{self.client_address[1]}",
            }, indent=1).encode() + b"\n"
            content_type = "application/json"
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _answer

    def log_message(self, fmt, *args) -> None:
        sys.stdout.write("%s - %s\n" % (self.client_address[0], fmt % args))
        sys.stdout.flush()


class EchoHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512

    def __init__(self, port: int, pod: str, namespace: str):
        self.pod, self.namespace = pod, namespace
        super().__init__(("0.0.0.0", port), EchoHandler)


class UDPEcho(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        data, sock = self.request
        sock.sendto(self.server.pod.encode() + b": " + data, self.client_address)


class UDPEchoServer(socketserver.ThreadingUDPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, pod: str):
        self.pod = pod
        super().__init__(("0.0.0.0", port), UDPEcho)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pod", default=os.environ.get("POD_NAME") or socket.gethostname())
    parser.add_argument("--namespace", default=os.environ.get("POD_NAMESPACE", "default"))
    parser.add_argument("--tcp", type=int, action="append", default=[])
    parser.add_argument("--udp", type=int, action="append", default=[])
    args = parser.parse_args()
    servers = [EchoHTTPServer(p, args.pod, args.namespace) for p in args.tcp or ([] if args.udp else [80])]
    servers += [UDPEchoServer(p, args.pod) for p in args.udp]
    print(f"serving {args.namespace}/{args.pod} on tcp {args.tcp} udp {args.udp}", flush=True)
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main()
