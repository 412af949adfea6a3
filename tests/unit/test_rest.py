"""The REST layer without a server: routing, auth, errors, paging, OpenAPI."""
import json
import os
from typing import Any, Dict, Optional

import pytest
from conftest import Harness

from mgr_bgtasks.frontend import Frontend
from mgr_bgtasks.kind import Context, Finish, Outcome, TaskKind
from mgr_bgtasks.rest import Request, Response, RestApi, openapi_document
from mgr_bgtasks.validators import Choice, Integer, Name
from mgr_bgtasks.users import Users


FRONTEND = os.path.join(os.path.dirname(__file__), '..', '..', 'frontend')


class Api:
    def __init__(self) -> None:
        self.h = Harness()
        self.users = Users(self.h.store, self.h.clock, sleep=lambda s: None,
                           max_failures=3, lockout_seconds=60)
        self.users.load()
        self.users.create('admin', 'admin', 'pw-admin')
        self.users.create('viewer', 'read-only', 'pw-viewer')
        self.api = RestApi(self.h.engine, self.users, lambda: 'm 1\n', Frontend(FRONTEND))

    def token(self, user: str = 'admin') -> str:
        return self.users.login(user, f'pw-{user}')['token']

    def call(self, method: str, path: str, body: Any = None, token: Optional[str] = None,
             ctype: str = 'application/json', query: str = '',
             raw: Optional[bytes] = None) -> Response:
        headers: Dict[str, str] = {'content-type': ctype}
        if token:
            headers['authorization'] = f'Bearer {token}'
        from urllib.parse import parse_qs
        data = raw if raw is not None else (b'' if body is None else json.dumps(body).encode())
        return self.api.handle(Request(method, path, parse_qs(query), headers, data))


@pytest.fixture
def api() -> Api:
    return Api()


def test_login_me_logout(api: Api) -> None:
    r = api.call('POST', '/api/auth/login', {'username': 'admin', 'password': 'pw-admin'})
    assert r.status == 200 and r.body['role'] == 'admin'
    cookie = dict(r.headers)['Set-Cookie']
    assert 'HttpOnly' in cookie and 'SameSite=Strict' in cookie
    token = r.body['token']
    assert api.call('GET', '/api/auth/me', token=token).body == {'username': 'admin',
                                                                 'role': 'admin'}
    assert api.call('POST', '/api/auth/logout', token=token).status == 204
    assert api.call('GET', '/api/auth/me', token=token).status == 401


def test_cookie_authenticates_too(api: Api) -> None:
    req = Request('GET', '/api/auth/me', {}, {}, b'', cookie_token=api.token('viewer'))
    assert api.api.handle(req).body['username'] == 'viewer'


def test_wrong_password_then_lockout(api: Api) -> None:
    for _ in range(3):
        r = api.call('POST', '/api/auth/login', {'username': 'admin', 'password': 'x'})
        assert r.status == 401
    r = api.call('POST', '/api/auth/login', {'username': 'admin', 'password': 'pw-admin'})
    assert r.status == 429 and 'too many failed logins' in r.body['detail']
    api.h.clock.advance(61)
    r = api.call('POST', '/api/auth/login', {'username': 'admin', 'password': 'pw-admin'})
    assert r.status == 200


def test_sessions_expire_and_survive_a_reload(api: Api) -> None:
    token = api.token()
    reloaded = Users(api.h.store, api.h.clock)
    reloaded.load()
    assert reloaded.whoami(token)['username'] == 'admin'
    api.h.clock.advance(api.users.session_ttl + 1)
    assert api.call('GET', '/api/auth/me', token=token).status == 401


def test_passwords_and_tokens_are_not_stored_in_clear(api: Api) -> None:
    token = api.token()
    dump = json.dumps(api.h.store.data)
    assert 'pw-admin' not in dump and token not in dump


def test_every_api_route_but_login_needs_auth(api: Api) -> None:
    for route in api.api.routes:
        if route.access == 'public':
            continue
        path = route.template.replace('{task_id}', '1')
        assert api.call(route.method, path, {}).status == 401, route.template


def test_read_only_users_cannot_write(api: Api) -> None:
    viewer = api.token('viewer')
    assert api.call('POST', '/api/taskqueue/test_task', {'times': 1}, viewer).status == 403
    task, _ = api.h.engine.submit('test', {'times': 1}, 'x')
    assert api.call('DELETE', f"/api/taskqueue/{task['id']}", token=viewer).status == 403
    assert api.call('GET', f"/api/taskqueue/{task['id']}", token=viewer).status == 200


def test_create_get_delete_on_both_prefixes(api: Api) -> None:
    token = api.token()
    for prefix in ('/api/taskqueue', '/openattic/api/taskqueue'):
        r = api.call('POST', f'{prefix}/test_task', {'times': 5}, token)
        assert r.status == 201 and r.body['created_by'] == 'admin'
        assert dict(r.headers)['Location'] == f"{prefix}/{r.body['id']}"
        got = api.call('GET', f"{prefix}/{r.body['id']}", token=token)
        assert got.body['id'] == r.body['id']
        aborted = api.call('DELETE', f"{prefix}/{r.body['id']}", token=token)
        assert aborted.status == 200 and aborted.body['status'] == 'Aborted'
        assert api.call('DELETE', f"{prefix}/{r.body['id']}", token=token).status == 204
        assert api.call('GET', f"{prefix}/{r.body['id']}", token=token).status == 404


@pytest.mark.parametrize('body,status,words', [
    ({'times': 0}, 400, 'times'), ({'times': 100001}, 400, 'times'),
    ({'times': '5'}, 400, 'times'), ({'times': True}, 400, 'times'),
    ({'times': 2.5}, 400, 'times'), ({}, 400, 'times'), ([1], 400, 'JSON object'),
])
def test_bad_bodies(api: Api, body: Any, status: int, words: str) -> None:
    r = api.call('POST', '/api/taskqueue/test_task', body, api.token())
    assert r.status == status and words in r.body['detail']


def test_bad_requests(api: Api) -> None:
    token = api.token()
    post = '/api/taskqueue/test_task'
    assert api.call('POST', post, raw=b'{', token=token).status == 400
    assert api.call('POST', post, raw=b'\xff\xfe', token=token).status == 400
    assert api.call('POST', post, {'times': 1}, token, ctype='text/plain').status == 415
    assert api.call('POST', post, raw=b' ' * 70000, token=token).status == 413
    assert api.call('GET', '/api/nothing', token=token).status == 404
    assert api.call('GET', '/api/taskqueue/abc', token=token).status == 404
    r = api.call('PUT', '/api/taskqueue', token=token)
    assert r.status == 405 and dict(r.headers)['Allow'] == 'GET'
    for q in ('state=running', 'status=Done', 'page=0', 'page=x', 'pageSize=1001'):
        r = api.call('GET', '/api/taskqueue', token=token, query=q)
        assert r.status == 400, q


def test_list_filters_and_pages_newest_first(api: Api) -> None:
    token = api.token()
    ids = [api.h.engine.submit('test', {'times': 1}, 'x')[0]['id'] for _ in range(5)]
    r = api.call('GET', '/api/taskqueue', token=token)
    assert [t['id'] for t in r.body['results']] == ids[::-1]
    assert r.body['next'] is None and r.body['previous'] is None
    r = api.call('GET', '/api/taskqueue', token=token, query='state=pending&page=2&pageSize=2')
    assert r.body['count'] == 5 and [t['id'] for t in r.body['results']] == [ids[2], ids[1]]
    assert 'page=3' in r.body['next'] and 'page=1' in r.body['previous']
    assert 'state=pending' in r.body['next']
    r = api.call('GET', '/api/taskqueue', token=token, query='status=Running')
    assert r.body['count'] == 0


def test_openapi_lists_every_route(api: Api) -> None:
    doc = openapi_document(api.api.routes)
    assert doc['openapi'].startswith('3.')
    for route in api.api.routes:
        op = doc['paths'][route.template][route.method.lower()]
        assert op['responses']
    r = api.call('GET', '/api/openapi.json')
    assert r.status == 200 and r.body == doc


def test_a_bug_answers_500_without_a_traceback(api: Api) -> None:
    def boom(*a: Any) -> Any:
        raise RuntimeError('secret internals')
    api.api.engine.page = boom   # type: ignore[assignment]
    r = api.call('GET', '/api/taskqueue', token=api.token())
    assert r.status == 500 and 'secret' not in json.dumps(r.body)


def test_users_validation(api: Api) -> None:
    from mgr_bgtasks.errors import Exists, Invalid, NotFound
    with pytest.raises(Invalid, match='role must be one of'):
        api.users.create('bob', 'root', 'pw')
    with pytest.raises(Invalid, match='username'):
        api.users.create('bob smith', 'admin', 'pw')
    with pytest.raises(Invalid, match='password is empty'):
        api.users.create('bob', 'admin', '')
    with pytest.raises(Exists):
        api.users.create('admin', 'admin', 'pw')
    with pytest.raises(NotFound):
        api.users.remove('nobody')
    token = api.token('viewer')
    api.users.set_password('viewer', 'new')
    assert api.call('GET', '/api/auth/me', token=token).status == 401   # sessions ended
    assert api.users.login('viewer', 'new')['role'] == 'read-only'
    api.users.remove('viewer')
    assert [u['username'] for u in api.users.list()] == ['admin']


def test_static_files_and_no_escape_from_the_folder(api: Api) -> None:
    r = api.call('GET', '/')
    assert r.status == 200 and r.content_type.startswith('text/html')
    for path in ('/static/../README.md', '/static/%2e%2e/README.md', '/static/nope.js',
                 '/static//etc/passwd'):
        assert api.call('GET', path).status == 404, path


def test_odd_inputs_are_refused_not_crashed(api: Api) -> None:
    token = api.token()
    deep = b'[' * 5000 + b']' * 5000
    r = api.call('POST', '/api/taskqueue/test_task', raw=deep, token=token)
    assert r.status == 400 and 'nested too deeply' in r.body['detail']
    task, _ = api.h.engine.submit('test', {'times': 1}, 'x')
    for odd in ('\uff11', '1 ', '0x1', '+1', '1.0', '9' * 40):
        assert api.call('GET', f'/api/taskqueue/{odd}', token=token).status == 404, odd
    assert api.call('GET', '/api/taskqueue', token=token, query='page=%EF%BC%91').status == 400
    r = api.api.handle(Request('POST', '/api/auth/logout', {},
                               {'authorization': f'Bearer {token}'}, b''))
    assert r.status == 204                      # no body, no content type: fine for logout


def test_failed_logins_are_forgotten_a_lockout_period_later(api: Api) -> None:
    # Any client may try any name: what is kept of each must not outlive the lockout.
    for i in range(20):
        api.call('POST', '/api/auth/login', {'username': f'nobody-{i}', 'password': 'x'})
    for _ in range(2):
        api.call('POST', '/api/auth/login', {'username': 'admin', 'password': 'x'})
    api.h.clock.advance(59)
    api.users.expire_sessions()
    assert len(api.users._failures) == 21
    api.h.clock.advance(2)
    api.users.expire_sessions()
    assert api.users._failures == {}
    # Two failures a lockout period ago do not count towards a new lockout.
    r = api.call('POST', '/api/auth/login', {'username': 'admin', 'password': 'x'})
    assert r.status == 401
    r = api.call('POST', '/api/auth/login', {'username': 'admin', 'password': 'pw-admin'})
    assert r.status == 200


def test_static_files_cost_one_copy_however_they_are_spelled(api: Api) -> None:
    # Anyone may ask for /static/: each spelling of a file must not keep a copy of it.
    first = api.call('GET', '/static/style.css')
    assert first.status == 200
    for i in range(30):
        r = api.call('GET', f'/static/x{i}/../style.css')
        assert r.status == 200 and r.body == first.body
    assert api.call('GET', '/static/../README.md').status == 404
    assert len(api.api._frontend._cache) == 1


class Echo(TaskKind):
    """A kind only this test knows: what registering it alone gives the REST API."""
    name = 'echo'
    rest_name = 'echo_back'
    summary = 'Say it back'
    fields = (Name('word', required=True, what='a word'),
              Integer('times', low=1, high=3, default=1), Choice('tone', choices=('loud',)))
    refusals = {409: 'already echoing'}

    def describe(self, params: Dict[str, Any]) -> str:
        return f"Echoing {params['word']}"

    def step(self, ctx: Context, params: Dict[str, Any], state: Dict[str, Any]) -> Outcome:
        return Finish(params['word'] * params['times'])


def test_a_registered_kind_gets_its_route_schema_and_validation_from_itself() -> None:
    api = Api()
    api.h.kinds['echo'] = Echo()
    api.h.restart()
    api.api = RestApi(api.h.engine, api.users, lambda: '', Frontend(FRONTEND))
    token = api.token()
    for prefix in ('/api/taskqueue', '/openattic/api/taskqueue'):
        r = api.call('POST', f'{prefix}/echo_back', {'word': 'hi', 'extra': 1}, token)
        assert r.status == 201, r.body
        assert r.body['params'] == {'word': 'hi', 'times': 1, 'tone': None}
        again = api.call('POST', f'{prefix}/echo_back', {'word': 'hi'}, token)
        assert again.status == 200 and again.body['id'] == r.body['id']   # merged
        api.h.engine.delete(r.body['id'], abort_pending=True, deleted_by='admin')
    for body, message in (({}, "word must be a word, not None"),
                          ({'word': 'hi', 'times': 4},
                           'times must be an integer from 1 to 3, not 4'),
                          ({'word': 'hi', 'times': True},
                           'times must be an integer from 1 to 3, not True'),
                          ({'word': 'hi', 'tone': 'soft'},
                           "tone may only be 'loud', not 'soft'")):
        r = api.call('POST', '/api/taskqueue/echo_back', body, token)
        assert (r.status, r.body['detail']) == (400, message)
    op = openapi_document(api.api.routes)['paths']['/api/taskqueue/echo_back']['post']
    assert op['operationId'] == 'create_echo_back' and op['summary'] == 'Say it back'
    assert op['requestBody']['content']['application/json']['schema'] == {
        'type': 'object', 'required': ['word'], 'properties': {
            'word': {'type': 'string', 'minLength': 1},
            'times': {'type': 'integer', 'minimum': 1, 'maximum': 3, 'default': 1},
            'tone': {'type': 'string', 'enum': ['loud']}}}
    assert set(op['responses']) == {'200', '201', '400', '401', '403', '409', '413', '415'}


def test_the_known_kinds_keep_their_paths_and_operation_ids(api: Api) -> None:
    doc = openapi_document(api.api.routes)
    for prefix, suffix in (('/api/taskqueue', ''), ('/openattic/api/taskqueue', '_oa')):
        for path in ('test_task', 'set_pg_num', 'rbd_perf', 'rbd_du'):
            op = doc['paths'][f'{prefix}/{path}']['post']
            assert op['operationId'] == f'create_{path}{suffix}'
            assert op['responses']['201']['content']['application/json']['schema'] == \
                {'$ref': '#/components/schemas/Task'}
    pg = doc['paths']['/api/taskqueue/set_pg_num']['post']
    assert pg['requestBody']['content']['application/json']['schema']['required'] == \
        ['pool', 'pg_num']
    assert {'404', '409'} <= set(pg['responses'])
    assert '200' not in doc['paths']['/api/taskqueue/test_task']['post']['responses']
