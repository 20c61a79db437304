"""certlb's extension points, as zope interfaces.

Rules see requests through L{IRequestContext}, never through twisted.web, so
that a rule can be evaluated in a unit test without any network.  Fetches
(L{IFetch}) and converters (L{IConverter}) are compiled once, when the
configuration is loaded, into plain callables; conditions (L{ICondition}) and
balancers (L{IBalancer}) are objects built at load time and called per request.
"""

from __future__ import annotations

from zope.interface import Attribute, Interface


class IConnectionInfo(Interface):
    """What a rule may know about the client connection a request came on."""

    source = Attribute("The client's address: a (host, port) tuple of str, int.")
    destination = Attribute(
        "The address the client connected to: a (host, port) tuple of str, int."
    )
    frontend = Attribute("The name of the frontend that accepted the connection.")
    tls = Attribute(
        "The connection's certlb.tls.state.ClientCertState, or None when the "
        "connection is not TLS."
    )


class IRequestContext(Interface):
    """One HTTP request, as rules see it.  Strings are decoded as Latin-1."""

    method = Attribute("The request method, e.g. 'GET'.")
    target = Attribute("The request target as sent, e.g. '/a/b?x=1'.")
    path = Attribute(
        "The target's path up to '?', e.g. '/a/b' (also for an absolute-form "
        "target, 'http://host/a/b'); None for '*'."
    )
    query = Attribute("The part of the target after '?', or None without one.")
    version = Attribute("The HTTP version, e.g. 'HTTP/1.1'.")
    headers = Attribute(
        "The request headers: a list of (name, value) str pairs, in the order "
        "the client sent them, names as the client wrote them; rules change "
        "it through add_header and remove_headers."
    )
    connection = Attribute("The IConnectionInfo of the connection.")
    record = Attribute(
        "What the access log says of the request so far, a "
        "certlb.rules.record.RequestRecord (dates, timers, status, bytes, "
        "server, termination state, counters), read by log-format aliases "
        "such as %ST and %Tr; None when the request is not being forwarded "
        "(a rule evaluated on its own)."
    )

    def add_header(name, value):  # type: ignore[no-untyped-def]
        """Add a header after the others: later rules, and the server, see it."""

    def remove_headers(name):  # type: ignore[no-untyped-def]
        """Remove every header called C{name}, whatever its case."""


class IFetch(Interface):
    """A sample fetch: a value taken from a request or its connection."""

    name = Attribute("The name used in configurations, e.g. 'ssl_fc_has_crt'.")
    output = Attribute(
        "The type of the values: 'bool', 'int', 'str', 'ip' or 'bin' (bytes).  "
        "It chooses the match method an ACL uses when none is given with -m."
    )
    multiple = Attribute(
        "True when the fetch may find several values in one request (as hdr "
        "finds every value of a header): its compiled callable then returns a "
        "sequence of values, empty when there is none.  An ACL tries every "
        "value; a sample expression (a log-format string) takes the last."
    )

    def compile(args):  # type: ignore[no-untyped-def]
        """Check the arguments written in the configuration.

        @param args: the arguments, as a tuple of str (empty when none).
        @return: a callable taking an L{IRequestContext} and returning the
            value, or None when there is none for this request (a sequence
            of values when C{multiple} is true).  It reads the request when
            called: headers may have changed since the configuration was
            loaded, or since an earlier rule ran.
        @raise ValueError: the arguments are wrong; the message says how.
        """


class IConverter(Interface):
    """A converter: a function applied to a sample, as in C{hdr(host),lower}."""

    name = Attribute("The name used in configurations, e.g. 'lower'.")
    input = Attribute(
        "The type of value it takes: 'bool', 'int', 'str', 'ip' or 'bin'.  A "
        "value of another type is cast first, as HAProxy casts it."
    )
    output = Attribute("The type of value it returns.")

    def compile(args):  # type: ignore[no-untyped-def]
        """Check the arguments; return a callable from a value to a value.

        The callable is never given None; it returns None when the value
        cannot be converted (the sample then has no value).

        @raise ValueError: the arguments are wrong; the message says how.
        """


class IRequestAction(Interface):
    """What an C{http-request} rule (or C{reqadd}, or C{redirect}) does."""

    def run(context):  # type: ignore[no-untyped-def]
        """Act on the request C{context} (an L{IRequestContext}, whose
        C{add_header} and C{remove_headers} change what the server gets).

        @return: C{None} to go on with the request, or a
            L{certlb.rules.actions.LocalResponse} that answers it at once,
            without a server.
        """


class ICondition(Interface):
    """A compiled C{if}/C{unless} condition."""

    def matches(context):  # type: ignore[no-untyped-def]
        """Whether the rule guarded by this condition applies to C{context}."""


class IBalancer(Interface):
    """Chooses the server of a backend that gets the next request."""

    def pick(context, servers):  # type: ignore[no-untyped-def]
        """The server for the request C{context} among C{servers}.

        @param servers: the servers the request may go to now, in the order
            of the configuration: usable (up, enabled, of some weight), of
            the tier that serves (the active servers, or the backups when no
            active one is usable), with a free slot under their C{maxconn}.
            Never empty.
        @return: one of C{servers}.
        """


class IHealthCheck(Interface):
    """One way of asking a server whether it is fit to serve (a TCP connect,
    an HTTP request...).  Run again and again by L{certlb.health}."""

    def run():  # type: ignore[no-untyped-def]
        """Check the server once.

        @return: a Deferred that fires with a few words on what passed (for
            the log, e.g. C{"HTTP status 200"}), or fails with
            L{certlb.health.checks.CheckFailed} saying what failed.  It must
            fire within the check's own time limit, and cancelling it must
            stop the check.
        """
