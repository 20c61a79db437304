"""TLS straight on the socket: the transport of the connections certlb accepts.

Twisted's own TLS (C{twisted.protocols.tls.TLSMemoryBIOProtocol}) runs
OpenSSL over memory buffers and relays every byte through a second
transport: each read is a socket read, a copy into OpenSSL, a decryption and
a copy out, and each write the same the other way, with several Python calls
between.  Here OpenSSL reads and writes the connection's socket itself
(C{SSL_set_fd}), as HAProxy and nginx have it do: one call per read and per
write, no copies in Python.

A L{TLSServer} is a C{twisted.internet.tcp.Server} whose reads and writes go
through its OpenSSL connection; a L{TLSPort} accepts connections with it.
The protocol sees what it saw over Twisted's TLS: C{connectionMade} on
accepting, data once the handshake is over, C{connectionLost} with the
C{OpenSSL.SSL.Error} when the handshake fails (after the alert is sent), a
C{close_notify} before the socket is closed, and C{getHandle()} giving the
OpenSSL connection (which carries the certificate state).

Writes go out at once when nothing is queued before them, instead of on the
next reactor turn.

Only Twisted's reactors that watch file descriptors (epoll, kqueue, poll,
select) can run it; L{supported} tells, and certlb falls back to Twisted's
TLS elsewhere.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Any

from OpenSSL import SSL
from twisted.internet import abstract, main, tcp
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.posixbase import PosixReactorBase
from zope.interface import implementer

from certlb.sockets import send_at_once

# One TLS record holds at most 16 kB of plaintext; OpenSSL gives at most one
# record per read.
RECORD = 16384


def supported(reactor: object) -> bool:
    """Whether C{reactor} can run L{TLSPort} (one of Twisted's POSIX reactors)."""
    return isinstance(reactor, PosixReactorBase)


@implementer(ISSLTransport)
class TLSServer(tcp.Server):
    """One accepted TLS connection, its OpenSSL connection on the socket.

    @ivar tls: the OpenSSL connection, made by the port's connection creator.
    """

    _write_wants_read = False
    _read_wants_write = False
    _established = False  # the handshake is over
    _paused = False  # by the protocol (pauseProducing)
    _stash = b""  # read while paused, for resumeProducing

    def __init__(
        self,
        sock: socket.socket,
        protocol: Any,
        client: Any,
        server: TLSPort,
        sessionno: int,
        reactor: Any,
    ) -> None:
        self.tls: SSL.Connection = server.creator.serverConnectionForTLS(self, sock)
        self.tls.set_accept_state()
        super().__init__(sock, protocol, client, server, sessionno, reactor)

    def getHandle(self) -> SSL.Connection:  # type: ignore[override]
        """The OpenSSL connection (as Twisted's TLS transport gives it)."""
        return self.tls

    def getPeerCertificate(self) -> Any:
        return self.tls.get_peer_certificate()

    # -- reading -----------------------------------------------------------
    #
    # The handshake is driven by reads alone, as in Twisted's TLS: what the
    # protocol writes before it is over waits (OpenSSL fails a small write
    # retried while a large handshake message is half sent).  A read may
    # need to write (the handshake's answer, session tickets) and must then
    # be retried before anything else.  _read_wants_write: the last read
    # waits for room in the socket (the writer is registered, doWrite
    # retries the read).  _write_wants_read: writes wait for the handshake
    # (the reader is registered, even if the protocol paused, and what comes
    # meanwhile waits in _stash).

    def doRead(self) -> Any:
        tls = self.tls
        try:
            if not self._established:
                tls.do_handshake()
                self._established = True
                self._unblock_writes()
            data = tls.recv(RECORD)
            while tls.pending():
                data += tls.recv(RECORD)
        except SSL.WantReadError:
            if self._established:
                self._unblock_writes()
            return None
        except SSL.WantWriteError:
            self._read_wants_write = True
            abstract.FileDescriptor.stopReading(self)
            abstract.FileDescriptor.startWriting(self)
            return None
        except SSL.ZeroReturnError:
            return main.CONNECTION_DONE
        except SSL.SysCallError as e:
            # The peer went away (reset, or closed without a word): lost, not
            # a TLS failure.
            if e.args and e.args[0] in (-1, 0):
                return main.CONNECTION_DONE
            return main.CONNECTION_LOST
        except SSL.Error as e:
            if _unexpected_eof(e):
                return main.CONNECTION_DONE
            self._discard_unread()
            return e
        self._unblock_writes()
        if self.disconnecting:
            return None  # read only to let a write through: nobody wants it
        if self._paused or self._stash:
            self._stash += data
        else:
            self.protocol.dataReceived(data)
        return None

    def _unblock_writes(self) -> None:
        if self._write_wants_read:
            self._write_wants_read = False
            if self._paused or self.disconnecting:
                abstract.FileDescriptor.stopReading(self)
            if self.dataBuffer or self._tempDataBuffer or self.disconnecting:
                self.startWriting()

    def pauseProducing(self) -> None:
        self._paused = True
        if not self._write_wants_read:
            abstract.FileDescriptor.stopReading(self)

    def resumeProducing(self) -> None:
        self._paused = False
        if not self.connected or self.disconnecting:
            return
        if not self._read_wants_write:  # (else doWrite reads)
            abstract.FileDescriptor.startReading(self)
        if self._stash:
            self.reactor.callLater(0, self._deliver_stash)  # type: ignore[attr-defined]

    def _deliver_stash(self) -> None:
        if self._paused or not self.connected or self.disconnecting:
            return
        data, self._stash = self._stash, b""
        if data:
            self.protocol.dataReceived(data)

    def loseConnection(self) -> None:
        super().loseConnection()
        if self._write_wants_read and self.disconnecting:
            # What is queued waits for the handshake, which waits for the
            # peer: read on (dropping what comes) so that it can go.
            abstract.FileDescriptor.startReading(self)

    # -- writing -----------------------------------------------------------

    def write(self, data: bytes) -> None:
        if not (self._write_wants_read or self._read_wants_write):
            data = send_at_once(self, data)
        if data:
            super().write(data)

    def writeSequence(self, iovec: Any) -> None:
        self.write(b"".join(iovec))

    def startWriting(self) -> None:
        if not self._write_wants_read:
            super().startWriting()

    def doWrite(self) -> Any:
        if self._read_wants_write:
            self._read_wants_write = False
            if self._write_wants_read or not (self._paused or self.disconnecting):
                abstract.FileDescriptor.startReading(self)
            why = self.doRead()
            if why is not None or self._read_wants_write:
                return why  # (still waiting: the writer stays registered)
        return super().doWrite()

    def writeSomeData(self, data: Any) -> Any:
        if not data:
            return 0  # (OpenSSL takes a write of nothing for an error)
        if not self._established:
            return self._wait_for_handshake()
        try:
            return self.tls.send(data[: self.SEND_LIMIT])
        except SSL.WantWriteError:
            return 0
        except SSL.WantReadError:  # (renegotiation is off: not expected)
            return self._wait_for_handshake()
        except SSL.Error as e:
            self._discard_unread()
            return e

    def _wait_for_handshake(self) -> int:
        self._write_wants_read = True
        self.stopWriting()
        abstract.FileDescriptor.startReading(self)
        return 0

    def _postLoseConnection(self) -> Any:
        # Say goodbye in TLS (close_notify), without waiting for the peer's,
        # as HAProxy and nginx do; if the socket cannot take it whole, the
        # rest goes when it can (this is called again then).
        try:
            self.tls.shutdown()
        except SSL.WantWriteError:
            abstract.FileDescriptor.startWriting(self)
            return None
        except SSL.Error:
            pass
        self._discard_unread()
        return main.CONNECTION_DONE

    def _discard_unread(self) -> None:
        """Drop what the peer sent and nobody will read, before closing.

        A socket closed with unread data sends a reset, not a FIN, and the
        peer's system may then throw away what it had not yet read of ours:
        the alert that says why its handshake failed, or the last response.
        """
        with contextlib.suppress(OSError):
            for _ in range(16):
                if not self.socket.recv(65536):
                    return


def _unexpected_eof(error: SSL.Error) -> bool:
    """OpenSSL 3's report of a peer that closed without C{close_notify}."""
    errors = error.args[0] if error.args else ()
    return any(
        isinstance(e, tuple) and len(e) == 3 and "unexpected eof" in str(e[2])
        for e in errors
    )


class TLSPort(tcp.Port):
    """A listening TCP port whose connections are L{TLSServer}s.

    @ivar creator: makes each connection's OpenSSL connection:
        C{serverConnectionForTLS(transport, socket)}.
    """

    transport = TLSServer  # type: ignore[assignment]
    creator: Any

    @classmethod
    def listen(
        cls, reactor: Any, port: int, factory: Any, creator: Any, interface: str = ""
    ) -> TLSPort:
        """Listen on C{interface}:C{port} (as C{reactor.listenTCP})."""
        listening = cls(port, factory, 50, interface, reactor)
        listening.creator = creator
        listening.startListening()
        return listening

    @classmethod
    def adopt(
        cls, reactor: Any, fd: int, family: int, factory: Any, creator: Any
    ) -> TLSPort:
        """Listen on a socket opened elsewhere (as C{reactor.adoptStreamPort})."""
        listening = cls._fromListeningDescriptor(reactor, fd, family, factory)
        listening.creator = creator
        listening.startListening()
        return listening
