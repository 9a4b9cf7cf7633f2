"""A local mirror for download tests: HTTP on 127.0.0.1 only, one URL prefix per way a mirror fails.

    with MirrorServer({"t10k-labels-idx1-ubyte.gz": data}) as server:
        server.url("503")  # -> "http://127.0.0.1:<port>/503/", which answers 503 for every file

Prefixes: ``good`` serves the file; ``403``, ``404``, ``503`` answer with that status;
``html`` answers 200 with an HTML error page; ``truncated`` announces the full length
but sends half and hangs up; ``wrong`` sends the right length with one byte changed.
:func:`refused_url` is a base URL where nothing listens.
"""

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BEHAVIOURS = ("good", "403", "404", "503", "html", "truncated", "wrong")
HTML_PAGE = b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>Please log in.</body></html>\n"


class MirrorServer:
    """Serves ``files`` (``{name: bytes}``) under every prefix of :data:`BEHAVIOURS`.

    ``requests`` lists the paths asked for, in order, so tests can see which mirrors were hit.
    """

    def __init__(self, files):
        self.files = dict(files)
        self.requests = []
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                mirror._answer(self)

            def log_message(self, *args):
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def url(self, behaviour):
        """Base URL of one misbehaving (or ``good``) mirror, with a trailing slash."""
        assert behaviour in BEHAVIOURS, behaviour
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/{behaviour}/"

    def _answer(self, handler):
        self.requests.append(handler.path)
        _, behaviour, name = (handler.path.split("/", 2) + ["", ""])[:3]
        body = self.files.get(name)
        if behaviour not in BEHAVIOURS or body is None or behaviour == "404":
            return handler.send_error(404)
        if behaviour in ("403", "503"):
            return handler.send_error(int(behaviour))
        if behaviour == "html":
            body = HTML_PAGE
        if behaviour == "wrong":
            body = body[:-1] + bytes([body[-1] ^ 0xFF])
        handler.send_response(200)
        handler.send_header("Content-Type", "text/html" if behaviour == "html" else "application/octet-stream")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body[:len(body) // 2] if behaviour == "truncated" else body)
        handler.close_connection = True


def refused_url():
    """A base URL on a 127.0.0.1 port that was free a moment ago: connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"
