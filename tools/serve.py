#!/usr/bin/env python3
"""Serves a static folder on 127.0.0.1 with cross-origin isolation.

    python3 tools/serve.py [PORT] [--dir build/site]

Every response carries Cross-Origin-Opener-Policy: same-origin and
Cross-Origin-Embedder-Policy: require-corp, which makes the page
crossOriginIsolated: SharedArrayBuffer and so the threaded wasm module
(flawlens-core-mt) are available. Hosts that cannot set headers get the same
from web/coi-sw.js. .wasm and .mjs get the MIME types browsers require.
"""
import argparse
import functools
import http.server
import sys


class IsolatedHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".wasm": "application/wasm",
        ".mjs": "text/javascript",
        ".js": "text/javascript",
        ".json": "application/json",
        ".safetensors": "application/octet-stream",
    }

    def end_headers(self):
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", nargs="?", type=int, default=8080)
    parser.add_argument("--dir", default=".", help="folder to serve (default: current)")
    parser.add_argument("--quiet", action="store_true", help="no request log")
    args = parser.parse_args()
    if not 0 <= args.port <= 65535:
        parser.error(f"port {args.port} is out of range")
    handler = functools.partial(IsolatedHandler, directory=args.dir)
    if args.quiet:
        handler.func.log_message = lambda *a: None
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), handler)
    except OSError as e:
        sys.exit(f"serve.py: cannot listen on 127.0.0.1:{args.port}: {e.strerror}")
    host, port = server.server_address[:2]
    print(f"serving {args.dir} on http://{host}:{port}/ (cross-origin isolated)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
