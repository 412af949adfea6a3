"""The WSGI adapter on CherryPy's server, without Ceph: bodies, limits, TLS probes."""
import http.client
import logging
import socket
import time
from typing import Dict, Iterator, List, Optional, Tuple

import pytest
from test_rest import Api

from mgr_bgtasks.rest import MAX_BODY
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
    logging.getLogger('cherrypy.error').addHandler(seen)
    web.start('127.0.0.1', port, _self_signed() if getattr(request, 'param', '') else None)
    try:
        yield api, port, seen
    finally:
        web.stop()
        logging.getLogger('cherrypy.error').removeHandler(seen)
    assert port_free('127.0.0.1', port) is None         # stopping frees the port


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


@pytest.mark.parametrize('served', ['tls'], indirect=True)
def test_tls_probes_leave_no_traceback_in_the_log(served: Tuple[Api, int, Records]) -> None:
    _, port, seen = served
    for _ in range(3):
        socket.create_connection(('127.0.0.1', port), timeout=5).close()
    time.sleep(0.5)
    assert not [r for r in seen.records if r.levelno >= logging.ERROR], \
        [r.getMessage()[:300] for r in seen.records]
