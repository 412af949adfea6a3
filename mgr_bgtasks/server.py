"""CherryPy inside ceph-mgr: starting, stopping and rebinding the module's web server,
and turning CherryPy requests into `rest.Request`s.

Each mgr module has its own interpreter and so its own CherryPy; we follow the
prometheus module's way of running it.
"""
import json
import logging
import os
import shutil
import re
import socket
import tempfile
import traceback
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import parse_qs

import cherrypy
from cherrypy.process.wspbus import ChannelFailures

from .rest import BODY_TOO_LARGE, COOKIE, MAX_BODY, Request, Response
from .tls import write_pair

log = logging.getLogger(__name__)


def _no_exit(status: int) -> None:
    pass


# CherryPy calls os._exit when a start listener fails, which would kill the whole mgr.
setattr(os, '_exit', _no_exit)


# Refused bodies up to this size are read to their end before the answer.
DRAIN_BYTES = 1 << 20
Environ = Dict[str, Any]
StartResponse = Callable[[str, List[Tuple[str, str]]], Any]


class _App:
    """A bare WSGI application on CherryPy's server: CherryPy's own request machinery
    (tools, hooks, dispatch) would cost more per request than our whole handler, and the
    mgr's one GIL makes every step of it felt."""

    def __init__(self, handle: Callable[[Request], Response]) -> None:
        self._handle = handle

    def __call__(self, environ: Environ, start_response: StartResponse) -> List[bytes]:
        try:
            status, headers, body = self._respond(environ)
        except Exception:
            # A bug of ours in the adapter: the traceback goes to the mgr log only.
            log.error('request failed:\n%s', traceback.format_exc())
            status, headers, body = 500, [('Connection', 'close')], json.dumps(
                {'detail': 'internal error; see the mgr log'}).encode()
            headers.append(('Content-Type', 'application/json'))
        headers.append(('Content-Length', str(len(body))))
        start_response(f'{status} {_reason(status)}', headers)
        return [body]

    def _respond(self, environ: Environ) -> Tuple[int, List[Tuple[str, str]], bytes]:
        method = environ['REQUEST_METHOD']
        ctype = environ.get('CONTENT_TYPE', '').split(';')[0].strip().lower()
        try:
            length = int(environ.get('CONTENT_LENGTH') or 0)
        except ValueError:
            length = -1
        chunked = 'chunked' in environ.get('HTTP_TRANSFER_ENCODING', '').lower()
        body = b''
        unread = length != 0 or chunked
        if method in ('POST', 'PUT', 'PATCH') and ctype == 'application/json' \
                and 0 <= length <= MAX_BODY:
            # Chunked bodies have no length to refuse up front: read one byte too many.
            body = environ['wsgi.input'].read(MAX_BODY + 1 if chunked else length)
            unread = chunked and len(body) > MAX_BODY
        if unread and (chunked or 0 < length <= DRAIN_BYTES):
            # Read and dropped, so that the client, still sending, gets to read our answer
            # (a 413 or a 415) instead of a broken pipe.
            unread = not _drain(environ['wsgi.input'], DRAIN_BYTES)
        if length < 0:
            resp = Response(400, {'detail': 'bad Content-Length'})
        elif length > MAX_BODY or len(body) > MAX_BODY:
            # Refused here, unread, with the words the handler would use.
            resp = Response(413, {'detail': BODY_TOO_LARGE})
        else:
            cookie: SimpleCookie = SimpleCookie()
            try:
                cookie.load(environ.get('HTTP_COOKIE', ''))
            except CookieError:
                pass
            morsel = cookie.get(COOKIE)
            headers = {k[5:].replace('_', '-').lower(): v for k, v in environ.items()
                       if k.startswith('HTTP_')}
            if 'CONTENT_TYPE' in environ:
                headers['content-type'] = environ['CONTENT_TYPE']
            resp = self._handle(Request(
                method=method, path=_wsgi_str(environ.get('PATH_INFO', '')),
                query=parse_qs(_wsgi_str(environ.get('QUERY_STRING', '')),
                               keep_blank_values=True),
                headers=headers, body=body, cookie_token=morsel.value if morsel else None,
                secure=environ.get('wsgi.url_scheme') == 'https'))
        out = {'content-type': ('Content-Type', resp.content_type),
               'cache-control': ('Cache-Control', 'no-store'),
               'x-content-type-options': ('X-Content-Type-Options', 'nosniff')}
        for name, value in resp.headers:
            out[name.lower()] = (name, value)
        if unread:
            # A body we did not read would be taken for the next request on the connection.
            out['connection'] = ('Connection', 'close')
        if resp.status == 204 or resp.body is None:
            return resp.status, list(out.values()), b''
        if isinstance(resp.body, bytes):
            data = resp.body
        elif isinstance(resp.body, str):
            data = resp.body.encode()
        else:
            data = json.dumps(resp.body).encode()
        return resp.status, list(out.values()), data


def _drain(stream: Any, limit: int) -> bool:
    """Reads what is left of a body, up to `limit` bytes; True if that was all of it."""
    left = limit
    while left > 0:
        chunk = stream.read(min(left, 65536))
        if not chunk:
            return True
        left -= len(chunk)
    return False


def _wsgi_str(value: str) -> str:
    # WSGI hands the request line's bytes over as latin-1; paths and queries are UTF-8.
    return value.encode('latin-1').decode('utf-8', 'replace')


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return 'Unknown'


class _QuietTlsProbes(logging.Filter):
    """cheroot logs a traceback at ERROR whenever a client closes a TLS connection before
    its handshake (a port probe, CherryPy's own start-up check, a load balancer's health
    check): nothing is wrong then, and the mgr log must not cry wolf."""

    # CherryPy's bus writes the traceback into the message itself.
    NOISE = re.compile(r'Error in HTTPServer\.serve.*\n(ssl\.SSLZeroReturnError|ssl\.SSLEOFError|'
                       r'ConnectionResetError|BrokenPipeError)[^\n]*\n?$', re.S)

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.NOISE.search(record.getMessage())


def port_free(addr: str, port: int) -> Optional[str]:
    """None if we can bind there now, else why not."""
    family = socket.AF_INET6 if ':' in addr else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port))
        return None
    except OSError as e:
        return f'cannot listen on {addr}:{port}: {e.strerror}'
    finally:
        s.close()


class WebServer:
    def __init__(self, handle: Callable[[Request], Response]) -> None:
        self._tls_dir: Optional[str] = None
        self.bound: Optional[Tuple[str, int, bool]] = None
        cherrypy.tree.graft(_App(handle), '')
        if not any(isinstance(f, _QuietTlsProbes) for f in cherrypy.log.error_log.filters):
            cherrypy.log.error_log.addFilter(_QuietTlsProbes())

    def start(self, addr: str, port: int, pem: Optional[Tuple[str, str]]) -> None:
        """Raises OSError (with the reason) when the address cannot be bound."""
        problem = port_free(addr, port)
        if problem:
            raise OSError(problem)
        ssl_conf: dict = {'server.ssl_module': None, 'server.ssl_certificate': None,
                          'server.ssl_private_key': None}
        if pem is not None:
            self._tls_dir = tempfile.mkdtemp(prefix='bgtasks-tls-')
            crt, key = write_pair(pem[0], pem[1], self._tls_dir)
            ssl_conf = {'server.ssl_module': 'builtin', 'server.ssl_certificate': crt,
                        'server.ssl_private_key': key}
        cherrypy.config.update({
            'server.socket_host': addr,
            'server.socket_port': port,
            'server.thread_pool': 32,
            'server.max_request_body_size': 0,
            'server.socket_timeout': 10,
            'engine.autoreload.on': False,
            'log.screen': False,
            'log.access_file': '',
            'request.show_tracebacks': False,
            **ssl_conf,
        })
        try:
            cherrypy.engine.start()
        except ChannelFailures as e:
            # The port was taken between the check above and CherryPy's own (a standby mgr on
            # this host): CherryPy wraps that OSError and has stopped. Say it as an OSError, so
            # the caller retries instead of the module failing for good.
            cherrypy.server.httpserver = None
            raise OSError(f'cannot listen on {addr}:{port}: {e}') from e
        finally:
            # The adapter has read them: a key file left behind would outlive a killed mgr.
            if self._tls_dir:
                shutil.rmtree(self._tls_dir, ignore_errors=True)
                self._tls_dir = None
        self.bound = (addr, port, pem is not None)

    def stop(self) -> None:
        if self.bound is None:
            return
        cherrypy.engine.stop()
        # Without this the next start finds the old server object and the port stays bound.
        cherrypy.server.httpserver = None
        self.bound = None
