# certlb inside a Twisted application of your own, configured in Python.
#
#     twistd -ny examples/embed.tac
#
# One process runs three services side by side:
#   - a small twisted.web application on 127.0.0.1:18080 (plain HTTP), which
#     stands for yours;
#   - certlb on https://127.0.0.1:8443, in front of it: clients may present a
#     certificate (verify optional), whose verification result and CN go to
#     the application in headers;
#   - a timer that logs certlb's live state every 10 seconds: each server's
#     state and load, and each client connection with its certificate.
# The application's /status page shows the same state, read from Python.
#
# Certificates come from certlb's throw-away PKI, written to a temporary
# directory (or to $CERTLB_EMBED_PKI, where existing files are kept).  Ports:
# $CERTLB_EMBED_PORT (8443) and $CERTLB_EMBED_APP_PORT (18080), on loopback;
# the timer's period: $CERTLB_EMBED_REPORT seconds (0: no timer).  Try:
#
#     curl --cacert DIR/ca.crt --cert DIR/client1.crt --key DIR/client1.key \
#         https://127.0.0.1:8443/status
#
# (DIR is logged at start-up.)

import os
import shutil
import sys
import tempfile

from twisted.application import service, strports
from twisted.application.internet import TimerService
from twisted.internet import reactor
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import Site

try:
    import certlb  # noqa: F401
except ImportError:  # a source checkout, not installed: use it from here
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from certlb import Backend, Bind, Condition, Config, Frontend, Server, make_service
from certlb.config.model import Deny, HeaderRule
from certlb.pki import generate

log = Logger(namespace="embed")

HOST = "127.0.0.1"
PORT = int(os.environ.get("CERTLB_EMBED_PORT", "8443"))
APP_PORT = int(os.environ.get("CERTLB_EMBED_APP_PORT", "18080"))
REPORT = float(os.environ.get("CERTLB_EMBED_REPORT", "10"))


def certificates():
    """The directory of the demo PKI: $CERTLB_EMBED_PKI, or a temporary one
    removed at shutdown."""
    directory = os.environ.get("CERTLB_EMBED_PKI")
    if not directory:
        directory = tempfile.mkdtemp(prefix="certlb-embed-")
        reactor.addSystemEventTrigger(
            "after", "shutdown", shutil.rmtree, directory, True
        )
    if not os.path.exists(os.path.join(directory, "server.pem")):
        generate().write(directory)
    return directory


PKI = certificates()

# The configuration, as objects; the same as this text would be:
#
#   frontend www
#       bind 127.0.0.1:8443 ssl crt server.pem ca-file ca.pem verify optional \
#           crt-ignore-err all
#       http-request set-header X-Client-Verify %[ssl_c_verify]
#       http-request set-header X-Client-CN %[ssl_c_s_dn(CN)]
#       http-request deny if { ssl_c_used } !{ ssl_c_verify 0 }
#       default_backend app
#   backend app
#       server app1 127.0.0.1:18080 check
#
# 'crt-ignore-err all' lets a client whose certificate fails verification
# finish its handshake, so that a rule can answer it (with 403, here) and the
# live state shows its certificate.
# (Frontend, Backend, Server and Bind take these keywords as arguments; paths
# may be str or pathlib.Path; make_service checks it all as for a file.)
config = Config(
    frontends=[
        Frontend(
            "www",
            binds=[
                Bind(
                    HOST,
                    PORT,
                    ssl=True,
                    crt=os.path.join(PKI, "server.pem"),
                    ca_file=os.path.join(PKI, "ca.pem"),
                    verify="optional",
                    crt_ignore_err="all",
                )
            ],
            http_request=[
                HeaderRule("set-header", "X-Client-Verify", "%[ssl_c_verify]"),
                HeaderRule("set-header", "X-Client-CN", "%[ssl_c_s_dn(CN)]"),
                Deny(
                    condition=Condition.parse("if { ssl_c_used } !{ ssl_c_verify 0 }")
                ),
            ],
            default_backend="app",
        )
    ],
    backends=[
        Backend("app", servers=[Server("app1", HOST, APP_PORT, check=True)]),
    ],
)

lb = make_service(config, reactor)


def state_lines():
    """certlb's live state, one line per server and per client connection."""
    lines = []
    for backend in lb.backends.values():
        for server in backend.servers:
            monitor = server.monitor
            lines.append(
                f"server {server.label} {server.address}: "
                f"{'UP' if server.up else 'DOWN'}, {server.active} active"
                + ("" if monitor is None else f", health {monitor.health}")
            )
    for connection in lb.connections():
        tls = connection.tls
        if tls is None:
            what = "no TLS (yet)"
        elif tls.certificate is None:
            what = "no certificate"
        else:
            what = f"{tls.peer.subject.rfc2253}, ssl_c_verify {tls.verify}"
        host, port = connection.peer
        lines.append(f"client {host}:{port} on {connection.frontend}: {what}")
    return lines


def report():
    # A failing TimerService callback would stop the timer for good.
    try:
        for line in state_lines():
            log.info("{line}", line=line)
    except Exception:
        log.failure("cannot report certlb's state")


class Hello(Resource):
    """The application behind certlb: it greets the client by what certlb
    found of its certificate."""

    isLeaf = True

    def render_GET(self, request):
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        if request.path == b"/status":
            return ("\n".join(state_lines()) + "\n").encode()
        cn = request.getHeader(b"x-client-cn") or b""
        verify = request.getHeader(b"x-client-verify") or b""
        who = cn.decode("utf-8", "replace") or "anonymous"
        return f"hello {who} (ssl_c_verify={verify.decode()})\n".encode()


application = service.Application("certlb-embed")
app = strports.service(f"tcp:{APP_PORT}:interface={HOST}", Site(Hello()))
app.setServiceParent(application)
lb.setServiceParent(application)
if REPORT > 0:
    TimerService(REPORT, report).setServiceParent(application)

log.info(
    "certificates are in {pki}; try: curl --cacert {pki}/ca.crt "
    "--cert {pki}/client1.crt --key {pki}/client1.key https://{host}:{port}/status",
    pki=PKI,
    host=HOST,
    port=PORT,
)
