#!/usr/bin/python3
"""A loopback HTTP server for the tests: serves DIR on 127.0.0.1, on a free
port that it writes to PORTFILE once it listens.

  httpd.py DIR PORTFILE

/flaky/NAME answers 503 on the first request for NAME, then serves DIR/NAME
(to exercise retries). /cut/NAME sends the headers for the whole of
DIR/NAME but only half of its bytes, then closes (a transfer cut short)."""
import functools
import http.server
import os
import sys

seen = set()


class Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path.startswith("/flaky/"):
            name = self.path[len("/flaky/"):]
            if name not in seen:
                seen.add(name)
                self.send_error(503)
                return
            self.path = "/" + name
        if self.path.startswith("/cut/"):
            with open(os.path.join(self.directory, self.path[len("/cut/"):]), "rb") as f:
                data = f.read()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()


def main():
    directory, portfile = sys.argv[1], sys.argv[2]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=directory))
    with open(portfile + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(portfile + ".tmp", portfile)
    server.serve_forever()


main()
