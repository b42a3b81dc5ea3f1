"""A tiny server for SDN integration tests, run inside a pod namespace.

HTTP on --http: every GET answers "<pod> <client ip>:<client port>\n" (who served, who it saw).
Echo on --echo: every line received on a TCP connection is sent back prefixed with the pod name,
for long-lived connections that must survive a controller restart.
"""
import argparse
import socketserver
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pod", required=True)
    parser.add_argument("--http", type=int, default=8080)
    parser.add_argument("--echo", type=int, default=9000)
    args = parser.parse_args()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def do_GET(self):
            body = f"{args.pod} {self.client_address[0]}:{self.client_address[1]}\n".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_):
            pass

    class Echo(socketserver.StreamRequestHandler):
        def handle(self):
            for line in self.rfile:
                self.wfile.write(args.pod.encode() + b" " + line)

    class EchoServer(socketserver.ThreadingTCPServer):
        daemon_threads = allow_reuse_address = True

    http = ThreadingHTTPServer(("0.0.0.0", args.http), Handler)
    http.daemon_threads = True
    echo = EchoServer(("0.0.0.0", args.echo), Echo)
    threading.Thread(target=echo.serve_forever, daemon=True).start()
    print("ready", flush=True)
    sys.stdout.close()
    http.serve_forever()


if __name__ == "__main__":
    main()
