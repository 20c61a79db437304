"""C{certlb demo}: a throw-away PKI, sample servers and certlb, in one process."""

from __future__ import annotations

import os
import shutil
import sys
from importlib.resources import files
from typing import Any, TextIO

from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from certlb.config import load_config
from certlb.pki import generate
from certlb.service import ListenError, make_service

DEMO_CONFIG = "demo.cfg"
SAMPLE_SERVERS = (
    ("app1", 18001), ("app2", 18002), ("public1", 18003), ("static1", 18004),
)  # fmt: skip


class EchoResource(Resource):
    """A sample server: answers any request with its name and what it received."""

    isLeaf = True

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def render(self, request: Request) -> bytes:
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        request.setHeader(b"x-served-by", self.name.encode())
        lines = [
            f"server {self.name}",
            f"{request.method.decode()} {request.uri.decode()} "
            f"{request.clientproto.decode()}",
        ]
        for name, values in request.requestHeaders.getAllRawHeaders():
            for value in values:
                lines.append(f"{name.decode()}: {value.decode('latin-1')}")
        return ("\n".join(lines) + "\n").encode()


def demo_config_text() -> str:
    """The text of the demo configuration (also etc/demo.cfg)."""
    return files("certlb").joinpath("data", DEMO_CONFIG).read_text(encoding="utf-8")


def prepare(directory: str) -> str:
    """Write the PKI and the demo configuration into C{directory}; return the
    configuration's path."""
    generate().write(directory)
    path = os.path.join(directory, DEMO_CONFIG)
    with open(path, "w", encoding="utf-8") as f:
        f.write(demo_config_text())
    return path


def instructions(directory: str) -> str:
    """The curl commands to try, each with the outcome to expect."""
    d = directory
    ca = f"--cacert {d}/ca.crt"

    def client(name: str) -> str:
        return f"--cert {d}/{name}.crt --key {d}/{name}.key"

    return f"""\
certlb demo is running; files are in {d}

Port 8443 lets every client in, and routes by what its certificate was
(add -i to see the redirects, -L to follow them):

  curl {ca} https://127.0.0.1:8443/
      -> 'server public1': no certificate, so the 'public' farm
  curl {ca} {client("client1")} https://127.0.0.1:8443/
      -> 'server app1' or 'server app2', in turn: a valid certificate
  curl {ca} {client("client3")} https://127.0.0.1:8443/
      -> the 'app' farm too: CA 2 is also in ca.pem
  curl -L {ca} {client("expired")} https://127.0.0.1:8443/
      -> redirected to /certexpired.html, served by 'static1' with
         X-Ssl-Error: 10 and X-Ssl-Error-Name: X509_V_ERR_CERT_HAS_EXPIRED
  curl -L {ca} {client("revoked")} https://127.0.0.1:8443/
      -> /certrevoked.html, with X-Ssl-Error: 23 (found in ca_crl.pem)
  curl -L {ca} {client("untrusted")} https://127.0.0.1:8443/
      -> /othererrors.html, with the error of an unknown CA

Port 8444 requires a valid certificate (verify required):

  curl {ca} https://127.0.0.1:8444/
      -> refused during the handshake (alert: certificate required)
  curl {ca} {client("expired")} https://127.0.0.1:8444/
      -> refused during the handshake (alert: certificate expired)
  curl {ca} {client("client2")} https://127.0.0.1:8444/
      -> the 'app' farm

  openssl s_client -connect 127.0.0.1:8443 -CAfile {d}/ca.crt \\
      -cert {d}/client1.crt -key {d}/client1.key
      -> shows the handshake; type 'GET / HTTP/1.1', 'Host: x' and an empty line

The configuration is {d}/{DEMO_CONFIG}.  Stop with Ctrl-C.
"""


def run(reactor: Any, directory: str, out: TextIO = sys.stdout) -> Deferred[None]:
    """Start the demo on C{reactor}: sample servers, then certlb.

    @return: a Deferred that never fires by itself (the demo runs until the
        reactor stops); the services are stopped at reactor shutdown.
    """
    config = load_config(prepare(directory))
    ports = []
    try:
        for name, port in SAMPLE_SERVERS:
            site = Site(EchoResource(name))
            ports.append(reactor.listenTCP(port, site, interface="127.0.0.1"))
        service = make_service(config, reactor)
        service.startService()
    except (CannotListenError, ListenError) as e:
        for opened in ports:
            opened.stopListening()
        if isinstance(e, CannotListenError):
            why = getattr(e.socketError, "strerror", None) or str(e.socketError)
            raise ListenError(
                f"sample server {name} cannot listen on 127.0.0.1:{port}: {why}"
            ) from None
        raise
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    for port in ports:
        reactor.addSystemEventTrigger("before", "shutdown", port.stopListening)
    out.write(instructions(directory))
    out.flush()
    return Deferred()


def default_directory() -> str:
    import tempfile

    return tempfile.mkdtemp(prefix="certlb-demo-")


def remove(directory: str) -> None:
    shutil.rmtree(directory, ignore_errors=True)
