"""CherryPy inside ceph-mgr: starting, stopping and rebinding the module's web server,
and turning CherryPy requests into `rest.Request`s.

Each mgr module has its own interpreter and so its own CherryPy; we follow the
prometheus module's way of running it.
"""
import json
import os
import shutil
import socket
import tempfile
from typing import Any, Callable, Optional, Tuple
from urllib.parse import parse_qs

import cherrypy
from cherrypy.process.wspbus import ChannelFailures

from .rest import COOKIE, MAX_BODY, Request, Response
from .tls import write_pair


def _no_exit(status: int) -> None:
    pass


# CherryPy calls os._exit when a start listener fails, which would kill the whole mgr.
setattr(os, '_exit', _no_exit)


def _error_page(status: str, message: str, traceback: str, version: str) -> str:
    # CherryPy's own refusals (413 before a handler runs, ...) as JSON, never a traceback.
    cherrypy.response.headers['Content-Type'] = 'application/json'
    return json.dumps({'detail': message})


class _Root:
    def __init__(self, handle: Callable[[Request], Response]) -> None:
        self._handle = handle

    @cherrypy.expose
    def default(self, *args: Any, **kwargs: Any) -> bytes:
        r = cherrypy.request
        ctype = r.headers.get('Content-Type', '').split(';')[0].strip().lower()
        body = b''
        if r.method in ('POST', 'PUT', 'PATCH') and ctype == 'application/json':
            body = r.body.read(MAX_BODY + 1)
        morsel = r.cookie.get(COOKIE)
        req = Request(method=r.method, path=r.path_info,
                      query=parse_qs(r.query_string or '', keep_blank_values=True),
                      headers={k.lower(): v for k, v in r.headers.items()},
                      body=body, cookie_token=morsel.value if morsel else None,
                      secure=r.scheme == 'https')
        resp = self._handle(req)
        out = cherrypy.response
        out.status = resp.status
        out.headers['Content-Type'] = resp.content_type
        out.headers['Cache-Control'] = 'no-store'
        out.headers['X-Content-Type-Options'] = 'nosniff'
        for name, value in resp.headers:
            out.headers[name] = value
        if resp.status == 204 or resp.body is None:
            return b''
        if isinstance(resp.body, bytes):
            return resp.body
        if isinstance(resp.body, str):
            return resp.body.encode()
        return json.dumps(resp.body).encode()


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
        self._root = _Root(handle)
        self._tls_dir: Optional[str] = None
        self.bound: Optional[Tuple[str, int, bool]] = None
        cherrypy.tree.mount(self._root, '/', config={'/': {
            'request.show_tracebacks': False,
            'error_page.default': _error_page,
            # Checked here rather than by cheroot, whose 413 is plain text.
            'request.body.maxbytes': MAX_BODY,
        }})

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
