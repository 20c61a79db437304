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
    path = Attribute("The target up to '?', e.g. '/a/b'.")
    query = Attribute("The part of the target after '?', or None without one.")
    version = Attribute("The HTTP version, e.g. 'HTTP/1.1'.")
    headers = Attribute(
        "The request headers: a sequence of (name, value) str pairs, in the "
        "order the client sent them, names as the client wrote them."
    )
    connection = Attribute("The IConnectionInfo of the connection.")


class IFetch(Interface):
    """A sample fetch: a value taken from a request or its connection."""

    name = Attribute("The name used in configurations, e.g. 'ssl_fc_has_crt'.")
    output = Attribute(
        "The type of the values: 'bool', 'int', 'str' or 'ip'.  It chooses the "
        "match method an ACL uses when none is given with -m."
    )

    def compile(args):  # type: ignore[no-untyped-def]
        """Check the arguments written in the configuration.

        @param args: the arguments, as a tuple of str (empty when none).
        @return: a callable taking an L{IRequestContext} and returning the
            value, or None when there is none for this request.
        @raise ValueError: the arguments are wrong; the message says how.
        """


class IConverter(Interface):
    """A converter: a function applied to a sample, as in C{hdr(host),lower}."""

    name = Attribute("The name used in configurations, e.g. 'lower'.")
    input = Attribute("The type of value it takes: 'bool', 'int', 'str' or 'ip'.")
    output = Attribute("The type of value it returns.")

    def compile(args):  # type: ignore[no-untyped-def]
        """Check the arguments; return a callable from a value to a value.

        @raise ValueError: the arguments are wrong; the message says how.
        """


class ICondition(Interface):
    """A compiled C{if}/C{unless} condition."""

    def matches(context):  # type: ignore[no-untyped-def]
        """Whether the rule guarded by this condition applies to C{context}."""


class IBalancer(Interface):
    """Chooses the server of a backend that gets the next request."""

    def pick(context):  # type: ignore[no-untyped-def]
        """The server for the request C{context}, or None when none is usable."""
