"""Built-in sample fetches and converters, and the registries that name them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
from zope.interface import implementer

from certlb.rules.interfaces import IConverter, IFetch, IRequestContext

Value = Any
FetchFunction = Callable[[IRequestContext], Value]


def _no_args(name: str) -> Callable[[tuple[str, ...]], None]:
    def check(args: tuple[str, ...]) -> None:
        if args:
            raise ValueError(f"'{name}' takes no arguments, but was given {len(args)}")

    return check


@implementer(IFetch)
@attrs.frozen
class Fetch:
    """A fetch that takes no arguments: a name, a type and a function."""

    name: str
    output: str
    function: FetchFunction

    def compile(self, args: tuple[str, ...]) -> FetchFunction:
        _no_args(self.name)(args)
        return self.function


@implementer(IConverter)
@attrs.frozen
class Converter:
    """A converter that takes no arguments."""

    name: str
    input: str
    output: str
    function: Callable[[Value], Value]

    def compile(self, args: tuple[str, ...]) -> Callable[[Value], Value]:
        _no_args(self.name)(args)
        return self.function


def _has_crt(context: IRequestContext) -> bool | None:
    tls = context.connection.tls
    return None if tls is None else tls.has_crt


BUILTIN_FETCHES: tuple[IFetch, ...] = (
    Fetch("always_true", "bool", lambda context: True),
    Fetch("always_false", "bool", lambda context: False),
    Fetch("ssl_fc_has_crt", "bool", _has_crt),
)


BUILTIN_CONVERTERS: tuple[IConverter, ...] = (
    Converter("lower", "str", "str", str.lower),
    Converter("upper", "str", "str", str.upper),
)

FETCHES: dict[str, IFetch] = {f.name: f for f in BUILTIN_FETCHES}

# HAProxy's names that certlb knows but does not implement yet: using one is
# an error that says so, rather than "unknown".
FETCHES_LATER = frozenset(
    """
    ssl_c_used ssl_c_verify ssl_c_err ssl_c_ca_err ssl_c_ca_err_depth ssl_fc
    ssl_fc_sni ssl_fc_protocol ssl_fc_cipher ssl_fc_is_resumed ssl_c_s_dn
    ssl_c_i_dn ssl_c_serial ssl_c_sha1 ssl_c_der ssl_c_chain_der ssl_c_notbefore
    ssl_c_notafter ssl_c_version ssl_c_sig_alg ssl_c_key_alg ssl_c_san
    ssl_c_r_dn ssl_f_s_dn ssl_f_i_dn ssl_f_serial ssl_f_sha1 ssl_f_der
    ssl_f_notbefore ssl_f_notafter ssl_f_version ssl_f_sig_alg ssl_f_key_alg
    path path_beg path_end path_reg path_sub path_dir path_dom path_len url
    url_beg url_end url_reg url_sub url_param query method hdr hdr_beg hdr_end
    hdr_sub hdr_reg hdr_cnt hdr_val req.hdr req.hdr_cnt req.cook cook src
    src_port dst dst_port base base_beg base_sub req_ssl_sni http_auth nbsrv
    srv_is_up be_id fe_id
    """.split()
)
CONVERTERS: dict[str, IConverter] = {c.name: c for c in BUILTIN_CONVERTERS}
CONVERTERS_LATER = frozenset(
    """
    hex base64 x509_v_err_str add sub digest sha1 sha2 regsub url_enc field
    bytes map map_str map_beg map_sub map_reg map_ip json
    """.split()
)
