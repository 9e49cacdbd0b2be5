"""A real HTTP server on 127.0.0.1 with fault injection, for the image
pipeline tests.

    with FaultServer() as srv:
        srv.add("/img.tar.zst", data)                 # or path=... for big files
        srv.script("/img.tar.zst", [{"status": 500}, {"status": 500}])
        url = srv.url("/img.tar.zst")

Each request to a path consumes the next step of its script; when the script
is empty the file is served normally: Range (single "bytes=N-" or "N-M"),
If-Range against the ETag or Last-Modified, HEAD. Steps:

    {"status": 500}                       an error status (any code)
    {"status": 429, "retry_after": "2"}   with a Retry-After header
    {"drop_after": N}                     full Content-Length, N bytes, then close
    {"stall_after": N}                    N bytes, then nothing until the test ends
    {"truncate": N}                       N bytes, no Content-Length, clean close
    {"redirect": URL, "code": 302}        a redirect (to file://, ftp://, ...)
    {"ignore_range": True}                answer a Range request with 200 + all
    {"body": b"..."}                      a different body than the file
    {"endless": b"prefix"}                the prefix, then zeros forever, no Content-Length
    {"lie_length": N}                     Content-Length: N, then the whole file
    {"chunked_lie": N}                    Content-Length: N beside Transfer-Encoding:
                                          chunked, then the whole file in chunks
    {"trickle": (N, SECONDS)}             N bytes every SECONDS

Every request is recorded in srv.requests as (method, path, headers dict).
"""
import email.utils
import hashlib
import http.server
import os
import socket
import threading


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def do_HEAD(self):
        self._serve(head=True)

    def do_GET(self):
        self._serve(head=False)

    def _serve(self, head):
        srv = self.server.fault
        path = self.path.split("?", 1)[0]
        if path.startswith("http://"):  # asked as a proxy: serve our own files
            srv.proxied.append(path)
            path = "/" + path.split("/", 3)[3]
        with srv.lock:
            srv.requests.append((self.command, path, {k.lower(): v for k, v in self.headers.items()}))
            script = srv.scripts.get(path)
            step = script.pop(0) if script else {}
        if path in srv.redirects and not step:
            step = {"redirect": srv.redirects[path]}
        if "redirect" in step:
            self.send_response(step.get("code", 302))
            self.send_header("Location", step["redirect"])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if "status" in step:
            body = f"fault {step['status']}\n".encode()
            self.send_response(step["status"])
            if "retry_after" in step:
                self.send_header("Retry-After", str(step["retry_after"]))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)
            return
        if "endless" in step:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            zeros = bytes(1 << 16)
            try:
                self.wfile.write(step["endless"])
                while not srv.stop.is_set():
                    self.wfile.write(zeros)
            except (BrokenPipeError, ConnectionResetError):
                pass
            return
        entry = srv.files.get(path)
        if entry is None:
            self.send_error(404)
            return
        data = step.get("body", entry.get("data"))
        size = len(data) if data is not None else os.path.getsize(entry["path"])
        etag, lastmod = entry["etag"], entry["last_modified"]
        start, end, partial = 0, size - 1, False
        rng = self.headers.get("Range")
        if rng and not step.get("ignore_range") and srv.range_support:
            if_range = self.headers.get("If-Range")
            if if_range is None or if_range in (etag, lastmod):
                spec = rng.strip().removeprefix("bytes=")
                a, _, b = spec.partition("-")
                start = int(a)
                end = int(b) if b else size - 1
                partial = True
                if start >= size:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
        length = end - start + 1
        self.send_response(206 if partial else 200)
        if partial:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        if srv.range_support:
            self.send_header("Accept-Ranges", "bytes")
        if srv.validators:
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", lastmod)
        self.send_header("Content-Type", "application/octet-stream")
        if "chunked_lie" in step or "lie_length" in step:
            self.send_header("Content-Length", str(step.get("chunked_lie", step.get("lie_length"))))
            if "chunked_lie" in step:
                self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            body = data if data is not None else open(entry["path"], "rb").read()
            try:
                if "chunked_lie" in step:
                    for i in range(0, len(body), 4096):
                        c = body[i:i + 4096]
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(c), c))
                    self.wfile.write(b"0\r\n\r\n")
                else:
                    self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass
            return
        if "truncate" in step:
            self.send_header("Connection", "close")
            self.close_connection = True
            length = min(length, step["truncate"])
        else:
            self.send_header("Content-Length", str(length))
        self.end_headers()
        if head:
            return
        if "trickle" in step:
            n, pause = step["trickle"]
            body = data if data is not None else open(entry["path"], "rb").read()
            try:
                for i in range(start, start + length, n):
                    if srv.stop.is_set():
                        break
                    self.wfile.write(body[i:min(i + n, start + length)])
                    self.wfile.flush()
                    srv.stop.wait(pause)
            except (BrokenPipeError, ConnectionResetError):
                pass
            return
        limit = length
        if "drop_after" in step:
            limit = min(length, step["drop_after"])
        if "stall_after" in step:
            limit = min(length, step["stall_after"])
        self._send_range(entry, data, start, limit)
        if "stall_after" in step:
            srv.stop.wait()
        if "drop_after" in step or "stall_after" in step:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _send_range(self, entry, data, start, count):
        try:
            if data is not None:
                self.wfile.write(data[start:start + count])
                return
            with open(entry["path"], "rb") as f:
                f.seek(start)
                while count > 0:
                    chunk = f.read(min(count, 1 << 20))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    count -= len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass


class FaultServer:
    def __init__(self, range_support=True, validators=True, tls=None):
        """tls: (certfile, keyfile, client_ca) to serve https; with
        client_ca, a client certificate signed by it is required."""
        self.files = {}
        self.scripts = {}
        self.redirects = {}
        self.requests = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.range_support = range_support
        self.validators = validators
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.fault = self
        self.proxied = []
        self.scheme = "http"
        if tls:
            import ssl
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(tls[0], tls[1])
            if tls[2]:
                ctx.verify_mode = ssl.CERT_REQUIRED
                ctx.load_verify_locations(tls[2])
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
            self.scheme = "https"
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def url(self, path):
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def add(self, path, data=None, file=None):
        """Serve bytes `data` (or the file `file`) at `path`; returns its sha256."""
        if data is not None:
            digest = hashlib.sha256(data).hexdigest()
        else:
            h = hashlib.sha256()
            with open(file, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            digest = h.hexdigest()
        self.files[path] = {
            "data": data,
            "path": file,
            "etag": f'"{digest[:16]}"',
            "last_modified": email.utils.formatdate(1700000000, usegmt=True),
        }
        return digest

    def script(self, path, steps):
        with self.lock:
            self.scripts[path] = list(steps)

    def redirect(self, path, target):
        self.redirects[path] = target

    def gets(self, path):
        """The GET requests made for `path`, as header dicts."""
        with self.lock:
            return [h for m, p, h in self.requests if p == path and m == "GET"]


def main(argv):
    """`faultserver.py DIR`: serve the files of DIR (no faults) and print the
    port on stdout; for the C unit tests. Runs until stdin closes."""
    import sys
    with FaultServer() as srv:
        for name in os.listdir(argv[1]):
            srv.add("/" + name, file=os.path.join(argv[1], name))
        print(srv.port, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    import sys
    main(sys.argv)
