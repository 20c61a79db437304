"""certlb's extension points, as zope interfaces.

Rules see requests through L{IRequestContext}, never through twisted.web, so
that a rule can be evaluated in a unit test without any network.  Fetches
(L{IFetch}), converters (L{IConverter}) and match methods (L{IMatcher}) are
compiled once, when the configuration is loaded, into plain callables;
conditions (L{ICondition}), request actions (L{IRequestAction}) and balancers
(L{IBalancer}) are objects built at load time and called per request.

Every built-in fetch, converter, match method, action, balancer and health
check provides these interfaces, and a plugin provides the same ones: an
object that provides L{twisted.plugin.IPlugin} and one of L{IFetch},
L{IConverter}, L{IMatcher}, L{IRequestActionType}, L{IBalancerType} or
L{IHealthCheckType}, found in a module of the C{certlb.plugins} package (see
L{certlb.plugins}), is usable by its name in a configuration.
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
    cache = Attribute(
        "A dict that lives as long as the connection: where the values of "
        "fetches whose scope is 'connection' are kept, keyed by the compiled "
        "fetch.  A plugin may keep its own per-connection values there under "
        "keys of its own (objects it owns, never strings another could pick)."
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
    reactor = Attribute(
        "The reactor the request is served by (IReactorTime, IReactorTCP...), "
        "for an action that asks another service; None when the request is "
        "only explained (certlb check --explain), where no action runs."
    )
    trace = Attribute(
        "None, or a function taking one line of text: when certlb explains "
        "its decisions (certlb check --explain, or a frontend logging at "
        "level debug), each rule says through it whether it matched and "
        "what it did.  Plugins may add lines; nothing of it reaches clients."
    )

    def add_header(name, value):  # type: ignore[no-untyped-def]
        """Add a header after the others: later rules, and the server, see it."""

    def remove_headers(*names):  # type: ignore[no-untyped-def]
        """Remove every header called one of C{names}, whatever its case."""


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
    scope = Attribute(
        "'request' when the value may change from one request to the next "
        "(a header, or a file read again), or 'connection' when it is fixed "
        "for a connection (a field of the client's certificate): certlb then "
        "computes it once per connection and keeps it in "
        "IConnectionInfo.cache."
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


class IMatcher(Interface):
    """An ACL match method, as C{-m beg} in C{acl api path -m beg /api/}."""

    name = Attribute("The name written after -m, e.g. 'beg'.")

    def compile(patterns, ignore_case):  # type: ignore[no-untyped-def]
        """Check the ACL's patterns; return a callable from a value to a bool.

        @param patterns: the patterns, as a tuple of str (maybe empty).
        @param ignore_case: whether C{-i} was given.
        @return: a callable taking a sample value (None when the fetch found
            nothing) and saying whether any pattern matches it.
        @raise ValueError: a pattern the method cannot read; the message
            names it.
        """


class IRequestAction(Interface):
    """What an C{http-request} rule (or C{reqadd}, or C{redirect}) does."""

    timeout = Attribute(
        "The seconds certlb waits for a Deferred returned by run before it "
        "cancels it and answers 504; None for an action that never returns "
        "one (certlb then waits at most 10 seconds)."
    )

    def run(context):  # type: ignore[no-untyped-def]
        """Act on the request C{context} (an L{IRequestContext}, whose
        C{add_header} and C{remove_headers} change what the server gets).

        @return: C{None} to go on with the request, or a
            L{certlb.rules.actions.LocalResponse} that answers it at once,
            without a server; or a Deferred that fires with one of these,
            for an action that asks another service first.  The request
            waits for it (no later rule runs before it fires).  When the
            Deferred fails, the request is answered 500; when it has not
            fired within C{timeout}, it is cancelled and the request is
            answered 504; when the client goes away, it is cancelled.  Both
            are logged with the rule's place in the configuration.  A
            failure never lets the request through.
        """


class IRequestActionType(Interface):
    """A kind of action, usable as C{http-request NAME ARGS [if|unless COND]}."""

    name = Attribute("The action's name in configurations, e.g. 'ask-authz'.")

    def build(args):  # type: ignore[no-untyped-def]
        """Read the words written after the name (up to C{if}/C{unless}).

        Called when the configuration is loaded, and when C{certlb check}
        checks it; a relative file name is resolved with
        L{certlb.rules.files.config_path}.

        @param args: the words, as a tuple of str.
        @return: an L{IRequestAction}.
        @raise ValueError: the arguments are wrong; the message says how.
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


class IBalancerType(Interface):
    """A balancing algorithm, usable as C{balance NAME [ARGS]} in a backend."""

    name = Attribute("The algorithm's name in configurations.")

    def build(args):  # type: ignore[no-untyped-def]
        """Read the words written after the name.

        @param args: the words, as a tuple of str.
        @return: an L{IBalancer}; one is built for each backend using it.
        @raise ValueError: the arguments are wrong; the message says how.
        """


class ICheckTarget(Interface):
    """The server a health check of a plugin checks."""

    name = Attribute("The server, as 'backend/server'.")
    host = Attribute("The address to check (the server's, or its 'addr').")
    port = Attribute("The port to check (the server's, or its 'port').")
    timeout = Attribute("The seconds the check may take in all.")
    reactor = Attribute("The reactor to connect and time with.")
    tls = Attribute(
        "None when the check is not to go over TLS; else the "
        "IOpenSSLClientConnectionCreator of the server's TLS settings "
        "(ca-file, crt, verify, check-sni), for wrapClientTLS."
    )


class IHealthCheckType(Interface):
    """A way to check servers, usable as C{option NAME [ARGS]} in a backend
    whose servers say C{check}."""

    name = Attribute("The option's name in configurations, e.g. 'redis-check'.")

    def build(args):  # type: ignore[no-untyped-def]
        """Read the words written after the name.

        @param args: the words, as a tuple of str.
        @return: a callable taking an L{ICheckTarget} and returning the
            L{IHealthCheck} of that server.
        @raise ValueError: the arguments are wrong; the message says how.
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
