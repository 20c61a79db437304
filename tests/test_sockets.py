"""send_at_once: writes that go out at once when nothing is queued before."""

from __future__ import annotations

from twisted.internet import abstract, main
from twisted.internet.testing import MemoryReactor
from twisted.trial.unittest import SynchronousTestCase

from certlb.sockets import send_at_once


class _Socket(abstract.FileDescriptor):
    """A transport whose socket takes at most C{room} bytes per send."""

    def __init__(self, room: int = 1000, broken: bool = False) -> None:
        super().__init__(reactor=MemoryReactor())
        self.connected = True
        self.room = room
        self.broken = broken
        self.sent: list[bytes] = []

    def writeSomeData(self, data: bytes) -> int | Exception:
        if self.broken:
            return main.CONNECTION_LOST
        taken = bytes(data[: self.room])
        self.sent.append(taken)
        return len(taken)


class SendAtOnceTests(SynchronousTestCase):
    def test_sent_whole(self) -> None:
        """With nothing queued, the bytes are sent at once: nothing is left."""
        socket = _Socket()
        self.assertEqual(send_at_once(socket, b"GET / HTTP/1.1\r\n\r\n"), b"")
        self.assertEqual(socket.sent, [b"GET / HTTP/1.1\r\n\r\n"])

    def test_rest_returned(self) -> None:
        """What the socket does not take is returned, to be queued."""
        socket = _Socket(room=4)
        self.assertEqual(send_at_once(socket, b"abcdefgh"), b"efgh")

    def test_behind_queued_bytes(self) -> None:
        """Bytes queued before keep their place: nothing is sent."""
        socket = _Socket()
        socket.write(b"first")
        self.assertEqual(send_at_once(socket, b"second"), b"second")
        self.assertEqual(socket.sent, [])

    def test_error_left_to_the_transport(self) -> None:
        """A failed send leaves all the bytes, for the transport to meet the
        error again and end the connection."""
        socket = _Socket(broken=True)
        self.assertEqual(send_at_once(socket, b"data"), b"data")

    def test_closing_or_closed(self) -> None:
        """Nothing is sent on a connection that is closing or closed."""
        closing, closed = _Socket(), _Socket()
        closing.disconnecting = True
        closed.connected = False
        for socket in (closing, closed):
            self.assertEqual(send_at_once(socket, b"data"), b"data")
            self.assertEqual(socket.sent, [])
