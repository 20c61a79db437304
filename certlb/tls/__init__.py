"""TLS for certlb: PEM files, server contexts, and per-connection certificate state.

HTTP code reads a connection's certificate state through one accessor,
L{client_cert_state}, and knows nothing else of TLS.
"""

from certlb.tls.state import ClientCertState, VerifyError, client_cert_state

__all__ = ["ClientCertState", "VerifyError", "client_cert_state"]
