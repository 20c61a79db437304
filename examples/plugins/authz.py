"""An example asynchronous action: ask an HTTP authorisation service.

C{http-request ask-authz URL [timeout DURATION] [if|unless COND]} asks, for
each request it applies to, the service at C{URL} whether the client may go
on, by the subject of its certificate::

    global
        plugin-dir ../examples/plugins
    frontend ft
        bind 127.0.0.1:8443 ssl crt ./server.pem ca-file ./ca.pem verify required
        http-request ask-authz http://127.0.0.1:8081/authz timeout 2s

The question is C{GET URL?subject=DN} (C{&subject=DN} when C{URL} has a
query already), C{DN} the client certificate's subject as C{ssl_c_s_dn}
gives it (C{/O=certlb test PKI/CN=certlb client1 client}), URL-encoded: its
bytes as the certificate has them, each byte that is not a letter, a digit or
one of C{_.-~} written C{%XX}.  The answer:

  - 2xx: the request goes on (to the next rule, then to a server);
  - 401 or 403: certlb answers 403 (a denial, as C{http-request deny});
  - any other status, or no answer (the service is down, the connection
    breaks): the action fails, and certlb answers 500;
  - nothing within C{timeout} (default 2s; a duration as C{timeout server}
    takes, C{500ms}, C{2s}): certlb cancels the question (the connection to
    the service is closed) and answers 504.

Failures and timeouts are logged by certlb, with the rule's place in the
configuration.  No request goes through unless the service said so.  A client
without a certificate (or whose subject cannot be read) is answered 403
without asking.  Connections to the service are kept open and reused (one
pool per reactor), and closed when the reactor stops.

The action says nothing of verification: with C{verify optional} or
C{crt-ignore-err}, deny clients whose certificate failed it before
(C{http-request deny unless { ssl_c_verify 0 }}), or the service is asked
about subjects anybody can write in a certificate of their own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlsplit

import attrs
from twisted.internet.defer import Deferred, DeferredList, fail
from twisted.plugin import IPlugin
from twisted.python.failure import Failure
from twisted.web.client import (
    Agent,
    HTTPConnectionPool,
    PartialDownloadError,
    _HTTP11ClientFactory,
    readBody,
)
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IResponse
from zope.interface import implementer

from certlb.config.addresses import parse_duration
from certlb.rules.actions import LocalResponse
from certlb.rules.interfaces import IRequestAction, IRequestActionType, IRequestContext

__all__ = ["AskAuthz", "AskAuthzType", "AuthzError", "agent_for", "close_pools"]

DEFAULT_TIMEOUT = 2.0
DENIED = LocalResponse(403, denied=True)
_HEADERS = Headers({b"User-Agent": [b"certlb ask-authz"]})


class AuthzError(Exception):
    """The authorisation service answered neither yes nor no."""


class _QuietFactory(_HTTP11ClientFactory):
    """The pool's factory, without a log line for each connection (as
    Twisted's client howto shows)."""

    noisy = False


# One agent per reactor, its pool of persistent connections, and the ID of
# the trigger that closes them when that reactor stops.
_agents: dict[Any, tuple[IAgent, HTTPConnectionPool, Any]] = {}


def agent_for(reactor: Any) -> IAgent:
    """The L{Agent} on C{reactor}, whose connections are kept and reused."""
    found = _agents.get(reactor)
    if found is None:
        pool = HTTPConnectionPool(reactor, persistent=True)
        pool._factory = _QuietFactory
        trigger = None
        add_trigger = getattr(reactor, "addSystemEventTrigger", None)
        if add_trigger is not None:
            trigger = add_trigger("before", "shutdown", pool.closeCachedConnections)
        found = _agents[reactor] = (Agent(reactor, pool=pool), pool, trigger)
    return found[0]


def close_pools(reactor: Any = None) -> Deferred[Any]:
    """Close the connections kept open to authorisation services on
    C{reactor} (on every reactor by default), for a program or a test that
    stops certlb but not its reactor.

    @return: a Deferred that fires once they are closed.
    """
    closing = []
    for each in [reactor] if reactor is not None else list(_agents):
        found = _agents.pop(each, None)
        if found is None:
            continue
        _, pool, trigger = found
        if trigger is not None:
            each.removeSystemEventTrigger(trigger)
        closing.append(pool.closeCachedConnections())
    return DeferredList(closing)


@implementer(IRequestAction)
@attrs.frozen
class AskAuthz:
    """C{http-request ask-authz URL timeout DURATION}, built.

    @ivar url: the service's URL.
    @ivar timeout: the seconds certlb waits for the answer.
    @ivar agent_for: gives the L{IAgent} that asks, on a request's reactor.
    """

    url: str
    timeout: float = DEFAULT_TIMEOUT
    agent_for: Callable[[Any], IAgent] = agent_for

    def question(self, subject: str) -> bytes:
        """The URL asked about C{subject} (text as rules see it: Latin-1)."""
        try:
            raw = subject.encode("latin-1")
        except UnicodeEncodeError:
            raw = subject.encode("utf-8")
        separator = "&" if "?" in self.url else "?"
        return f"{self.url}{separator}subject={quote(raw, safe='')}".encode("ascii")

    def run(self, context: IRequestContext) -> Deferred[Any] | LocalResponse:
        tls = context.connection.tls
        peer = None if tls is None else tls.peer
        subject = None if peer is None else peer.subject.oneline
        if subject is None:
            if context.trace is not None:
                context.trace("ask-authz: no client certificate subject: 403")
            return DENIED
        if context.reactor is None:
            return fail(AuthzError("no reactor to ask the authorisation service with"))
        question = self.question(subject)
        if context.trace is not None:
            context.trace(f"ask-authz: GET {question.decode('ascii')}")
        asked = self.agent_for(context.reactor).request(b"GET", question, _HEADERS)
        return asked.addCallback(self._answered)

    def _answered(self, response: IResponse) -> Deferred[Any]:
        # Read the body, even when nobody wants it, so that the connection
        # can be used again; cancelling this cancels the reading.
        reading = readBody(response)
        reading.addErrback(_ended_without_length)
        return reading.addCallback(lambda _: self._decide(response))

    def _decide(self, response: IResponse) -> LocalResponse | None:
        if 200 <= response.code < 300:
            return None
        if response.code in (401, 403):
            return DENIED
        phrase = response.phrase.decode("latin-1")
        raise AuthzError(
            f"the authorisation service {self.url} answered {response.code} "
            f"{phrase}, neither 2xx (allowed) nor 401/403 (denied)"
        )


def _ended_without_length(failure: Failure) -> bytes:
    """A body without a length, ended by the server's closing: complete."""
    failure.trap(PartialDownloadError)
    return b""


@implementer(IPlugin, IRequestActionType)
@attrs.frozen
class AskAuthzType:
    """C{http-request ask-authz URL [timeout DURATION]} (see the module's
    docstring).

    @ivar agent_for: gives the L{IAgent} that asks, on a request's reactor.
    """

    name: str = "ask-authz"
    agent_for: Callable[[Any], IAgent] = agent_for

    def build(self, args: tuple[str, ...]) -> AskAuthz:
        usage = (
            f"write 'http-request {self.name} URL [timeout DURATION]', as in "
            f"'http-request {self.name} http://127.0.0.1:8081/authz timeout 2s'"
        )
        if not args:
            raise ValueError(
                f"'{self.name}' needs the URL of the authorisation service; {usage}"
            )
        url, rest = args[0], args[1:]
        try:
            url.encode("ascii")
            parts = urlsplit(url)
            host = parts.hostname
        except (UnicodeEncodeError, ValueError):
            host = None
        if host is None or parts.scheme not in ("http", "https") or parts.fragment:
            raise ValueError(
                f"{url!r} is not an http:// or https:// URL (in ASCII, without "
                f"#fragment); {usage}"
            )
        timeout = DEFAULT_TIMEOUT
        if rest:
            if len(rest) != 2 or rest[0] != "timeout":
                raise ValueError(f"unexpected {' '.join(rest)!r}; {usage}")
            timeout = parse_duration(rest[1]) / 1000
        return AskAuthz(url, timeout, self.agent_for)


authz = AskAuthzType()
