"""The REST server on a real cluster: auth, the task routes, errors, TLS, options, OpenAPI,
metrics. Tests that rebind or restart the server come last and put everything back."""
import hashlib
import http.client
import json
import re
import socket
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union
from urllib.parse import urljoin, urlparse

import pytest
import requests

from conftest import (PASSWORDS, REST_ADMIN, REST_READER, RestApi, create_user,
                      no_module_error, no_traceback, password_file)
from devcluster import DevCluster, free_port

TASK_FIELDS = {'id', 'kind', 'description', 'state', 'status', 'status_text', 'percent',
               'estimated', 'created', 'last_modified', 'started', 'ended', 'created_by',
               'params', 'result', 'error'}
MAX_BODY = 64 * 1024


# ---------------------------------------------------------------------- helpers

def detail(res: requests.Response) -> str:
    """The `detail` of a JSON error body (asserts there is one)."""
    assert res.headers.get('Content-Type', '').startswith('application/json'), \
        f'{res.status_code} not JSON: {res.headers.get("Content-Type")} {res.text[:300]}'
    body = res.json()
    assert isinstance(body, dict) and isinstance(body.get('detail'), str), body
    assert no_traceback(res.text), res.text
    return str(body['detail'])


def raw_request(api: RestApi, method: str, path: str,
                body: Union[bytes, Iterable[bytes], None] = None,
                headers: Optional[Dict[str, str]] = None,
                port: Optional[int] = None) -> Tuple[int, Dict[str, str], bytes]:
    """A request over http.client: exact bytes, chunked bodies (an iterable), and a response
    read even when the server answered before reading the whole body."""
    port = port or api.port
    conn: http.client.HTTPConnection
    if api.scheme == 'https':
        ctx = ssl._create_unverified_context()
        conn = http.client.HTTPSConnection('127.0.0.1', port, timeout=30, context=ctx)
    else:
        conn = http.client.HTTPConnection('127.0.0.1', port, timeout=30)
    hdrs = dict(headers or {})
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        chunked = body is not None and not isinstance(body, bytes)
        if isinstance(body, bytes):
            hdrs.setdefault('Content-Length', str(len(body)))
        elif chunked:
            hdrs['Transfer-Encoding'] = 'chunked'
        for k, v in hdrs.items():
            conn.putheader(k, v)
        conn.endheaders()
        try:
            if isinstance(body, bytes):
                conn.send(body)
            elif body is not None:
                for chunk in body:
                    conn.send(b'%x\r\n%s\r\n' % (len(chunk), chunk))
                conn.send(b'0\r\n\r\n')
        except (BrokenPipeError, ConnectionResetError):
            pass                   # the server answered early; read what it said
        res = conn.getresponse()
        return res.status, {k.lower(): v for k, v in res.getheaders()}, res.read()
    finally:
        conn.close()


def port_refuses(port: int) -> bool:
    try:
        with socket.create_connection(('127.0.0.1', port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


def services(cluster: DevCluster) -> Dict[str, str]:
    return dict(cluster.ceph('mgr', 'services', json_out=True) or {})


def wait_service_url(cluster: DevCluster, url: str, timeout: float = 20) -> None:
    cluster.wait_for(lambda: services(cluster).get('bgtasks') == url, timeout=timeout,
                     what=f'`ceph mgr services` to list bgtasks at {url}',
                     diag=lambda: json.dumps(services(cluster)))


def ids(tasks: List[Dict[str, Any]]) -> List[int]:
    return [int(t['id']) for t in tasks]


def listing(api: RestApi, query: str = '', prefix: str = '',
            user: str = REST_ADMIN) -> Dict[str, Any]:
    res = api.get(f'{prefix}/api/taskqueue{query}', user=user)
    assert res.status_code == 200, f'{query}: {res.status_code} {res.text}'
    body = res.json()
    assert set(body) >= {'count', 'next', 'previous', 'results'}, body
    return dict(body)


def abort(api: RestApi, task_id: int) -> None:
    api.delete(f'/api/taskqueue/{task_id}')


def cookie_attrs(set_cookie: str) -> List[str]:
    return [a.strip().lower() for a in set_cookie.split(';')]


def sha256(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def tls_get(ctx: ssl.SSLContext, port: int, path: str) -> int:
    conn = http.client.HTTPSConnection('127.0.0.1', port, timeout=15, context=ctx)
    try:
        conn.request('GET', path)
        res = conn.getresponse()
        res.read()
        return res.status
    finally:
        conn.close()


# ---------------------------------------------------------------------- discovery

def test_mgr_services_lists_the_https_url(api: RestApi) -> None:
    wait_service_url(api.cluster, f'https://127.0.0.1:{api.port}/')


def test_openapi_document_needs_no_auth(api: RestApi) -> None:
    res = api.get('/api/openapi.json', user=None)
    assert res.status_code == 200
    spec = res.json()
    assert str(spec.get('openapi', '')).startswith('3.'), spec.get('openapi')
    assert isinstance(spec.get('paths'), dict) and spec['paths']


def test_root_serves_an_html_page(api: RestApi) -> None:
    res = api.get('/', user=None)
    assert res.status_code == 200, res.text[:300]
    assert res.headers.get('Content-Type', '').startswith('text/html')
    assert '<html' in res.text.lower()


# ---------------------------------------------------------------------- auth

def test_login_token_me_logout(api: RestApi) -> None:
    res = api.login(REST_ADMIN)
    assert res.status_code == 200, res.text
    body = res.json()
    assert body['username'] == REST_ADMIN and body['role'] == 'admin'
    token = body['token']
    assert isinstance(token, str) and len(token) >= 16

    me = api.get('/api/auth/me', user=None, token=token)
    assert me.status_code == 200 and me.json() == {'username': REST_ADMIN, 'role': 'admin'}

    out = api.request('POST', '/api/auth/logout', token=token, json={})
    assert out.status_code == 204, out.text
    assert out.content == b''
    after = api.get('/api/auth/me', user=None, token=token)
    assert after.status_code == 401
    detail(after)
    assert api.get('/api/taskqueue', user=None, token=token).status_code == 401


def test_login_sets_a_strict_httponly_secure_cookie_that_authenticates(api: RestApi) -> None:
    s = api.session()
    res = s.post(api.url('/api/auth/login'), timeout=30,
                 json={'username': REST_READER, 'password': PASSWORDS[REST_READER]})
    assert res.status_code == 200, res.text
    assert res.json()['role'] == 'read-only'
    set_cookie = res.headers.get('Set-Cookie', '')
    attrs = cookie_attrs(set_cookie)
    assert 'httponly' in attrs, set_cookie
    assert 'samesite=strict' in attrs, set_cookie
    assert 'secure' in attrs, set_cookie
    assert len(s.cookies) == 1, s.cookies
    name, value = next(iter(s.cookies.items()))

    me = s.get(api.url('/api/auth/me'), timeout=30)
    assert me.status_code == 200 and me.json() == {'username': REST_READER,
                                                   'role': 'read-only'}
    assert s.get(api.url('/api/taskqueue'), timeout=30).status_code == 200

    out = s.post(api.url('/api/auth/logout'), timeout=30, json={})
    assert out.status_code == 204, out.text
    # The session is gone on the server, not only in this client's jar.
    replay = api.get('/api/auth/me', user=None, headers={'Cookie': f'{name}={value}'})
    assert replay.status_code == 401
    detail(replay)
    # ... and so is the token handed out by the same login.
    assert api.get('/api/auth/me', user=None, token=res.json()['token']).status_code == 401


def test_logout_needs_no_body(api: RestApi) -> None:
    # A logout carries nothing: `curl -X POST -b cookies .../api/auth/logout` must work.
    # (The contract's "POST without Content-Type: application/json -> 415" is read as
    # applying to POSTs that carry a body.)
    token = api.new_token(REST_ADMIN)
    out = api.request('POST', '/api/auth/logout', token=token)
    assert out.status_code == 204, f'{out.status_code} {out.text}'
    assert api.get('/api/auth/me', user=None, token=token).status_code == 401


def test_wrong_password_and_unknown_user_are_401_alike(api: RestApi) -> None:
    wrong = api.login(REST_READER, 'not-the-password')
    assert wrong.status_code == 401
    unknown = api.login('nobody-here', 'not-the-password')
    assert unknown.status_code == 401
    # No user enumeration: the same answer whether or not the user exists.
    assert detail(wrong) == detail(unknown)
    assert 'Set-Cookie' not in wrong.headers
    assert api.login(REST_READER).status_code == 200    # one failure locks nothing


@pytest.mark.parametrize('body,field', [
    ({'password': 'x'}, 'username'),
    ({'username': REST_ADMIN}, 'password'),
    ({'username': 5, 'password': 'x'}, 'username'),
    ({'username': REST_ADMIN, 'password': None}, 'password'),
    ({'username': REST_ADMIN, 'password': ['x']}, 'password'),
])
def test_login_body_is_validated(api: RestApi, body: Dict[str, Any], field: str) -> None:
    res = api.request('POST', '/api/auth/login', json=body)
    assert res.status_code == 400, res.text
    assert field in detail(res)


def test_login_refuses_non_json(api: RestApi) -> None:
    form = api.request('POST', '/api/auth/login',
                       data={'username': REST_ADMIN, 'password': PASSWORDS[REST_ADMIN]})
    assert form.status_code == 415, form.text
    detail(form)
    broken = api.request('POST', '/api/auth/login', data=b'{"username": ',
                         headers={'Content-Type': 'application/json'})
    assert broken.status_code == 400
    detail(broken)
    not_object = api.request('POST', '/api/auth/login', json=[REST_ADMIN])
    assert not_object.status_code == 400
    detail(not_object)


PROTECTED = [('GET', '/api/auth/me'), ('POST', '/api/auth/logout'),
             ('GET', '/api/taskqueue'), ('GET', '/api/taskqueue?state=pending'),
             ('GET', '/api/taskqueue/1'), ('DELETE', '/api/taskqueue/1'),
             ('POST', '/api/taskqueue/test_task'),
             ('GET', '/openattic/api/taskqueue'), ('GET', '/openattic/api/taskqueue/1'),
             ('DELETE', '/openattic/api/taskqueue/1'),
             ('POST', '/openattic/api/taskqueue/test_task')]


@pytest.mark.parametrize('method,path', PROTECTED)
def test_every_api_route_needs_a_session_or_token(api: RestApi, method: str, path: str) -> None:
    body = {'times': 1} if method == 'POST' else None
    for headers in ({}, {'Authorization': 'Bearer not-a-token'},
                    {'Authorization': 'Basic ' + 'cmVzdC1hZG1pbjp4'},
                    {'Cookie': 'session=not-a-session; token=nope'}):
        res = api.request(method, path, json=body, headers=headers)
        assert res.status_code == 401, f'{method} {path} {headers}: {res.status_code} {res.text}'
        detail(res)


def test_read_only_user_reads_but_cannot_create_or_delete(api: RestApi) -> None:
    task = api.create_test(200)
    try:
        assert api.get('/api/taskqueue', user=REST_READER).status_code == 200
        assert api.get(f"/api/taskqueue/{task['id']}", user=REST_READER).status_code == 200
        for prefix in ('', '/openattic'):
            res = api.post(f'{prefix}/api/taskqueue/test_task', {'times': 1}, user=REST_READER)
            assert res.status_code == 403, res.text
            detail(res)
            res = api.delete(f"{prefix}/api/taskqueue/{task['id']}", user=REST_READER)
            assert res.status_code == 403, res.text
            detail(res)
        assert api.task(task['id'])['state'] == 'pending'
    finally:
        abort(api, task['id'])


def test_cli_user_management(api: RestApi) -> None:
    cluster = api.cluster
    users = cluster.ceph('bgtask', 'user', 'ls', json_out=True)
    assert {'username': REST_ADMIN, 'role': 'admin'} in users, users
    assert {'username': REST_READER, 'role': 'read-only'} in users, users
    assert all(set(u) == {'username', 'role'} for u in users), users
    assert not any('password' in json.dumps(u).lower() for u in users)

    pw = password_file(cluster, 'cli-user', 'First-pass-w0rd!')
    bad_role = cluster.ceph('bgtask', 'user', 'create', 'cli-user', 'root', '-i', pw,
                            check=False)
    assert bad_role.returncode == 22, bad_role
    assert 'admin' in bad_role.stderr and 'read-only' in bad_role.stderr, bad_role.stderr

    create_user(cluster, 'cli-user', 'read-only', 'First-pass-w0rd!')
    again = cluster.ceph('bgtask', 'user', 'create', 'cli-user', 'admin', '-i', pw, check=False)
    assert again.returncode != 0, again
    assert 'exist' in again.stderr.lower(), again.stderr

    assert api.login('cli-user', 'First-pass-w0rd!').status_code == 200
    token = api.login('cli-user', 'First-pass-w0rd!').json()['token']
    cluster.ceph('bgtask', 'user', 'set-password', 'cli-user', '-i',
                 password_file(cluster, 'cli-user', 'Second-pass-w0rd!'))
    assert api.login('cli-user', 'First-pass-w0rd!').status_code == 401
    assert api.login('cli-user', 'Second-pass-w0rd!').status_code == 200

    cluster.ceph('bgtask', 'user', 'rm', 'cli-user')
    assert api.login('cli-user', 'Second-pass-w0rd!').status_code == 401
    assert 'cli-user' not in [u['username'] for u in
                              cluster.ceph('bgtask', 'user', 'ls', json_out=True)]
    # A removed user's sessions end with it.
    assert api.get('/api/auth/me', user=None, token=token).status_code == 401
    gone = cluster.ceph('bgtask', 'user', 'rm', 'cli-user', check=False)
    assert gone.returncode != 0


def test_lockout_after_consecutive_failures(api: RestApi) -> None:
    # Long enough that a loaded machine answers the checks below while the lock holds.
    LOCK = 6
    cluster = api.cluster
    user, password = 'rest-locked', 'Lock-me-0ut-pass!'
    create_user(cluster, user, 'admin', password)
    cluster.ceph('config', 'set', 'mgr', 'mgr/bgtasks/login_lockout_seconds', str(LOCK))
    time.sleep(1.5)                  # the mgr gets the option pushed from the mon
    try:
        for _ in range(4):
            assert api.login(user, 'wrong').status_code == 401
        assert api.login(user, password).status_code == 200      # a success resets the count
        for i in range(4):
            assert api.login(user, 'wrong').status_code == 401, i
        fifth = api.login(user, 'wrong')
        locked_at = time.monotonic()
        assert fifth.status_code in (401, 429), fifth.text

        res = api.login(user, password)                       # right password, still locked
        assert res.status_code == 429, res.text
        assert 'lock' in detail(res).lower()
        assert 'Set-Cookie' not in res.headers
        assert api.login(REST_ADMIN).status_code == 200       # only that user is locked
        time.sleep(1.0)
        assert api.login(user, password).status_code == 429

        time.sleep(max(0.0, locked_at + LOCK + 0.3 - time.monotonic()))
        res = api.login(user, password)
        waited = time.monotonic() - locked_at
        while res.status_code == 429 and waited < 15:
            time.sleep(0.5)
            res = api.login(user, password)
            waited = time.monotonic() - locked_at
        assert res.status_code == 200, \
            f'still {res.status_code} {waited:.1f}s after the lock (login_lockout_seconds={LOCK})'
        assert waited < LOCK + 3, \
            f'unlocked only after {waited:.1f}s (login_lockout_seconds={LOCK})'
    finally:
        cluster.ceph('config', 'set', 'mgr', 'mgr/bgtasks/login_lockout_seconds', '300')
        cluster.ceph('bgtask', 'user', 'rm', user, check=False)


# ---------------------------------------------------------------------- tasks

def test_create_answers_201_with_location_and_the_task(api: RestApi) -> None:
    res = api.post('/api/taskqueue/test_task', {'times': 2})
    assert res.status_code == 201, res.text
    task = res.json()
    assert set(task) >= TASK_FIELDS, TASK_FIELDS - set(task)
    assert task['kind'] == 'test' and task['params'] == {'times': 2}
    assert task['created_by'] == REST_ADMIN
    assert task['state'] == 'pending' and task['status'] in ('Not Started', 'Running')
    location = res.headers.get('Location')
    assert location, res.headers
    assert urlparse(urljoin(api.base + '/', location)).path == f"/api/taskqueue/{task['id']}"
    got = api.get(urljoin(api.base + '/', location))
    assert got.status_code == 200 and got.json()['id'] == task['id']
    done = api.wait_task(task['id'], lambda t: t['state'] == 'finished', timeout=30)
    assert done['status'] == 'Finished' and done['percent'] == 100
    assert done['result'] == {'rounds': 2}


@pytest.mark.parametrize('times', [0, 100001, -1, '5', True, False, 2.5, None, [], {}])
def test_create_refuses_bad_times(api: RestApi, times: Any) -> None:
    res = api.post('/api/taskqueue/test_task', {'times': times})
    assert res.status_code == 400, f'{times!r}: {res.status_code} {res.text}'
    assert 'times' in detail(res)


@pytest.mark.parametrize('body', [
    b'', b'{times: 1}', b'{"times": 1', b'[1]', b'"times"', b'5', b'null', b'{}',
    b'\xff\xfe{"times": 1}', b'{"times": NaN}', b'{"times": Infinity}',
    b'{"times": 1' + b'0' * 5000 + b'}',
    b'[' * 5000 + b']' * 5000, b'{"times": ' + b'[' * 5000 + b']' * 5000 + b'}',
], ids=lambda b: repr(b[:16]))
def test_create_refuses_malformed_bodies_with_400(api: RestApi, body: bytes) -> None:
    res = api.request('POST', '/api/taskqueue/test_task', user=REST_ADMIN, data=body,
                      headers={'Content-Type': 'application/json'})
    assert res.status_code == 400, f'{body[:40]!r}: {res.status_code} {res.text[:300]}'
    text = detail(res)
    if body == b'{}':
        assert 'times' in text


def test_create_accepts_a_charset_parameter(api: RestApi) -> None:
    res = api.request('POST', '/api/taskqueue/test_task', user=REST_ADMIN, data=b'{"times": 1}',
                      headers={'Content-Type': 'application/json; charset=utf-8'})
    assert res.status_code == 201, res.text


@pytest.mark.parametrize('content_type', [None, 'text/plain', 'application/x-www-form-urlencoded',
                                          'multipart/form-data; boundary=x', 'application/xml',
                                          'application/jsonx'])
def test_post_without_json_content_type_is_415(api: RestApi, content_type: Optional[str]) -> None:
    headers = {'Content-Type': content_type} if content_type else {}
    body = b'times=3' if content_type and 'form' in content_type else b'{"times": 3}'
    res = api.request('POST', '/api/taskqueue/test_task', user=REST_ADMIN, data=body,
                      headers=headers)
    assert res.status_code == 415, f'{content_type}: {res.status_code} {res.text}'
    detail(res)


def test_body_over_64_kib_is_413(api: RestApi) -> None:
    def padded(size: int) -> bytes:
        head, tail = b'{"times": 1', b'}'
        return head + b' ' * (size - len(head) - len(tail)) + tail

    auth = {'Authorization': f'Bearer {api.token(REST_ADMIN)}',
            'Content-Type': 'application/json'}
    status, _, body = raw_request(api, 'POST', '/api/taskqueue/test_task', padded(MAX_BODY),
                                  auth)
    assert status == 201, body[:300]
    status, headers, body = raw_request(api, 'POST', '/api/taskqueue/test_task',
                                        padded(MAX_BODY + 1), auth)
    assert status == 413, body[:300]
    assert 'application/json' in headers.get('content-type', ''), headers
    assert no_traceback(body.decode('utf-8', 'replace'))
    # Chunked: no Content-Length to refuse up front, the server must count.
    status, _, body = raw_request(api, 'POST', '/api/taskqueue/test_task',
                                  (b' ' * 8192 for _ in range(16)), auth)
    assert status == 413, f'chunked 128 KiB: {status} {body[:300]!r}'
    status, _, body = raw_request(api, 'POST', '/api/auth/login', padded(MAX_BODY + 1),
                                  {'Content-Type': 'application/json'})
    assert status == 413, body[:300]
    assert api.get('/api/taskqueue?state=pending').status_code == 200


@pytest.mark.parametrize('path', ['/api/nope', '/api/taskqueue/1/nope', '/api/auth/nope',
                                  '/nope', '/openattic/api/nope', '/api/taskqueue/test_task/1'])
def test_unknown_route_is_404_json(api: RestApi, path: str) -> None:
    res = api.get(path)
    assert res.status_code == 404, f'{path}: {res.status_code} {res.text[:300]}'
    detail(res)


# int() would take '1 ', '1_0' and a fullwidth '１': they are not ids either.
@pytest.mark.parametrize('task_id', ['987654321', 'abc', '-1', '0', '1.5', '0x10', '%00',
                                     '99999999999999999999999999', '1%20', '1_0', '%EF%BC%91',
                                     '%F0%9F%92%A5'])
def test_missing_or_non_integer_ids_are_404_or_400(api: RestApi, task_id: str) -> None:
    for method in ('GET', 'DELETE'):
        for prefix in ('', '/openattic'):
            res = api.request(method, f'{prefix}/api/taskqueue/{task_id}', user=REST_ADMIN)
            assert res.status_code in (400, 404), \
                f'{method} {prefix}/api/taskqueue/{task_id}: {res.status_code} {res.text[:300]}'
            detail(res)
            if task_id == '987654321':
                assert res.status_code == 404


WRONG_METHODS = [('PUT', '/api/taskqueue/{id}'), ('PATCH', '/api/taskqueue/{id}'),
                 ('POST', '/api/taskqueue/{id}'), ('DELETE', '/api/taskqueue'),
                 ('POST', '/api/taskqueue'), ('PUT', '/api/taskqueue'),
                 ('GET', '/api/auth/login'), ('DELETE', '/api/auth/me'),
                 ('GET', '/api/auth/logout'), ('PUT', '/openattic/api/taskqueue/{id}'),
                 ('POST', '/openattic/api/taskqueue')]


@pytest.mark.parametrize('method,path', WRONG_METHODS)
def test_wrong_method_on_a_known_route_is_405(api: RestApi, method: str, path: str) -> None:
    task_id = listing(api)['results'][0]['id'] if 'id' in path else 0
    res = api.request(method, path.format(id=task_id), user=REST_ADMIN, json={'times': 1})
    assert res.status_code == 405, f'{method} {path}: {res.status_code} {res.text[:300]}'
    detail(res)


def test_405_names_the_allowed_methods(api: RestApi) -> None:
    # RFC 9110 15.5.6: a 405 MUST carry Allow.
    res = api.request('PUT', '/api/taskqueue', user=REST_ADMIN, json={})
    assert res.status_code == 405
    assert 'GET' in res.headers.get('Allow', ''), res.headers


def test_list_filters_by_state_and_status(api: RestApi) -> None:
    running = api.create_test(500)
    finished = api.create_test(1)
    try:
        api.wait_task(running['id'], lambda t: t['status'] == 'Running')
        api.wait_task(finished['id'], lambda t: t['state'] == 'finished')
        everything = listing(api)
        assert everything['count'] == len(everything['results'])
        assert everything['next'] is None and everything['previous'] is None
        assert {running['id'], finished['id']} <= set(ids(everything['results']))
        got = ids(everything['results'])
        assert got == sorted(got, reverse=True), 'not newest first'

        cases = [('?state=pending', running, finished), ('?state=finished', finished, running),
                 ('?status=Running', running, finished), ('?status=Finished', finished, running),
                 ('?state=pending&status=Running', running, finished)]
        for query, inside, outside in cases:
            res = listing(api, query)
            assert inside['id'] in ids(res['results']), query
            assert outside['id'] not in ids(res['results']), query
            assert res['count'] == len(res['results']), query
            key, value = query[1:].split('&')[0].split('=')
            assert all(t[key] == value for t in res['results']), query
        for query in ('?status=Not%20Started', '?state=failed', '?status=Aborted'):
            assert running['id'] not in ids(listing(api, query)['results']), query

        aborted = api.delete(f"/api/taskqueue/{running['id']}")
        assert aborted.status_code == 200
        assert running['id'] in ids(listing(api, '?status=Aborted')['results'])
        assert running['id'] in ids(listing(api, '?state=failed')['results'])
        assert running['id'] not in ids(listing(api, '?state=pending')['results'])
    finally:
        abort(api, running['id'])


@pytest.mark.parametrize('query', ['?state=running', '?state=PENDING', '?state=bogus',
                                   '?status=running', '?status=Bogus',
                                   '?page=0', '?page=-1', '?page=abc', '?page=1.5',
                                   '?page=1&pageSize=0', '?page=1&pageSize=-3',
                                   '?page=1&pageSize=abc', '?page=%00'])
def test_bad_list_parameters_are_400(api: RestApi, query: str) -> None:
    res = api.get(f'/api/taskqueue{query}')
    assert res.status_code == 400, f'{query}: {res.status_code} {res.text[:300]}'
    detail(res)


def test_paging_walks_every_task_newest_first(api: RestApi) -> None:
    for _ in range(5):
        api.create_test(1)
    everything = ids(listing(api)['results'])
    assert len(everything) >= 5

    first = listing(api, '?page=1&pageSize=2')
    assert first['count'] == len(everything)
    assert first['previous'] is None and isinstance(first['next'], str)
    assert len(first['results']) == 2
    seen = ids(first['results'])
    page = first
    pages = 1
    while page['next'] is not None:
        assert isinstance(page['next'], str)
        res = api.get(urljoin(api.base + '/', page['next']))
        assert res.status_code == 200, f"{page['next']}: {res.status_code} {res.text}"
        page = res.json()
        pages += 1
        assert isinstance(page['previous'], str)
        assert page['count'] == len(everything)
        assert 1 <= len(page['results']) <= 2
        seen += ids(page['results'])
        assert pages <= len(everything), 'next never ends'
    assert seen == everything
    assert pages == (len(everything) + 1) // 2

    second = listing(api, '?page=2&pageSize=2')
    back = api.get(urljoin(api.base + '/', second['previous'])).json()
    assert ids(back['results']) == ids(first['results'])
    whole = listing(api, f'?page=1&pageSize={len(everything) + 10}')
    assert ids(whole['results']) == everything and whole['next'] is None


def test_paging_keeps_the_filter(api: RestApi) -> None:
    api.wait_task(api.create_test(1)['id'], lambda t: t['state'] == 'finished')
    api.wait_task(api.create_test(1)['id'], lambda t: t['state'] == 'finished')
    finished = ids(listing(api, '?state=finished')['results'])
    first = listing(api, '?state=finished&page=1&pageSize=1')
    assert first['count'] == len(finished) and isinstance(first['next'], str)
    assert 'state=finished' in first['next']
    nxt = api.get(urljoin(api.base + '/', first['next'])).json()
    assert ids(nxt['results']) == finished[1:2]


def test_delete_pending_aborts_and_delete_final_removes(api: RestApi) -> None:
    pending = api.create_test(500)
    res = api.delete(f"/api/taskqueue/{pending['id']}")
    assert res.status_code == 200, res.text
    aborted = res.json()
    assert aborted['id'] == pending['id']
    assert aborted['state'] == 'failed' and aborted['status'] == 'Aborted'
    assert api.task(pending['id'])['status'] == 'Aborted'

    res = api.delete(f"/api/taskqueue/{pending['id']}")      # now failed: removed
    assert res.status_code == 204 and res.content == b''
    assert api.get(f"/api/taskqueue/{pending['id']}").status_code == 404
    assert api.delete(f"/api/taskqueue/{pending['id']}").status_code == 404

    done = api.create_test(1)
    api.wait_task(done['id'], lambda t: t['state'] == 'finished')
    res = api.delete(f"/api/taskqueue/{done['id']}")
    assert res.status_code == 204 and res.content == b''
    res = api.get(f"/api/taskqueue/{done['id']}")
    assert res.status_code == 404
    assert str(done['id']) in detail(res)


def test_openattic_prefix_serves_the_same_routes(api: RestApi) -> None:
    res = api.post('/openattic/api/taskqueue/test_task', {'times': 300})
    assert res.status_code == 201, res.text
    task = res.json()
    assert task['created_by'] == REST_ADMIN and task['params'] == {'times': 300}
    location = urlparse(urljoin(api.base + '/', res.headers['Location'])).path
    assert location in (f"/api/taskqueue/{task['id']}",
                        f"/openattic/api/taskqueue/{task['id']}"), location
    try:
        stable = ('id', 'kind', 'description', 'params', 'created', 'created_by')
        alias = api.get(f"/openattic/api/taskqueue/{task['id']}").json()
        plain = api.get(f"/api/taskqueue/{task['id']}").json()
        assert {k: alias[k] for k in stable} == {k: plain[k] for k in stable}
        pend = listing(api, '?state=pending', prefix='/openattic')
        assert task['id'] in ids(pend['results'])
        paged = listing(api, '?state=pending&page=1&pageSize=1', prefix='/openattic')
        assert len(paged['results']) == 1 and paged['count'] == pend['count']
        assert api.get('/openattic/api/taskqueue?state=bogus').status_code == 400
        assert api.get('/openattic/api/taskqueue/987654321').status_code == 404
        assert api.get('/openattic/api/taskqueue', user=None).status_code == 401
        res = api.delete(f"/openattic/api/taskqueue/{task['id']}")
        assert res.status_code == 200 and res.json()['status'] == 'Aborted'
        res = api.delete(f"/openattic/api/taskqueue/{task['id']}")
        assert res.status_code == 204
    finally:
        abort(api, task['id'])


def test_rest_and_cli_show_the_same_task(api: RestApi) -> None:
    task = api.create_test(1)
    rest = api.wait_task(task['id'], lambda t: t['state'] == 'finished')
    cli = api.cluster.ceph('bgtask', 'show', str(task['id']), json_out=True)
    assert cli == rest
    assert task['id'] in ids(api.cluster.ceph('bgtask', 'ls', 'finished', json_out=True))


# 200 for an identical pending task and 409 for a conflicting one: test_pg_num.test_refusals
# (the test kind never merges).


# ---------------------------------------------------------------------- OpenAPI

HTTP_METHODS = ('get', 'post', 'put', 'patch', 'delete', 'head', 'options')
REQUIRED_OPERATIONS = {('/api/auth/login', 'post'), ('/api/auth/logout', 'post'),
                       ('/api/auth/me', 'get'), ('/api/taskqueue', 'get'),
                       ('/api/taskqueue/{}', 'get'), ('/api/taskqueue/{}', 'delete'),
                       ('/api/taskqueue/test_task', 'post')}


def normalized(path: str) -> str:
    return re.sub(r'\{[^}]*\}', '{}', path)


WALK_POOL = 'bgtasks-walk'
# Values that make a documented request valid on this cluster (a real pool, a short task).
HINTS = {'pool': WALK_POOL, 'times': 1, 'pg_num': 16}


def example(schema: Dict[str, Any], spec: Dict[str, Any]) -> Any:
    """A minimal value for a JSON schema (enough for a documented request to be valid)."""
    if '$ref' in schema:
        node: Any = spec
        for part in schema['$ref'].lstrip('#/').split('/'):
            node = node[part]
        return example(node, spec)
    if 'example' in schema:
        return schema['example']
    if 'default' in schema:
        return schema['default']
    if schema.get('enum'):
        return schema['enum'][0]
    kind = schema.get('type')
    if kind == 'object' or 'properties' in schema:
        return {k: HINTS[k] if k in HINTS else example(v, spec)
                for k, v in schema.get('properties', {}).items()
                if k in schema.get('required', [])}
    if kind == 'integer':
        return max(1, int(schema.get('minimum', 1)))
    if kind == 'number':
        return float(schema.get('minimum', 1))
    if kind == 'boolean':
        return False
    if kind == 'array':
        return []
    return 'x'


def documented(responses: Dict[str, Any], status: int) -> bool:
    return (str(status) in responses or f'{status // 100}XX' in responses
            or f'{status // 100}xx' in responses or 'default' in responses)


def test_openapi_lists_every_route_and_each_answers_as_documented(api: RestApi) -> None:
    spec = api.get('/api/openapi.json', user=None).json()
    paths: Dict[str, Dict[str, Any]] = spec['paths']
    operations = {(normalized(p), m) for p, item in paths.items() for m in item
                  if m in HTTP_METHODS}
    assert REQUIRED_OPERATIONS <= operations, REQUIRED_OPERATIONS - operations
    server = (spec.get('servers') or [{'url': ''}])[0].get('url', '')
    prefix = urlparse(server).path.rstrip('/')

    api.cluster.ceph('osd', 'pool', 'create', WALK_POOL, '8')
    api.cluster.ceph('osd', 'pool', 'set', WALK_POOL, 'pg_autoscale_mode', 'off')
    api.cluster.ceph('osd', 'pool', 'application', 'enable', WALK_POOL, 'rbd')
    created: List[int] = []
    problems: List[str] = []
    try:
        for path, item in paths.items():
            for method, op in item.items():
                if method not in HTTP_METHODS:
                    continue
                params = list(item.get('parameters', [])) + list(op.get('parameters', []))
                url = path
                for name in re.findall(r'\{([^}]*)\}', path):
                    if 'pool' in name:
                        value = WALK_POOL
                    else:
                        task = api.create_test(1000)
                        created.append(task['id'])
                        value = str(task['id'])
                    url = url.replace('{%s}' % name, value)
                query = {p['name']: example(p.get('schema', {}), spec) for p in params
                         if p.get('in') == 'query' and p.get('required')}
                body: Any = None
                if normalized(path) == '/api/auth/login':
                    body = {'username': REST_ADMIN, 'password': PASSWORDS[REST_ADMIN]}
                elif normalized(path) == '/api/taskqueue/test_task':
                    body = {'times': 1}
                elif 'requestBody' in op:
                    content = op['requestBody'].get('content', {})
                    schema = content.get('application/json', {}).get('schema', {})
                    body = example(schema, spec)
                # Logging out must not end the token the other requests use.
                token = api.new_token(REST_ADMIN) if 'logout' in path else \
                    api.token(REST_ADMIN)
                res = api.request(method.upper(), prefix + url, token=token, params=query,
                                  json=body)
                if res.status_code == 201 and isinstance(res.json(), dict):
                    created.append(int(res.json()['id']))
                where = f'{method.upper()} {path} -> {res.status_code}'
                if res.status_code in (404, 405) or res.status_code >= 500:
                    problems.append(f'{where}: {res.text[:200]}')
                elif not documented(op.get('responses', {}), res.status_code):
                    problems.append(f'{where} not among documented '
                                    f'{sorted(op.get("responses", {}))}')
                if not no_traceback(res.text):
                    problems.append(f'{where}: traceback in body')
    finally:
        for task_id in created:
            abort(api, task_id)
        api.cluster.ceph('osd', 'pool', 'rm', WALK_POOL, WALK_POOL,
                         '--yes-i-really-really-mean-it', check=False)
    assert not problems, '\n'.join(problems)


# ---------------------------------------------------------------------- metrics

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (-?[0-9.eE+-]+|NaN|[+-]Inf)'
                    r'( -?[0-9]+)?$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> List[Tuple[str, Dict[str, str], float]]:
    samples = []
    for line in text.splitlines():
        if not line.strip() or line.startswith('#'):
            continue
        m = SAMPLE.match(line)
        assert m, f'not Prometheus text format: {line!r}'
        labels = dict(LABEL.findall(m.group(3) or ''))
        samples.append((m.group(1), labels, float(m.group(4))))
    return samples


def test_metrics_in_prometheus_text_format(api: RestApi) -> None:
    done = api.create_test(1)
    api.wait_task(done['id'], lambda t: t['state'] == 'finished')
    pending = api.create_test(1000)
    try:
        res = api.get('/metrics', user=None)
        assert res.status_code == 200, res.text[:300]
        assert res.headers.get('Content-Type', '').startswith('text/plain'), res.headers
        samples = parse_metrics(res.text)
        names = {name for name, _, _ in samples}
        assert any(line.startswith('bgtasks_tasks{') for line in res.text.splitlines())
        typed = set(re.findall(r'^# TYPE (\S+) ', res.text, re.M))
        untyped = [n for n in names if not any(n.startswith(t) for t in typed)]
        assert not untyped, f'samples without a # TYPE line: {untyped}'

        def counts() -> Dict[str, float]:
            text = api.get('/metrics', user=None).text
            return {lbl['status']: v for name, lbl, v in parse_metrics(text)
                    if name == 'bgtasks_tasks' and lbl.get('kind') == 'test'}

        by_status = counts()
        assert by_status.get('Finished', 0) >= 1, by_status
        for name, labels, _ in samples:
            if name == 'bgtasks_tasks':
                assert set(labels) >= {'kind', 'status'}, labels

        def agrees() -> bool:
            rest = listing(api)['results']
            want = {s: float(sum(1 for t in rest if t['kind'] == 'test' and t['status'] == s))
                    for s in ('Finished', 'Aborted', 'Running', 'Not Started')}
            got = counts()
            return all(got.get(s, 0.0) == n for s, n in want.items())

        api.cluster.wait_for(agrees, timeout=15, interval=1,
                             what='bgtasks_tasks to match the task list')
        assert any('step' in n and ('duration' in n or 'seconds' in n) for n in names), names
        assert any('fail' in n for n in names), names
    finally:
        abort(api, pending['id'])


# ---------------------------------------------------------------------- TLS

def stored_pem(cluster: DevCluster, key: str) -> str:
    return str(cluster.ceph('config-key', 'get', f'mgr/bgtasks/{key}'))


def test_generated_certificate_is_stored_and_verifies(api: RestApi, tmp_path: Path) -> None:
    crt = stored_pem(api.cluster, 'crt')
    key = stored_pem(api.cluster, 'key')
    assert crt.lstrip().startswith('-----BEGIN CERTIFICATE-----'), crt[:80]
    assert re.match(r'\s*-----BEGIN (RSA |EC )?PRIVATE KEY-----', key), 'no PEM key'
    assert api.served_cert() == ssl.PEM_cert_to_DER_cert(crt)

    ca = tmp_path / 'ca.pem'
    ca.write_text(crt)
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.check_hostname = False
    assert tls_get(ctx, api.port, '/api/openapi.json') == 200


# ---------------------------------------------------------------------- rebinding (last)

def test_ssl_false_serves_plain_http_without_a_mgr_restart(api: RestApi) -> None:
    cluster = api.cluster
    active = cluster.active_mgr()
    pid = cluster.mgr_pid(active)
    cluster.ceph('config', 'set', 'mgr', 'mgr/bgtasks/ssl', 'false')
    try:
        api.scheme = 'http'
        api.wait_answers(timeout=30)
        wait_service_url(cluster, f'http://127.0.0.1:{api.port}/')
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            api.served_cert()
        res = api.login(REST_ADMIN)
        assert res.status_code == 200
        attrs = cookie_attrs(res.headers.get('Set-Cookie', ''))
        assert 'httponly' in attrs and 'samesite=strict' in attrs, attrs
        assert 'secure' not in attrs, attrs          # a Secure cookie never comes back on http
        s = api.session()
        s.post(api.url('/api/auth/login'), timeout=30,
               json={'username': REST_ADMIN, 'password': PASSWORDS[REST_ADMIN]})
        assert s.get(api.url('/api/auth/me'), timeout=30).status_code == 200
        assert cluster.active_mgr() == active and cluster.mgr_pid(active) == pid
    finally:
        # `config set`, not `config rm`: Pacific's mgr keeps serving a module the old value
        # of a removed option (seen with the selftest module too).
        cluster.ceph('config', 'set', 'mgr', 'mgr/bgtasks/ssl', 'true')
        api.scheme = 'https'
    api.wait_answers(timeout=30)
    wait_service_url(cluster, f'https://127.0.0.1:{api.port}/')
    assert cluster.mgr_pid(active) == pid


def test_port_change_rebinds_without_a_mgr_restart(api: RestApi) -> None:
    cluster = api.cluster
    active = cluster.active_mgr()
    pid = cluster.mgr_pid(active)
    old, new = api.port, free_port()
    cluster.ceph('config', 'set', 'mgr', 'mgr/bgtasks/server_port', str(new))
    try:
        api.port = new
        api.wait_answers(timeout=30)
        cluster.wait_for(lambda: port_refuses(old), timeout=15, interval=0.2,
                         what=f'old port {old} to be released')
        wait_service_url(cluster, f'https://127.0.0.1:{new}/')
        assert api.get('/api/taskqueue').status_code == 200
        assert cluster.active_mgr() == active and cluster.mgr_pid(active) == pid
    finally:
        cluster.ceph('config', 'set', 'mgr', 'mgr/bgtasks/server_port', str(old))
        api.port = old
    api.wait_answers(timeout=30)
    cluster.wait_for(lambda: port_refuses(new), timeout=15, interval=0.2,
                     what=f'port {new} to be released')
    wait_service_url(cluster, f'https://127.0.0.1:{old}/')


def openssl_cert(folder: Path) -> Tuple[Path, Path]:
    crt, key = folder / 'operator.crt', folder / 'operator.key'
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
                    '-subj', '/CN=bgtasks operator test', '-addext',
                    'subjectAltName=IP:127.0.0.1', '-keyout', str(key), '-out', str(crt)],
                   check=True, capture_output=True, timeout=60)
    return crt, key


def bounce_module(api: RestApi) -> float:
    """Disable (the port must be freed) and enable the module; returns seconds to free."""
    cluster = api.cluster
    cluster.ceph('mgr', 'module', 'disable', 'bgtasks')
    t0 = time.monotonic()
    try:
        cluster.wait_for(lambda: port_refuses(api.port), timeout=10, interval=0.05,
                         what=f'port {api.port} to be freed after disabling the module')
        freed = time.monotonic() - t0
        for _ in range(10):                              # nobody (a standby) takes it up
            time.sleep(0.3)
            assert port_refuses(api.port), 'port answers while the module is disabled'
    finally:
        cluster.ceph('mgr', 'module', 'enable', 'bgtasks')
    cluster.wait_module_answers(timeout=90)
    api.wait_answers(timeout=90)
    return freed


def test_operator_certificate_and_module_disable_enable(api: RestApi, tmp_path: Path) -> None:
    cluster = api.cluster
    generated = api.served_cert()
    crt, key = openssl_cert(tmp_path)
    cluster.ceph('config-key', 'set', 'mgr/bgtasks/crt', '-i', str(crt))
    cluster.ceph('config-key', 'set', 'mgr/bgtasks/key', '-i', str(key))
    operator = ssl.PEM_cert_to_DER_cert(crt.read_text())
    freed = bounce_module(api)
    print(f'port freed {freed:.2f}s after `mgr module disable`')
    assert sha256(api.served_cert()) == sha256(operator)
    assert stored_pem(cluster, 'crt').strip() == crt.read_text().strip()
    ctx = ssl.create_default_context(cafile=str(crt))       # hostname checked too
    assert tls_get(ctx, api.port, '/api/openapi.json') == 200
    assert api.get('/api/taskqueue').status_code == 200

    # Without a stored certificate the module makes (and stores) a new one.
    cluster.ceph('config-key', 'rm', 'mgr/bgtasks/crt')
    cluster.ceph('config-key', 'rm', 'mgr/bgtasks/key')
    bounce_module(api)
    fresh = api.served_cert()
    assert fresh not in (operator, generated)
    assert ssl.PEM_cert_to_DER_cert(stored_pem(cluster, 'crt')) == fresh
    assert no_module_error(cluster)
