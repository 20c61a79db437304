"""A TLS server with no HTTP logic: certlb's TLS on one core, and nothing else.

bench/run measures its handshake rate to tell how much of certlb's gap to
HAProxy comes from the OpenSSL and the Python underneath, rather than from
certlb: it makes each bind's OpenSSL context as certlb does (certlb's
ServerTLS, verify optional, the client certificate recorded), runs OpenSSL
on the socket as certlb does (certlb.tls.transport), and answers every
request head with one fixed response, then closes.

    python bench/bare_tls.py PORT CRT CA_FILE
"""

from __future__ import annotations

import sys

from twisted.internet import epollreactor

epollreactor.install()

from twisted.internet import reactor  # noqa: E402
from twisted.internet.protocol import Factory, Protocol  # noqa: E402

from certlb.tls.server import ServerTLS  # noqa: E402
from certlb.tls.transport import TLSPort  # noqa: E402

HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nConnection: close\r\n\r\n"
RESPONSE = HEAD + b"certlb bench\n"


class Answer(Protocol):
    def __init__(self) -> None:
        self.received = b""

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if b"\r\n\r\n" in self.received:
            self.transport.write(RESPONSE)  # type: ignore[union-attr]
            self.transport.loseConnection()  # type: ignore[union-attr]


def main(port: str, crt: str, ca_file: str) -> None:
    tls = ServerTLS.for_bind(crt, ca_file, "optional", "bare")
    TLSPort.listen(reactor, int(port), Factory.forProtocol(Answer), tls, "127.0.0.1")
    reactor.run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main(*sys.argv[1:])
