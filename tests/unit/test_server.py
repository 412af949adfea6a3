"""The module's web server without Ceph: bodies, limits, TLS probes, binding, and leaving other
modules' CherryPy alone."""
import http.client
import logging
import os
import posix
import socket
import ssl
import struct
import threading
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
from test_rest import Api

from mgr_bgtasks.rest import MAX_BODY
from mgr_bgtasks import server
from mgr_bgtasks.rest import Response
from mgr_bgtasks.server import WebServer, port_free
from mgr_bgtasks.tls import _self_signed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return int(s.getsockname()[1])


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: List[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def served(request: pytest.FixtureRequest) -> Iterator[Tuple[Api, int, Records]]:
    api = Api()
    web = WebServer(api.api.handle)
    port = free_port()
    seen = Records()
    ours = logging.getLogger(server.__name__)             # everything the server logs
    level = ours.level
    ours.addHandler(seen)
    ours.setLevel(logging.DEBUG)
    web.start('127.0.0.1', port, _self_signed() if getattr(request, 'param', '') else None)
    try:
        yield api, port, seen
    finally:
        web.stop()
        ours.removeHandler(seen)
        ours.setLevel(level)
    assert port_free('127.0.0.1', port) is None         # stopping frees the port
    assert not [t for t in threading.enumerate() if t.name == server.THREAD_NAME]


def call(port: int, method: str, path: str, body: Optional[bytes] = None,
         headers: Optional[Dict[str, str]] = None) -> Tuple[int, Dict[str, str], bytes]:
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        res = conn.getresponse()
        return res.status, {k.lower(): v for k, v in res.getheaders()}, res.read()
    finally:
        conn.close()


def test_bodies_limits_and_headers(served: Tuple[Api, int, Records]) -> None:
    api, port, _ = served
    auth = {'Authorization': f'Bearer {api.token()}', 'Content-Type': 'application/json'}
    status, headers, body = call(port, 'POST', '/api/taskqueue/test_task', b'{"times": 2}', auth)
    assert status == 201 and headers['location'].startswith('/api/taskqueue/')
    assert headers['cache-control'] == 'no-store' and headers['x-content-type-options'] == 'nosniff'
    status, headers, _ = call(port, 'POST', '/api/taskqueue/test_task',
                              b' ' * (MAX_BODY + 1), auth)
    assert status == 413                                # read to its end, then refused
    # Chunked: no length to refuse up front, the adapter counts.
    status, _, _ = call(port, 'POST', '/api/taskqueue/test_task',
                        iter([b' ' * 8192] * 16), auth)   # type: ignore[arg-type]
    assert status == 413
    status, _, body = call(port, 'POST', '/api/taskqueue/test_task',
                           iter([b'{"times": ', b'3}']), auth)   # type: ignore[arg-type]
    assert status == 201, body
    status, headers, body = call(port, 'HEAD', '/api/taskqueue', headers=auth)
    assert status == 405 and body == b''
    status, _, body = call(port, 'GET', '/api/taskqueue/%ff', headers=auth)
    assert status == 404 and b'Traceback' not in body
    status, _, body = call(port, 'GET', '/api/auth/me',
                           headers={'Cookie': f'x="; bgtasks_session={api.token()}'})
    assert status in (200, 401)                         # a broken cookie is no 500


def tls_client(port: int) -> ssl.SSLSocket:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx.wrap_socket(socket.create_connection(('127.0.0.1', port), timeout=10))


def reset(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
    sock.close()


def tls_get(port: int, path: str = '/api/openapi.json') -> bytes:
    with tls_client(port) as s:
        s.sendall(f'GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'.encode())
        out = b''
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk


@pytest.mark.parametrize('served', ['tls'], indirect=True)
def test_tls_probes_leave_no_traceback_in_the_log(served: Tuple[Api, int, Records]) -> None:
    _, port, seen = served
    for _ in range(3):
        socket.create_connection(('127.0.0.1', port), timeout=5).close()
    probe = socket.create_connection(('127.0.0.1', port), timeout=5)
    reset(probe)                                        # reset before the handshake
    probe = socket.create_connection(('127.0.0.1', port), timeout=5)
    probe.sendall(bytes.fromhex('160301020001'))        # part of a hello, then reset
    time.sleep(0.1)
    reset(probe)
    with socket.create_connection(('127.0.0.1', port), timeout=5) as plain:
        plain.sendall(b'GET / HTTP/1.1\r\nHost: x\r\n\r\n')   # plain HTTP on the TLS port
        try:
            plain.recv(1024)
        except OSError:
            pass
    time.sleep(0.5)
    assert not [r for r in seen.records if r.levelno >= logging.ERROR], \
        [r.getMessage()[:300] for r in seen.records]
    assert not [r for r in seen.records if r.levelno >= logging.WARNING or r.exc_info], \
        [r.getMessage()[:300] for r in seen.records]
    assert seen.records                                 # they were seen, at DEBUG


@pytest.mark.parametrize('served', ['tls'], indirect=True)
def test_clients_resetting_mid_request_leave_the_workers_alive(
        served: Tuple[Api, int, Records]) -> None:
    _, port, seen = served
    for _ in range(server.WORKERS + 8):                 # one worker each, had they died of it
        s = tls_client(port)
        s.sendall(b'GET / HTTP/1.1\r\n')
        time.sleep(0.02)
        reset(s)
    time.sleep(0.5)
    assert tls_get(port).startswith(b'HTTP/1.1 200 ')
    assert not [r for r in seen.records if r.levelno >= logging.WARNING], \
        [r.getMessage()[:300] for r in seen.records]


def test_slashes_and_absolute_targets(served: Tuple[Api, int, Records]) -> None:
    api, port, _ = served
    auth = {'Authorization': f'Bearer {api.token()}'}
    status, _, body = call(port, 'GET', '/api//auth/me', headers=auth)
    assert status == 200 and b'admin' in body
    status, _, body = call(port, 'GET', f'http://127.0.0.1:{port}/api/auth/me', headers=auth)
    assert status == 200 and b'admin' in body


def hello(req: Any) -> Response:
    return Response(200, {'path': req.path})


def test_a_port_taken_after_the_check_is_an_oserror(monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    web = WebServer(hello)
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(('127.0.0.1', port))
    holder.listen()
    try:
        with pytest.raises(OSError, match=f'cannot listen on 127.0.0.1:{port}'):
            web.start('127.0.0.1', port, None)          # the check sees it
        monkeypatch.setattr(server, 'port_free', lambda addr, port: None)
        with pytest.raises(OSError, match=f'cannot listen on 127.0.0.1:{port}'):
            web.start('127.0.0.1', port, _self_signed())   # our own bind does
        assert web.bound is None
        assert not [t for t in threading.enumerate() if t.name == server.THREAD_NAME]
    finally:
        holder.close()
    web.start('127.0.0.1', port, None)
    try:
        assert call(port, 'GET', '/x')[0] == 200
    finally:
        web.stop()


def test_two_servers_stop_and_restart_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # The folders this thread's starts make: the temp dir itself is shared with whatever
    # else runs on the machine.
    made: List[str] = []
    mkdtemp, me = server.tempfile.mkdtemp, threading.get_ident()

    def recorded(*args: Any, **kwargs: Any) -> str:
        folder = mkdtemp(*args, **kwargs)
        if threading.get_ident() == me:
            made.append(folder)
        return folder
    pem = _self_signed()
    monkeypatch.setattr(server.tempfile, 'mkdtemp', recorded)
    one, two = WebServer(hello), WebServer(hello)
    p1, p2 = free_port(), free_port()
    one.start('127.0.0.1', p1, pem)
    two.start('127.0.0.1', p2, pem)
    monkeypatch.undo()
    try:
        assert one.bound == ('127.0.0.1', p1, True)
        # No key file outlives the start that needed it.
        assert len(made) == 2 and not [d for d in made if os.path.exists(d)]
        idle = tls_client(p1)                           # a keep-alive connection, left open
        idle.sendall(b'GET /a HTTP/1.1\r\nHost: x\r\n\r\n')
        assert idle.recv(65536).startswith(b'HTTP/1.1 200 ')
        assert tls_get(p1).startswith(b'HTTP/1.1 200 ')
        one.stop()
        assert one.bound is None and port_free('127.0.0.1', p1) is None
        assert tls_get(p2).startswith(b'HTTP/1.1 200 ')     # the other one still serves
        one.start('127.0.0.1', p1, None)                # the same port, at once
        assert call(p1, 'GET', '/b')[0] == 200
        idle.close()
    finally:
        one.stop()
        two.stop()
    assert one.bound is None and two.bound is None
    assert port_free('127.0.0.1', p1) is None and port_free('127.0.0.1', p2) is None


def test_other_modules_cherrypy_is_left_alone() -> None:
    """Tentacle runs every mgr module in one interpreter: the dashboard's and prometheus's
    CherryPy must not notice ours start, serve, stop or rebind."""
    cherrypy = pytest.importorskip('cherrypy')
    other_port = free_port()

    def other_app(environ: Dict[str, Any], start_response: Any) -> List[bytes]:
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [b'other module']

    cherrypy.tree.graft(other_app, '')
    cherrypy.config.update({'server.socket_host': '127.0.0.1', 'server.socket_port': other_port,
                            'engine.autoreload.on': False, 'log.screen': False})
    root = logging.getLogger()
    root_state = (root.level, list(root.handlers), list(root.filters))
    cp_error = logging.getLogger('cherrypy.error')
    cp_state = (cp_error.level, list(cp_error.handlers), list(cp_error.filters))
    cherrypy.engine.start()
    try:
        state = cherrypy.engine.state
        config = dict(cherrypy.config)
        apps = dict(cherrypy.tree.apps)
        httpserver = cherrypy.server.httpserver
        web = WebServer(hello)
        port = free_port()
        web.start('127.0.0.1', port, _self_signed())
        assert tls_get(port).startswith(b'HTTP/1.1 200 ')
        web.stop()
        web.start('127.0.0.1', port, None)              # a rebind
        assert call(port, 'GET', '/x')[0] == 200
        web.stop()
        assert cherrypy.engine.state == state
        assert dict(cherrypy.config) == config
        assert cherrypy.tree.apps == apps and all(
            cherrypy.tree.apps[k] is v for k, v in apps.items())
        assert cherrypy.server.httpserver is httpserver
        assert call(other_port, 'GET', '/')[2] == b'other module'   # still serving
        assert (root.level, list(root.handlers), list(root.filters)) == root_state
        assert (cp_error.level, list(cp_error.handlers), list(cp_error.filters)) == cp_state
    finally:
        cherrypy.engine.exit()
        cherrypy.tree.apps.pop('', None)
        cherrypy.config.reset()
    assert os._exit is posix._exit                      # not patched
    assert not any(getattr(v, '__name__', '').startswith('cherrypy')
                   for v in vars(server).values())
