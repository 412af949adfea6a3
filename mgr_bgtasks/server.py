"""The module's web server: a cheroot WSGI server of its own, and a bare WSGI app that turns
requests into `rest.Request`s.

On Ceph Tentacle every mgr module runs in one Python interpreter, so CherryPy's engine, config
and tree, the `logging` module and `os` are shared with the dashboard and prometheus modules:
configuring, starting or stopping any of them would reconfigure, start or stop those modules'
servers too. Nothing here touches CherryPy. Each WebServer owns a cheroot server object and its
threads, which only its own start() and stop() affect, and it logs through this module's logger.
"""
import errno
import json
import logging
import shutil
import socket
import ssl
import sys
import tempfile
import threading
import traceback
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import parse_qs

from cheroot import errors as cheroot_errors
from cheroot import server as cheroot_server
from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter

from .rest import BODY_TOO_LARGE, COOKIE, MAX_BODY, Request, Response
from .tls import write_pair

log = logging.getLogger(__name__)

# Refused bodies up to this size are read to their end before the answer.
DRAIN_BYTES = 1 << 20
WORKERS = 32
SOCKET_TIMEOUT = 10
# Headers beyond this are refused (413) by cheroot; bodies have no limit there, the app has one.
MAX_HEADER_BYTES = 500 * 1024
# How long stop() waits for the serving thread after cheroot's own stop has returned.
JOIN_SECONDS = 10
THREAD_NAME = 'bgtasks-web'
Environ = Dict[str, Any]
StartResponse = Callable[[str, List[Tuple[str, str]]], Any]


class _App:
    """A bare WSGI application on cheroot: a framework's request machinery (tools, hooks,
    dispatch) would cost more per request than our whole handler, and the mgr's one GIL makes
    every step of it felt."""

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
                method=method, path=_wsgi_str(_one_slash(environ.get('PATH_INFO', ''))),
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


def _one_slash(path: str) -> str:
    # Runs of slashes count as one ('/api//taskqueue' is '/api/taskqueue'), and a request for
    # 'http://host' (no path) asks for '/'.
    while '//' in path:
        path = path.replace('//', '/')
    return path or '/'


def _wsgi_str(value: str) -> str:
    # WSGI hands the request line's bytes over as latin-1; paths and queries are UTF-8.
    return value.encode('latin-1').decode('utf-8', 'replace')


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return 'Unknown'


# A client that went away or never spoke TLS: a port probe or a health check that closes
# before or during the handshake, a scanner offering old TLS versions, plain HTTP on the TLS
# port, a connection reset halfway through a request. Nothing is wrong with us then, and the mgr
# log must not cry wolf. cheroot reports these, by version, as a traceback at ERROR (the ssl or
# socket error itself) or as a line at INFO (FatalSSLAlert, NoSSLError).
_CLIENT_GONE = (ssl.SSLError, ConnectionError, cheroot_errors.FatalSSLAlert,
                cheroot_errors.NoSSLError)
# And the plain OSErrors of a socket whose client has already reset it.
_GONE_ERRNOS = (errno.ENOTCONN, errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED)


def _client_gone(exc: Optional[BaseException]) -> bool:
    return isinstance(exc, _CLIENT_GONE) or (
        isinstance(exc, OSError) and exc.errno in _GONE_ERRNOS)


class _Request(cheroot_server.HTTPRequest):
    """Accepts absolute-form request targets ('GET https://host/path HTTP/1.1'), as HTTP/1.1
    servers must: cheroot takes those only from a proxy, so it is told it is one."""

    def __init__(self, server: Any, conn: Any) -> None:
        super().__init__(server, conn, proxy_mode=True)


class _Connection(cheroot_server.HTTPConnection):
    # Our own class attribute: CherryPy, when another module starts it, sets its request class
    # on cheroot's HTTPConnection itself, and we do not follow whatever it sets there.
    RequestHandlerClass = _Request

    def communicate(self) -> bool:
        """cheroot's, except that nothing a connection raises gets out: Debian bookworm's
        cheroot lets the worker thread die of it (a client that resets a TLS connection while
        cheroot answers it, say), and once all of them had, nothing would answer."""
        try:
            return bool(super().communicate())
        except Exception as e:
            if _client_gone(e):
                log.debug('web server: client gone (%s: %s)', type(e).__name__, e)
            else:
                log.exception('web server: a connection failed')
            return False

    def close(self) -> None:
        # Closing what the client has reset may raise too, and must not kill the worker either.
        try:
            super().close()
        except OSError as e:
            log.debug('web server: closing a connection: %s: %s', type(e).__name__, e)


class _Server(wsgi.Server):
    ConnectionClass = _Connection

    def error_log(self, msg: str = '', level: int = logging.INFO,
                  traceback: bool = False) -> None:
        # cheroot calls this from an except block when it has an exception to tell.
        exc = sys.exc_info()[1]
        if _client_gone(exc):
            log.debug('web server: %s (%s: %s)', msg, type(exc).__name__, exc)
            return
        log.log(level, 'web server: %s', msg, exc_info=exc if traceback and exc else None)


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


class _TlsAdapter(BuiltinSSLAdapter):
    def wrap(self, sock: Any) -> Any:
        try:
            return super().wrap(sock)
        except cheroot_errors.NoSSLError as e:
            # Plain HTTP on the TLS port. ssl has closed the socket with the failed handshake,
            # so cheroot's '400, speak TLS' would go to a closed socket (newer Pythons print
            # that failure to stderr): tell cheroot the client is gone instead.
            raise cheroot_errors.FatalSSLAlert(*e.args) from e


def _tls_adapter(pem: Tuple[str, str]) -> BuiltinSSLAdapter:
    folder = tempfile.mkdtemp(prefix='bgtasks-tls-')
    try:
        crt, key = write_pair(pem[0], pem[1], folder)
        # The adapter reads both files here, and never again.
        return _TlsAdapter(crt, key)
    except (OSError, ValueError) as e:
        raise OSError(f'cannot use the TLS certificate and key: {e}') from e
    finally:
        # A key file left behind would outlive a killed mgr.
        shutil.rmtree(folder, ignore_errors=True)


def _discard(server: _Server) -> None:
    """Lets go of what a server that serves no more still holds outside itself."""
    sock = getattr(server, 'socket', None)
    if sock is not None:
        # Freed now, not when the object is collected: the next start may want the port.
        sock.close()
        server.socket = None
    # cheroot files every server's counters under logging.statistics, where they would keep
    # the server alive for good; only our own entry goes.
    stats = getattr(logging, 'statistics', None)
    key = f'Cheroot HTTPServer {id(server)}'
    if isinstance(stats, dict) and stats.get(key) is server.stats:
        del stats[key]


class WebServer:
    """The module's HTTP(S) server. start() builds a new cheroot server each time: its
    listener, a daemon thread of our own that accepts (THREAD_NAME), and its workers."""

    def __init__(self, handle: Callable[[Request], Response]) -> None:
        self._app = _App(handle)
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None
        self.bound: Optional[Tuple[str, int, bool]] = None

    def start(self, addr: str, port: int, pem: Optional[Tuple[str, str]]) -> None:
        """Serves on addr:port, over TLS with the (certificate, key) PEMs if given; stops what
        this object served before. Raises OSError (with the reason) when the address cannot be
        bound or the certificate cannot be used."""
        self.stop()
        problem = port_free(addr, port)
        if problem:
            raise OSError(problem)
        # server_name is what the Server header says: the address, not cheroot's version.
        server = _Server((addr, port), self._app, numthreads=WORKERS, server_name=addr,
                         timeout=SOCKET_TIMEOUT)
        server.max_request_header_size = MAX_HEADER_BYTES
        server.max_request_body_size = 0
        try:
            if pem is not None:
                server.ssl_adapter = _tls_adapter(pem)
            self._thread = _launch(server, addr, port)
        except BaseException:
            _discard(server)
            raise
        self._server = server
        self.bound = (addr, port, pem is not None)

    def stop(self) -> None:
        """Stops serving; the port is free when this returns."""
        server, thread = self._server, self._thread
        self._server, self._thread, self.bound = None, None, None
        if server is None:
            return
        try:
            # Closes the listener and the open connections, then waits for busy workers (at
            # most cheroot's shutdown_timeout, 5 s, before it closes their sockets too).
            server.stop()
        except Exception:
            log.exception('web server did not stop cleanly')
        finally:
            _discard(server)
        if thread is not None:
            thread.join(JOIN_SECONDS)
            if thread.is_alive():
                log.warning('web server thread still running %s s after stop', JOIN_SECONDS)


def _launch(server: _Server, addr: str, port: int) -> threading.Thread:
    """Binds and serves in a daemon thread of our own; returns once bound, or raises OSError.

    prepare() (which binds and starts the workers) runs in that thread too, so that every thread
    cheroot starts inherits its daemon flag: a server somebody failed to stop never holds up
    the interpreter's exit."""
    bound = threading.Event()
    failed: List[BaseException] = []

    def run() -> None:
        try:
            server.prepare()
        except BaseException as e:
            failed.append(e)
            return
        finally:
            bound.set()
        try:
            server.serve()
        except BaseException:
            log.exception('web server on %s:%s stopped on an error', addr, port)

    thread = threading.Thread(target=run, name=THREAD_NAME, daemon=True)
    thread.start()
    bound.wait()
    if failed:
        thread.join()
        # Taken between port_free() and our bind (a standby mgr on this host, say). An OSError,
        # so that the caller retries instead of the module failing for good.
        raise OSError(f'cannot listen on {addr}:{port}: {failed[0]}') from failed[0]
    return thread
