"""Sending at once on Twisted's socket transports.

Twisted's TCP transports never send from C{write}: they queue the bytes and
send them when the reactor next finds the socket writable, one more turn of
the event loop (and two changes of what it watches) per message.  A proxy
that answers each read with one write gains by sending at once when nothing
is queued before, as HAProxy and nginx do.
"""

from __future__ import annotations

from twisted.internet import abstract


def send_at_once(transport: abstract.FileDescriptor, data: bytes) -> bytes:
    """Send what the socket takes of C{data} now, if nothing is queued
    before it; return the rest, for C{transport.write}.

    An error is not reported here: the rest is then all of C{data}, and the
    transport meets the error again when it writes, and ends the connection
    as it always does.
    """
    if (
        not data
        or transport.dataBuffer
        or transport._tempDataBuffer
        or not transport.connected
        or transport.disconnecting
        or transport._writeDisconnected
        or getattr(transport, "_aborting", False)
    ):
        return data
    sent = transport.writeSomeData(data)
    if not isinstance(sent, int):
        return data
    return data[sent:]
