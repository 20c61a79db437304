"""HTTP/1.1 through the in-memory proxy: framing, headers, errors, timeouts."""

from __future__ import annotations

from twisted.internet.error import ConnectionLost, TimeoutError
from twisted.python.failure import Failure
from zope.interface import implementer

from certlb.rules.interfaces import IBalancer
from tests.proxy_harness import ProxyTestCase, head_and_body, header

ONE_BACKEND = """\
    frontend fe
        mode http
        bind :80
        timeout client 10s
        timeout http-request 5s
        timeout http-keep-alive 2s
        default_backend be
    backend be
        mode http
        timeout connect 3s
        timeout server 7s
        server s1 10.0.0.1:80
"""


class ForwardingTests(ProxyTestCase):
    config_text = ONE_BACKEND

    def test_hop_by_hop_request_headers_dropped(self) -> None:
        """Connection, Keep-Alive, TE, Upgrade, Proxy-Connection and the headers
        that Connection names are not forwarded to the server."""
        client = self.connect_client()
        client.send(
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Secret\r\n"
            b"Keep-Alive: 300\r\nTE: trailers\r\nProxy-Connection: x\r\n"
            b"X-Secret: s\r\nX-Kept: k\r\n\r\n"
        )
        sent = self.accept().received()
        lines, _ = head_and_body(sent)
        self.assertEqual(lines[1:], [b"Host: x", b"X-Kept: k"])

    def test_response_streamed_back_with_length(self) -> None:
        """A response with Content-Length reaches the client with it, in pieces
        as the server sends them."""
        client = self.connect_client()
        client.get()
        server = self.accept()
        server.respond(
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nX-Srv: a\r\n\r\n01234"
        )
        first = client.received()
        self.assertStatus(first, 200)
        self.assertEqual(header(first, b"content-length"), [b"10"])
        self.assertEqual(header(first, b"x-srv"), [b"a"])
        self.assertTrue(first.endswith(b"\r\n\r\n01234"))
        server.respond(b"56789")
        self.assertEqual(client.received(), b"56789")

    def test_hop_by_hop_response_headers_dropped(self) -> None:
        """The server's Connection and Keep-Alive headers stay between it and
        certlb; the client connection stays open."""
        client = self.connect_client()
        client.get()
        self.accept().respond(
            b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n"
            b"Keep-Alive: timeout=5\r\nContent-Length: 0\r\n\r\n"
        )
        response = client.received()
        self.assertEqual(header(response, b"connection"), [])
        self.assertEqual(header(response, b"keep-alive"), [])
        self.assertEqual(header(response, b"x-hop"), [])
        self.assertFalse(client.closed)

    def test_chunked_response_rechunked(self) -> None:
        """A chunked response reaches an HTTP/1.1 client chunked, ending with
        the last chunk."""
        client = self.connect_client()
        client.get()
        server = self.accept()
        server.respond(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        )
        response = client.received()
        self.assertEqual(header(response, b"transfer-encoding"), [b"chunked"])
        _, body = head_and_body(response)
        self.assertEqual(body, b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")

    def test_close_delimited_response_chunked_for_http11(self) -> None:
        """A response that ends with the server's connection reaches an
        HTTP/1.1 client chunked, so the client connection can stay open."""
        client = self.connect_client()
        client.get()
        server = self.accept()
        server.respond(b"HTTP/1.0 200 OK\r\n\r\nuntil close")
        server.close()
        response = client.received()
        self.assertEqual(header(response, b"transfer-encoding"), [b"chunked"])
        self.assertTrue(response.endswith(b"b\r\nuntil close\r\n0\r\n\r\n"))
        self.assertFalse(client.closed)

    def test_client_connection_close(self) -> None:
        """A client that says Connection: close gets it echoed, and certlb closes."""
        client = self.connect_client()
        client.get(headers=b"Connection: close\r\n")
        self.accept().respond(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        self.assertEqual(header(client.received(), b"connection"), [b"close"])
        self.assertTrue(client.closed)

    def test_head_response_has_no_body(self) -> None:
        """A HEAD response with Content-Length is complete after its headers,
        and its server connection serves the next request."""
        client = self.connect_client()
        client.send(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
        server = self.accept()
        server.received()
        server.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        response = client.received()
        self.assertEqual(header(response, b"content-length"), [b"1000"])
        self.assertEqual(head_and_body(response)[1], b"")
        client.get(b"/next")
        self.assertIn(b"GET /next ", server.received())
        self.assertEqual(self.pending_connections(), [])

    def test_connection_header_cannot_drop_content_length(self) -> None:
        """A client naming Content-Length in Connection cannot get its body
        sent unframed, where the server would read it as a second request."""
        client = self.connect_client()
        smuggled = b"GET /admin HTTP/1.1\r\nHost: internal\r\n\r\n"
        client.send(
            b"POST / HTTP/1.1\r\nHost: x\r\nConnection: content-length\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(smuggled), smuggled)
        )
        sent = self.accept().received()
        self.assertEqual(header(sent, b"content-length"), [b"%d" % len(smuggled)])

    def test_head_response_http10_not_pooled(self) -> None:
        """After a HEAD answered by an HTTP/1.0 server without keep-alive, the
        next request opens a new connection."""
        client = self.connect_client()
        client.send(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
        self.accept().respond(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\n")
        client.received()
        client.get(b"/next")
        self.assertEqual(len(self.pending_connections()), 1)


class ChannelForwardingTests(ProxyTestCase):
    """What certlb's own listeners do that twisted.web's Site does not:
    header order and case kept, HTTP/1.0 framing, 1xx relayed.
    """

    config_text = ONE_BACKEND

    def test_request_forwarded_with_headers_in_order(self) -> None:
        """The request line and the headers reach the server as sent, repeated
        headers and their order included, names as the client wrote them."""
        client = self.connect_client()
        client.send(
            b"GET /a/b?c=d HTTP/1.1\r\nHost: example\r\nX-Multi: 1\r\n"
            b"accept: */*\r\nX-Multi: 2\r\n\r\n"
        )
        server = self.accept()
        sent = server.received()
        lines, body = head_and_body(sent)
        self.assertEqual(
            lines,
            [
                b"GET /a/b?c=d HTTP/1.1",
                b"Host: example",
                b"X-Multi: 1",
                b"accept: */*",
                b"X-Multi: 2",
            ],
        )
        self.assertEqual(body, b"")

    def test_close_delimited_response_for_http10(self) -> None:
        """An HTTP/1.0 client gets a close-delimited response as is, and the
        connection is closed after it."""
        client = self.connect_client()
        client.send(b"GET / HTTP/1.0\r\n\r\n")
        server = self.accept()
        server.respond(b"HTTP/1.0 200 OK\r\n\r\nbody")
        server.close()
        response = client.received()
        self.assertEqual(header(response, b"connection"), [b"close"])
        self.assertTrue(response.endswith(b"\r\n\r\nbody"))
        self.assertTrue(client.closed)

    def test_http10_keep_alive(self) -> None:
        """An HTTP/1.0 client asking for keep-alive keeps its connection when the
        response has a length."""
        client = self.connect_client()
        client.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        self.accept().respond(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        response = client.received()
        self.assertEqual(header(response, b"connection"), [b"keep-alive"])
        self.assertFalse(client.closed)

    def test_informational_relayed(self) -> None:
        """A server's 100 Continue is relayed to the client before the response."""
        client = self.connect_client()
        client.send(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        server = self.accept()
        self.assertIn(b"Expect: 100-continue", server.received())
        server.respond(b"HTTP/1.1 100 Continue\r\n\r\n")
        self.assertEqual(client.received(), b"HTTP/1.1 100 Continue\r\n\r\n")
        client.send(b"ok")
        self.assertEqual(server.received(), b"ok")
        server.respond(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
        self.assertStatus(client.received(), 201)

    def test_response_transfer_codings_kept(self) -> None:
        """A response coded 'gzip, chunked' reaches the client with its gzip
        coding, chunked again by certlb."""
        client = self.connect_client()
        client.get()
        self.accept().respond(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
            b"2\r\nzz\r\n0\r\n\r\n"
        )
        response = client.received()
        self.assertEqual(header(response, b"transfer-encoding"), [b"gzip", b"chunked"])
        self.assertTrue(response.endswith(b"\r\n\r\n2\r\nzz\r\n0\r\n\r\n"))

    def test_response_coded_until_close(self) -> None:
        """A response coded gzip without chunked lasts until the server closes,
        and is then complete."""
        client = self.connect_client()
        client.get()
        server = self.accept()
        server.respond(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzz")
        server.close()
        response = client.received()
        self.assertTrue(response.endswith(b"2\r\nzz\r\n0\r\n\r\n"), response)
        self.assertFalse(client.transport.aborted)

    def test_response_of_one_read_written_once(self) -> None:
        """A response that comes in one read of the server goes to the client
        in one write (one TLS record, one packet)."""
        client = self.connect_client()
        writes: list[bytes] = []
        write = client.transport.write

        def counted(data: bytes) -> None:
            writes.append(data)
            write(data)

        client.transport.write = counted  # type: ignore[method-assign]
        client.get()
        server = self.accept()
        server.respond(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        self.assertEqual(len(writes), 1)  # the head is not held past the read
        server.respond(b"5\r\nhello\r\n0\r\n\r\n")
        self.assertEqual(writes[1], b"5\r\nhello\r\n0\r\n\r\n")
        client.get()  # on the same server connection, kept alive
        server.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        self.assertEqual(self.pending_connections(), [])
        self.assertEqual(len(writes), 3)
        self.assertTrue(writes[2].endswith(b"\r\n\r\nok"), writes[2])

    def test_http10_request_gets_host(self) -> None:
        """An HTTP/1.0 request without Host is sent on as HTTP/1.1 with the
        server's address as Host."""
        client = self.connect_client()
        client.send(b"GET / HTTP/1.0\r\n\r\n")
        self.assertEqual(header(self.accept().received(), b"host"), [b"10.0.0.1:80"])


class BodyTests(ProxyTestCase):
    config_text = ONE_BACKEND

    def test_client_backpressure_pauses_server(self) -> None:
        """When the client does not read the response, the server's connection
        is not read either."""
        client = self.connect_client()
        client.get()
        server = self.accept()
        server.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
        client.stop_reading()
        self.assertEqual(server.transport.producerState, "paused")
        client.start_reading()
        self.assertEqual(server.transport.producerState, "producing")


class ChannelBodyTests(ProxyTestCase):
    """Request bodies streamed as they arrive, with flow control both ways
    (twisted.web reads a whole body before a resource sees it).
    """

    config_text = ONE_BACKEND

    def test_length_body_streamed(self) -> None:
        """A request body with Content-Length reaches the server as it arrives."""
        client = self.connect_client()
        client.send(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123")
        server = self.accept()
        sent = server.received()
        self.assertIn(b"Content-Length: 10", sent)
        self.assertTrue(sent.endswith(b"\r\n\r\n0123"))
        client.send(b"456789")
        self.assertEqual(server.received(), b"456789")

    def test_chunked_body_rechunked(self) -> None:
        """A chunked request body reaches the server chunked, with its end."""
        client = self.connect_client()
        client.send(
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n"
        )
        server = self.accept()
        sent = server.received()
        self.assertIn(b"Transfer-Encoding: chunked", sent)
        self.assertTrue(sent.endswith(b"\r\n\r\n3\r\nabc\r\n"))
        client.send(b"0\r\n\r\n")
        self.assertEqual(server.received(), b"0\r\n\r\n")

    def test_reading_paused_until_server_connected(self) -> None:
        """While certlb connects to the server, it reads no more of the body."""
        client = self.connect_client()
        client.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab")
        self.assertEqual(client.transport.producerState, "paused")
        server = self.accept()
        self.assertEqual(client.transport.producerState, "producing")
        self.assertTrue(server.received().endswith(b"ab"))

    def test_server_backpressure_pauses_client(self) -> None:
        """When the server's connection cannot take more, the client is not read;
        it is read again when the server catches up."""
        client = self.connect_client()
        client.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
        server = self.accept()
        server.stop_reading()
        self.assertEqual(client.transport.producerState, "paused")
        server.start_reading()
        self.assertEqual(client.transport.producerState, "producing")

    def test_server_connection_reused_after_slow_client(self) -> None:
        """A response read whole while the client was not reading leaves its
        server connection reusable."""
        client = self.connect_client()
        client.get()
        server = self.accept()
        server.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n")
        client.stop_reading()
        server.respond(b"body")
        self.assertEqual(server.transport.producerState, "producing")
        client.get(b"/next")
        self.assertIn(b"GET /next ", server.received())
        self.assertEqual(self.pending_connections(), [])

    def test_early_response_closes_client(self) -> None:
        """A server that answers before the upload ends gets its answer through,
        and the client connection is closed after it (its request was not
        read to the end)."""
        client = self.connect_client()
        client.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab")
        server = self.accept()
        server.respond(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n")
        self.assertStatus(client.received(), 413)
        self.assertTrue(client.closed)

    def test_retry_forwards_body_that_arrived_meanwhile(self) -> None:
        """Body bytes that arrive while a request goes again after a stale
        pooled connection reach the new connection."""
        client, server = self.kept_alive()
        client.send(b"PUT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        server.close()
        client.send(b"5\r\nhello\r\n0\r\n\r\n")
        self.assertTrue(self.accept().received().endswith(b"5\r\nhello\r\n0\r\n\r\n"))

    def test_non_idempotent_not_retried(self) -> None:
        """A POST on a connection the server closed gets 502 rather than being
        sent twice."""
        client, server = self.kept_alive()
        client.send(b"POST / HTTP/1.1\r\nHost: x\r\n\r\n")
        server.close()
        self.assertStatus(client.received(), 502)
        self.assertEqual(self.pending_connections(), [])


class ChannelPipelineTests(ProxyTestCase):
    """Pipelined requests on certlb's own listeners."""

    config_text = ONE_BACKEND

    def test_pipelined_requests_answered_in_order(self) -> None:
        """Two requests sent at once are forwarded one after the other and
        answered in order."""
        client = self.connect_client()
        client.send(
            b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        server = self.accept()
        self.assertIn(b"GET /1 ", server.received())
        self.assertEqual(client.transport.producerState, "paused")
        server.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1")
        self.assertIn(b"GET /2 ", server.received())
        server.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2")
        responses = client.received()
        self.assertTrue(responses.index(b"\r\n\r\n1") < responses.index(b"\r\n\r\n2"))
        self.assertEqual(client.transport.producerState, "producing")

    def test_many_pipelined_errors(self) -> None:
        """A thousand pipelined requests that certlb answers itself get a
        thousand answers, in order, without exhausting the stack."""
        self.frontend.default.servers[0].disabled = True  # type: ignore[union-attr]
        client = self.connect_client()
        client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 1000)
        self.assertEqual(client.received().count(b"HTTP/1.1 503 "), 1000)

    def test_exception_routing_pipelined_request(self) -> None:
        """An exception while routing a pipelined request answers it with 500
        and goes on with the connection."""
        backend = self.frontend.default
        assert backend is not None
        real, calls = backend.balancer, []

        @implementer(IBalancer)
        class Flaky:
            def pick(self, context: object, servers: object = None) -> object:
                calls.append(1)
                if len(calls) == 2:
                    raise RuntimeError("plugin bug")
                return real.pick(context, servers)

        backend.balancer = Flaky()
        client = self.connect_client()
        client.send(
            b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        self.accept().respond(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        responses = client.received()
        self.assertIn(b"HTTP/1.1 200 OK", responses)
        self.assertIn(b"HTTP/1.1 500 Internal Server Error", responses)
        self.assertFalse(client.closed)


class ErrorTests(ProxyTestCase):
    config_text = ONE_BACKEND

    def fail_every_attempt(self, reason: Exception | None = None) -> None:
        """Fail the first connection and its 3 retries (HAProxy's default),
        each a turn-around of min(timeout connect, 1s) after the last."""
        for _ in range(3):
            self.refuse(reason)
            self.assertEqual(self.pending_connections(), [])
            self.reactor.advance(1)
            self.assertEqual(len(self.pending_connections()), 1)
        self.refuse(reason)

    def test_connection_refused_is_502(self) -> None:
        """A server that refuses the connection, and each of its retries,
        gives the client a 502."""
        client = self.connect_client()
        client.get()
        self.fail_every_attempt()
        response = client.received()
        self.assertStatus(response, 502)
        self.assertFalse(client.closed)

    def test_connect_timeout_is_502(self) -> None:
        """A server that does not accept within 'timeout connect', at each
        retry, gives a 502."""
        client = self.connect_client()
        client.get()
        self.assertEqual(self.reactor.tcpClients[0][3], 3.0)
        self.fail_every_attempt(TimeoutError())
        self.assertStatus(client.received(), 502)

    def test_server_timeout_is_504(self) -> None:
        """A server silent for 'timeout server' gives a 504, and its connection
        is dropped."""
        client = self.connect_client()
        client.get()
        server = self.accept()
        self.reactor.advance(6.9)
        self.assertEqual(client.received(), b"")
        self.reactor.advance(0.2)
        self.assertStatus(client.received(), 504)
        self.assertTrue(server.transport.disconnecting)

    def test_garbage_is_502(self) -> None:
        """A server that answers something other than HTTP gives a 502."""
        client = self.connect_client()
        client.get()
        self.accept().respond(b"SSH-2.0-OpenSSH\r\n")
        self.assertStatus(client.received(), 502)

    def test_huge_response_head_is_502(self) -> None:
        """A server whose response head is over 64 KiB gives a 502."""
        client = self.connect_client()
        client.get()
        server = self.accept()
        server.respond(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n")
        self.assertStatus(client.received(), 502)
        self.assertTrue(server.transport.disconnecting)

    def test_closed_without_response_is_502(self) -> None:
        """A server that closes without answering gives a 502."""
        client = self.connect_client()
        client.get()
        self.accept().close()
        self.assertStatus(client.received(), 502)

    def test_reset_mid_response_cuts_client(self) -> None:
        """A server that dies in the middle of a response never yields a
        response that looks complete: the client connection is aborted."""
        client = self.connect_client()
        client.get()
        server = self.accept()
        server.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234")
        server.protocol.connectionLost(Failure(ConnectionLost("reset")))
        self.assertTrue(client.transport.aborted)

    def test_reset_mid_chunked_response_cuts_client(self) -> None:
        """A chunked response cut short is not terminated with a last chunk."""
        client = self.connect_client()
        client.get()
        server = self.accept()
        server.respond(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
        )
        server.close()
        self.assertNotIn(b"0\r\n\r\n", client.received())
        self.assertTrue(client.transport.aborted)

    def test_stale_pooled_connection_retried(self) -> None:
        """A GET sent on a kept-alive connection that the server closed without
        answering is sent again on a new connection."""
        client = self.connect_client()
        client.get()
        server = self.accept()
        server.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        client.received()
        client.get(b"/again")
        self.assertIn(b"GET /again ", server.received())
        server.close()
        self.assertEqual(client.received(), b"")
        fresh = self.accept()
        self.assertIn(b"GET /again ", fresh.received())
        fresh.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        self.assertStatus(client.received(), 200)

    def test_stale_pooled_connection_not_retried_with_body(self) -> None:
        """A request whose body was already sent is not sent twice: 502."""
        client = self.connect_client()
        client.get()
        server = self.accept()
        server.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        client.received()
        client.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab")
        server.close()
        self.assertStatus(client.received(), 502)
        self.assertEqual(self.pending_connections(), [])

    def test_client_gone_drops_server_connection(self) -> None:
        """A client that disconnects mid-response has its server connection
        closed rather than reused."""
        client = self.connect_client()
        client.get()
        server = self.accept()
        server.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01")
        client.close()
        self.assertTrue(server.transport.disconnecting)

    def test_extra_bytes_after_response_not_next_response(self) -> None:
        """What a server sends after a complete response is not taken as the
        response to the client's next request."""
        client = self.connect_client()
        client.send(
            b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        self.accept().respond(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1"
            b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil"
        )
        self.assertNotIn(b"evil", client.received())
        self.assertEqual(len(self.pending_connections()), 1)

    def test_timeout_on_pooled_connection_not_retried(self) -> None:
        """A request that times out on a kept-alive connection gets 504; it is
        not sent to the server a second time."""
        client, _ = self.kept_alive()
        client.send(b"DELETE /item HTTP/1.1\r\nHost: x\r\n\r\n")
        self.reactor.advance(7.1)
        self.assertEqual(self.pending_connections(), [])
        self.assertStatus(client.received(), 504)

    def test_close_delimited_reset_not_complete(self) -> None:
        """A response delimited by the connection's end, cut by a reset, is not
        ended with a last chunk: the client sees it cut."""
        client = self.connect_client()
        client.get()
        server = self.accept()
        server.respond(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npartial")
        server.protocol.connectionLost(Failure(ConnectionLost("reset")))
        self.assertNotIn(b"0\r\n\r\n", client.received())
        self.assertTrue(client.transport.aborted)

    def test_exception_routing_is_500(self) -> None:
        """An exception in a rule or balancer answers 500, is logged, and the
        connection serves the next request."""
        backend = self.frontend.default
        assert backend is not None
        real = backend.balancer

        @implementer(IBalancer)
        class Broken:
            def pick(self, context: object, servers: object = None) -> object:
                raise RuntimeError("plugin bug")

        backend.balancer = Broken()
        client = self.connect_client()
        client.get()
        self.assertStatus(client.received(), 500)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        backend.balancer = real
        client.get()
        self.assertEqual(len(self.pending_connections()), 1)


class ChannelRequestTests(ProxyTestCase):
    """Requests that certlb's own parser refuses or handles specially."""

    config_text = ONE_BACKEND

    def test_malformed_request_is_400(self) -> None:
        """A request certlb cannot parse gets a 400, and the connection closes."""
        client = self.connect_client()
        client.send(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n")
        response = client.received()
        self.assertStatus(response, 400)
        self.assertEqual(header(response, b"connection"), [b"close"])
        self.assertTrue(client.closed)
        self.assertEqual(self.pending_connections(), [])

    def test_smuggling_attempt_is_400(self) -> None:
        """A request with both Content-Length and Transfer-Encoding is refused."""
        client = self.connect_client()
        client.send(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        )
        self.assertStatus(client.received(), 400)

    def test_huge_head_is_431(self) -> None:
        """A request head over 64 KiB gets a 431 and is not forwarded."""
        client = self.connect_client()
        client.send(
            b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n"
        )
        response = client.received()
        self.assertStatus(response, 431)
        self.assertTrue(client.closed)
        self.assertEqual(self.pending_connections(), [])

    def test_too_many_headers_is_431(self) -> None:
        """More than 100 header lines get a 431."""
        client = self.connect_client()
        client.send(b"GET / HTTP/1.1\r\n" + b"X-A: 1\r\n" * 101 + b"\r\n")
        self.assertStatus(client.received(), 431)

    def test_connect_is_405(self) -> None:
        """CONNECT is refused with 405: certlb does not tunnel."""
        client = self.connect_client()
        client.send(b"CONNECT example:443 HTTP/1.1\r\nHost: example:443\r\n\r\n")
        self.assertStatus(client.received(), 405)
        self.assertTrue(client.closed)

    def test_upgrade_not_performed(self) -> None:
        """A request asking to upgrade is forwarded as a plain request, without
        its Upgrade header, and the connection goes on in HTTP/1.1."""
        client = self.connect_client()
        client.send(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
            b"Upgrade: websocket\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        server = self.accept()
        sent = server.received()
        self.assertNotIn(b"Upgrade", sent)
        server.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        self.assertIn(b"GET /next ", server.received())

    def test_bad_chunk_while_server_paused(self) -> None:
        """A malformed chunk in a body being forwarded ends the exchange: the
        server connection is dropped and the client gets a 400."""
        client = self.connect_client()
        client.send(
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n"
        )
        server = self.accept()
        server.stop_reading()
        client.send(b"ZZ\r\n")
        self.assertTrue(server.transport.disconnecting)
        self.assertStatus(client.received(), 400)
        self.assertTrue(client.closed)

    def test_unterminated_header_is_431(self) -> None:
        """A header line that never ends is refused once over 64 KiB, instead
        of being buffered without limit."""
        client = self.connect_client()
        client.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ")
        for _ in range(4):
            client.send(b"a" * 65536)
        self.assertStatus(client.received(), 431)
        self.assertTrue(client.closed)

    def test_other_transfer_coding_is_501(self) -> None:
        """A request body coded 'gzip, chunked' is refused with 501 rather than
        forwarded as plain chunked."""
        client = self.connect_client()
        client.send(
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
            b"3\r\nabc\r\n0\r\n\r\n"
        )
        self.assertStatus(client.received(), 501)
        self.assertEqual(self.pending_connections(), [])

    def test_http10_chunked_closes(self) -> None:
        """An HTTP/1.0 request with Transfer-Encoding is answered, then its
        connection closed (RFC 9112, 6.1)."""
        client = self.connect_client()
        client.send(
            b"POST / HTTP/1.0\r\nConnection: keep-alive\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        )
        self.accept().respond(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        self.assertEqual(header(client.received(), b"connection"), [b"close"])
        self.assertTrue(client.closed)

    def test_many_upgrade_requests_in_one_read(self) -> None:
        """Hundreds of Upgrade requests in one read are handled in a loop, not
        by recursion."""
        self.frontend.default.servers[0].disabled = True  # type: ignore[union-attr]
        client = self.connect_client()
        client.send(
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: w\r\n\r\n"
            * 600
        )
        self.assertEqual(client.received().count(b"HTTP/1.1 503 "), 600)


class TimeoutTests(ProxyTestCase):
    config_text = ONE_BACKEND

    def test_idle_server_connection_closed(self) -> None:
        """An unused server connection in the pool is closed after 5 seconds."""
        client = self.connect_client()
        client.get()
        server = self.accept()
        server.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        self.reactor.advance(5.1)
        self.assertTrue(server.transport.disconnecting)


class ChannelTimeoutTests(ProxyTestCase):
    """Client-side timeouts of certlb's own listeners."""

    config_text = ONE_BACKEND

    def test_incomplete_headers_get_408(self) -> None:
        """A client that does not finish its headers within 'timeout
        http-request' gets a 408 and is disconnected."""
        client = self.connect_client()
        client.send(b"GET / HTTP/1.1\r\nHost")
        self.reactor.advance(4.9)
        self.assertEqual(client.received(), b"")
        self.reactor.advance(0.2)
        self.assertStatus(client.received(), 408)
        self.assertTrue(client.closed)

    def test_byte_by_byte_headers_get_408(self) -> None:
        """Sending headers a byte at a time does not extend 'timeout http-request'."""
        client = self.connect_client()
        for byte in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaa":
            client.send(bytes([byte]))
            self.reactor.advance(0.2)
        self.assertStatus(client.received(), 408)

    def test_silent_connection_closed_quietly(self) -> None:
        """A connection that sends nothing is closed without a response."""
        client = self.connect_client()
        self.reactor.advance(5.1)
        self.assertEqual(client.received(), b"")
        self.assertTrue(client.closed)

    def test_keep_alive_idle_closed(self) -> None:
        """An idle kept-alive connection is closed after 'timeout http-keep-alive'."""
        client = self.connect_client()
        client.get()
        self.accept().respond(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        self.reactor.advance(1.9)
        self.assertFalse(client.closed)
        self.reactor.advance(0.2)
        self.assertTrue(client.closed)

    def test_partial_pipelined_request_gets_408(self) -> None:
        """A request that begins behind another but never completes gets a 408
        once the first is answered and 'timeout http-request' has passed."""
        client = self.connect_client()
        client.send(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHo")
        self.accept().respond(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        self.assertStatus(client.received(), 200)
        self.reactor.advance(5.1)
        self.assertStatus(client.received(), 408)

    def test_slow_upload_times_out(self) -> None:
        """A client that stops sending its body for 'timeout client' is cut."""
        client = self.connect_client()
        client.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n1")
        self.accept()
        self.reactor.advance(9)
        client.send(b"2")
        self.reactor.advance(9)
        self.assertFalse(client.transport.aborted)
        self.reactor.advance(2)
        self.assertTrue(client.transport.aborted)

    def test_slow_reader_times_out(self) -> None:
        """A client that stops reading its response for 'timeout client' is cut."""
        client = self.connect_client()
        client.get()
        self.accept().respond(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
        client.stop_reading()
        self.reactor.advance(10.1)
        self.assertTrue(client.transport.aborted)

    def test_idle_timeout_after_own_answer(self) -> None:
        """After an answer certlb gives itself (503), an idle connection is
        closed after 'timeout http-keep-alive'."""
        self.frontend.default.servers[0].disabled = True  # type: ignore[union-attr]
        client = self.connect_client()
        client.get()
        self.assertStatus(client.received(), 503)
        self.reactor.advance(2.1)
        self.assertTrue(client.closed)

    def test_slow_reader_cut_after_response_complete(self) -> None:
        """A client that stopped reading is cut after 'timeout client' even
        once its response is read whole from the server."""
        client = self.connect_client()
        client.get(headers=b"Connection: close\r\n")
        server = self.accept()
        server.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n")
        client.stop_reading()
        server.respond(b"body")
        self.assertTrue(client.closed)
        self.reactor.advance(9.9)
        self.assertFalse(client.transport.aborted)
        self.reactor.advance(0.2)
        self.assertTrue(client.transport.aborted)

    def test_upload_timeout_survives_response_backpressure(self) -> None:
        """'timeout client' still guards an unfinished upload after the client
        paused and resumed reading an early response."""
        client = self.connect_client()
        client.send(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789"
        )
        self.accept().respond(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab")
        client.stop_reading()
        client.start_reading()
        self.reactor.advance(10.1)
        self.assertTrue(client.transport.aborted)


class ForwardForTests(ProxyTestCase):
    config_text = """\
        frontend fe
            mode http
            bind :80
            option forwardfor
            default_backend be
        backend be
            mode http
            server s1 10.0.0.1:80
        frontend other
            mode http
            bind :81
            option forwardfor except 192.0.2.0/24
            default_backend be
        frontend named
            mode http
            bind :82
            option forwardfor header X-Client if-none
            option http-server-close
            default_backend be
    """

    def test_added(self) -> None:
        """option forwardfor appends X-Forwarded-For with the client's address,
        after any the client sent."""
        client = self.connect_client()
        client.get(headers=b"X-Forwarded-For: 10.9.9.9\r\n")
        sent = self.accept().received()
        self.assertEqual(header(sent, b"x-forwarded-for"), [b"10.9.9.9", b"192.0.2.7"])

    def test_except(self) -> None:
        """'except NETWORK' adds nothing for clients inside the network."""
        self.frontend = self.frontends["other"]
        self.connect_client().get()
        self.assertEqual(header(self.accept().received(), b"x-forwarded-for"), [])

    def test_header_if_none_and_server_close(self) -> None:
        """'header NAME if-none' keeps a client's own header; http-server-close
        tells the server and closes its connection after the response, while
        the client keeps its own."""
        self.frontend = self.frontends["named"]
        client = self.connect_client()
        client.get(headers=b"X-Client: given\r\n")
        server = self.accept()
        sent = server.received()
        self.assertEqual(header(sent, b"x-client"), [b"given"])
        self.assertEqual(header(sent, b"connection"), [b"close"])
        server.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        self.assertTrue(server.transport.disconnecting)
        self.assertFalse(client.closed)
