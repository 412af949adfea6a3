"""The REST API: one route table, from which requests are dispatched and the OpenAPI
document is made, so the two cannot disagree. Each task kind adds its create route, built
from what the kind says of itself.

Nothing here knows CherryPy: `server.py` turns a CherryPy request into a `Request`
and a `Response` back. Refusals are the engine's errors, mapped to HTTP status here,
once; the service functions are the same ones the CLI calls.
"""
import json
import logging
import re
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import unquote, urlencode

from . import inventory

from .engine import Engine
from .errors import BgtaskError, Forbidden, Invalid, NotFound
from .frontend import Frontend
from .kind import TaskKind
from .task import STATES, STATUSES
from .users import ADMIN, Users

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
BODY_TOO_LARGE = f'the body is larger than {MAX_BODY} bytes'
COOKIE = 'bgtasks_session'
TASKQUEUE_PREFIXES = ('/api/taskqueue', '/openattic/api/taskqueue')
MAX_PAGE_SIZE = 1000
# The web tab loads only its own files and talks only to this server: no inline script or
# style, no other origin, no framing (it works unchanged under this policy).
PAGE_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
DIGITS = re.compile(r'[0-9]{1,12}')
DEFAULT_PAGE_SIZE = 100


@dataclass
class Request:
    method: str
    path: str
    query: Dict[str, List[str]]
    headers: Dict[str, str]          # lower-case names
    body: bytes = b''
    cookie_token: Optional[str] = None
    secure: bool = False


@dataclass
class Response:
    status: int
    body: Any = None                 # JSON-able, or str / bytes for other bodies
    content_type: str = 'application/json'
    headers: List[Tuple[str, str]] = field(default_factory=list)


class HttpError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


# Who may call a route: anyone, any logged-in user, or admins only.
PUBLIC, READ, WRITE = 'public', 'read', 'write'

TASK_SCHEMA = {'$ref': '#/components/schemas/Task'}
ERROR = {'description': 'refused', 'content': {'application/json': {
    'schema': {'$ref': '#/components/schemas/Error'}}}}


@dataclass
class Route:
    method: str
    template: str
    handler: str
    access: str
    summary: str
    responses: Dict[int, str]
    body: Optional[Dict[str, Any]] = None
    query: Tuple[Tuple[str, Dict[str, Any]], ...] = ()
    kind: str = ''                   # a create route: the kind it creates
    pattern: 're.Pattern[str]' = field(init=False)

    def __post_init__(self) -> None:
        regex = re.sub(r'\{(\w+)\}', r'(?P<\1>[^/]+)', self.template)
        self.pattern = re.compile(f'^{regex}$')


def _create_route(prefix: str, kind: TaskKind) -> Route:
    responses = {201: 'the new task', 400: 'bad field', 401: 'not logged in',
                 403: 'read-only user', 413: 'body too large', 415: 'not JSON', **kind.refusals}
    if kind.merge_identical:
        responses[200] = 'an identical pending task'
    return Route('POST', f'{prefix}/{kind.route}', 'create_task', WRITE, kind.summary,
                 dict(sorted(responses.items())), body=kind.body_schema(), kind=kind.name)


def routes(kinds: Dict[str, TaskKind]) -> List[Route]:
    table = [
        Route('POST', '/api/auth/login', 'login', PUBLIC, 'Log in; sets the session cookie',
              {200: 'logged in', 400: 'bad request', 401: 'wrong username or password',
               415: 'not JSON', 429: 'locked after repeated failures'},
              body={'type': 'object', 'required': ['username', 'password'],
                    'properties': {'username': {'type': 'string'},
                                   'password': {'type': 'string'}}}),
        Route('POST', '/api/auth/logout', 'logout', READ, 'End this session',
              {204: 'logged out', 401: 'not logged in', 415: 'not JSON'}),
        Route('GET', '/api/auth/me', 'me', READ, 'Who is logged in',
              {200: 'the user', 401: 'not logged in'}),
        Route('GET', '/api/openapi.json', 'openapi', PUBLIC, 'This document', {200: 'OpenAPI 3'}),
        Route('GET', '/api/pools', 'list_pools', READ,
              'Pools with their PG counts, targets and PG states',
              {200: 'the pools', 401: 'not logged in'}),
        Route('GET', '/api/pools/{pool}/images', 'list_images', READ, "A pool's RBD images",
              {200: 'the images', 400: 'not an RBD pool', 401: 'not logged in',
               404: 'no such pool'}),
        Route('GET', '/metrics', 'metrics', PUBLIC, 'Prometheus metrics', {200: 'text format'}),
    ]
    for prefix in TASKQUEUE_PREFIXES:
        table += [
            Route('GET', prefix, 'list_tasks', READ, 'List tasks, newest first',
                  {200: 'a page of tasks', 400: 'bad query', 401: 'not logged in'},
                  query=(('state', {'type': 'string', 'enum': list(STATES)}),
                         ('status', {'type': 'string', 'enum': list(STATUSES)}),
                         ('page', {'type': 'integer', 'minimum': 1}),
                         ('pageSize', {'type': 'integer', 'minimum': 1,
                                       'maximum': MAX_PAGE_SIZE}))),
            Route('GET', prefix + '/{task_id}', 'get_task', READ, 'One task',
                  {200: 'the task', 401: 'not logged in', 404: 'no such task'}),
            Route('DELETE', prefix + '/{task_id}', 'delete_task', WRITE,
                  'Delete a finished or failed task; abort a pending one (nothing is undone)',
                  {200: 'the pending task, now failed/Aborted', 204: 'deleted',
                   401: 'not logged in', 403: 'read-only user', 404: 'no such task'}),
        ]
        table += [_create_route(prefix, kind) for kind in kinds.values()]
    return table


class RestApi:
    def __init__(self, engine: Engine, users: Users, metrics: Callable[[], str],
                 frontend: Frontend) -> None:
        self.engine = engine
        self.users = users
        self._metrics = metrics
        self._frontend = frontend
        self.routes = routes(engine.kinds)

    # ------------------------------------------------------------ dispatch

    def handle(self, req: Request) -> Response:
        try:
            return self._dispatch(req)
        except HttpError as e:
            return Response(e.status, {'detail': str(e)})
        except BgtaskError as e:
            return Response(e.http_status, {'detail': str(e)})
        except Exception:
            # A bug of ours: the traceback goes to the mgr log, never to the client.
            log.error('%s %s failed:\n%s', req.method, req.path, traceback.format_exc())
            return Response(500, {'detail': 'internal error; see the mgr log'})

    def _dispatch(self, req: Request) -> Response:
        if req.method == 'GET' and req.path in ('/', '/index.html'):
            return Response(200, self._frontend.index(), 'text/html; charset=utf-8',
                            headers=[('Content-Security-Policy', PAGE_CSP)])
        if req.method == 'GET' and req.path.startswith('/static/'):
            found = self._frontend.static(req.path[len('/static/'):])
            if found is None:
                raise NotFound(f'no such resource: {req.path}')
            return Response(200, found[0], found[1],
                            headers=[('Cache-Control', 'max-age=3600')])
        path = req.path.rstrip('/') or '/'
        allowed = []
        for route in self.routes:
            m = route.pattern.match(path)
            if not m:
                continue
            if route.method != req.method:
                allowed.append(route.method)
                continue
            user = self._authorize(route, req)
            args = m.groupdict()
            if route.method == 'POST':
                # A POST that takes no body (logout) needs no content type either.
                args['body'] = self._json_body(req) if route.body is not None else {}
            if route.kind:
                args['kind'] = route.kind
            handler: Callable[..., Response] = getattr(self, route.handler)
            return handler(req, user, **args)
        if allowed:
            return Response(405, {'detail': f'{req.method} not allowed here'},
                            headers=[('Allow', ', '.join(sorted(set(allowed))))])
        raise NotFound(f'no such resource: {req.path}')

    def _authorize(self, route: Route, req: Request) -> Optional[Dict[str, str]]:
        if route.access == PUBLIC:
            return None
        user = self.users.whoami(_token(req))
        if route.access == WRITE and user['role'] != ADMIN:
            raise Forbidden(f"user {user['username']!r} is read-only")
        return user

    def _json_body(self, req: Request) -> Dict[str, Any]:
        ctype = req.headers.get('content-type', '').split(';')[0].strip().lower()
        if ctype != 'application/json':
            raise HttpError(415, 'send the body as Content-Type: application/json')
        if len(req.body) > MAX_BODY:
            raise HttpError(413, BODY_TOO_LARGE)
        if not req.body.strip():
            return {}
        try:
            body = json.loads(req.body)
        except (ValueError, UnicodeDecodeError) as e:
            raise Invalid(f'the body is not valid JSON: {e}')
        except RecursionError:
            raise Invalid('the body is nested too deeply')
        if not isinstance(body, dict):
            raise Invalid('the body must be a JSON object')
        return body

    # ------------------------------------------------------------ auth

    def login(self, req: Request, user: None, body: Dict[str, Any]) -> Response:
        username, password = body.get('username'), body.get('password')
        for name, value in (('username', username), ('password', password)):
            if not isinstance(value, str) or not value:
                raise Invalid(f'{name} must be a non-empty string')
        assert isinstance(username, str) and isinstance(password, str)
        session = self.users.login(username, password)
        cookie = (f"{COOKIE}={session['token']}; Path=/; HttpOnly; SameSite=Strict; "
                  f'Max-Age={int(self.users.session_ttl)}' + ('; Secure' if req.secure else ''))
        return Response(200, session, headers=[('Set-Cookie', cookie)])

    def logout(self, req: Request, user: Dict[str, str], body: Dict[str, Any]) -> Response:
        token = _token(req)
        assert token is not None
        self.users.logout(token)
        cookie = f'{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0'
        return Response(204, headers=[('Set-Cookie', cookie)])

    def me(self, req: Request, user: Dict[str, str]) -> Response:
        return Response(200, user)

    # ------------------------------------------------------------ tasks

    def list_tasks(self, req: Request, user: Dict[str, str]) -> Response:
        state = _query(req, 'state')
        status = _query(req, 'status')
        page = _int_query(req, 'page', 1, None)
        size = _int_query(req, 'pageSize', 1, MAX_PAGE_SIZE)
        if page is None:
            count, tasks = self.engine.page(state, status)
            return Response(200, {'count': count, 'next': None, 'previous': None,
                                  'results': tasks})
        per_page = size or DEFAULT_PAGE_SIZE
        count, tasks = self.engine.page(state, status, (page - 1) * per_page, per_page)

        def link(p: int) -> Optional[str]:
            if p < 1 or (p - 1) * per_page >= count:
                return None
            params = {k: v[0] for k, v in req.query.items()}
            params.update(page=str(p), pageSize=str(per_page))
            return f'{req.path}?{urlencode(params)}'
        return Response(200, {'count': count, 'next': link(page + 1),
                              'previous': link(page - 1) if page > 1 else None,
                              'results': tasks})

    def get_task(self, req: Request, user: Dict[str, str], task_id: str) -> Response:
        return Response(200, self.engine.get(_task_id(task_id)))

    def delete_task(self, req: Request, user: Dict[str, str], task_id: str) -> Response:
        task = self.engine.delete(_task_id(task_id), abort_pending=True,
                                  deleted_by=user['username'])
        return Response(204) if task is None else Response(200, task)

    def create_task(self, req: Request, user: Dict[str, str], body: Dict[str, Any],
                    kind: str) -> Response:
        task, created = self.engine.submit(kind, body, user['username'])
        prefix = req.path.rsplit('/', 1)[0]
        return Response(201 if created else 200, task,
                        headers=[('Location', f"{prefix}/{task['id']}")])

    # ------------------------------------------------------------ inventory

    def list_pools(self, req: Request, user: Dict[str, str]) -> Response:
        return Response(200, inventory.pools(self.engine.cluster))

    def list_images(self, req: Request, user: Dict[str, str], pool: str) -> Response:
        return Response(200, inventory.rbd_images(self.engine.cluster, unquote(pool)))

    # ------------------------------------------------------------ documents

    def metrics(self, req: Request, user: None) -> Response:
        return Response(200, self._metrics(), 'text/plain; version=0.0.4; charset=utf-8')

    def openapi(self, req: Request, user: None) -> Response:
        return Response(200, openapi_document(self.routes))


def _token(req: Request) -> Optional[str]:
    auth = req.headers.get('authorization', '')
    if auth.lower().startswith('bearer '):
        return auth[7:].strip() or None
    return req.cookie_token


def _query(req: Request, name: str) -> Optional[str]:
    values = req.query.get(name)
    return values[-1] if values else None


def _int_query(req: Request, name: str, low: int, high: Optional[int]) -> Optional[int]:
    raw = _query(req, name)
    if raw is None:
        return None
    value = int(raw) if DIGITS.fullmatch(raw) else low - 1
    if value < low or (high is not None and value > high):
        bound = f'from {low} to {high}' if high else f'at least {low}'
        raise Invalid(f'{name} must be an integer {bound}, not {raw!r}')
    return value


def _task_id(raw: str) -> int:
    # ASCII digits only: int() would also take other scripts' digits ('１' is 1).
    if not DIGITS.fullmatch(raw):
        raise NotFound(f'task {raw!r} not found')
    return int(raw)


def openapi_document(table: List[Route]) -> Dict[str, Any]:
    paths: Dict[str, Dict[str, Any]] = {}
    for r in table:
        name = f"create_{r.template.rsplit('/', 1)[1]}" if r.kind else r.handler
        op: Dict[str, Any] = {
            'summary': r.summary,
            'operationId': f"{name}{'_oa' if r.template.startswith('/openattic') else ''}",
            'responses': {str(code): (ERROR if code >= 400 else {'description': text})
                          for code, text in r.responses.items()},
        }
        if r.access != PUBLIC:
            op['security'] = [{'bearer': []}, {'cookie': []}]
        params = [{'name': name, 'in': 'query', 'required': False, 'schema': schema}
                  for name, schema in r.query]
        if '{task_id}' in r.template:
            params.append({'name': 'task_id', 'in': 'path', 'required': True,
                           'schema': {'type': 'integer'}})
        if '{pool}' in r.template:
            params.append({'name': 'pool', 'in': 'path', 'required': True,
                           'schema': {'type': 'string'}})
        if params:
            op['parameters'] = params
        if r.body is not None:
            op['requestBody'] = {'required': True,
                                 'content': {'application/json': {'schema': r.body}}}
        if r.handler in ('get_task', 'create_task'):
            for code in r.responses:
                if code < 300:
                    op['responses'][str(code)]['content'] = {
                        'application/json': {'schema': TASK_SCHEMA}}
        paths.setdefault(r.template, {})[r.method.lower()] = op
    nullable_time = {'type': 'string', 'format': 'date-time', 'nullable': True}
    return {
        'openapi': '3.0.3',
        'info': {'title': 'bgtasks', 'version': '1.0',
                 'description': 'Background tasks of a Ceph cluster (ceph-mgr module bgtasks)'},
        'paths': paths,
        'components': {
            'securitySchemes': {
                'bearer': {'type': 'http', 'scheme': 'bearer'},
                'cookie': {'type': 'apiKey', 'in': 'cookie', 'name': COOKIE}},
            'schemas': {
                'Error': {'type': 'object', 'properties': {'detail': {'type': 'string'}}},
                'Task': {'type': 'object', 'properties': {
                    'id': {'type': 'integer'}, 'kind': {'type': 'string'},
                    'description': {'type': 'string'},
                    'state': {'type': 'string', 'enum': list(STATES)},
                    'status': {'type': 'string', 'enum': list(STATUSES)},
                    'status_text': {'type': 'string', 'nullable': True},
                    'percent': {'type': 'integer', 'minimum': 0, 'maximum': 100},
                    'estimated': nullable_time, 'created': nullable_time,
                    'last_modified': nullable_time, 'started': nullable_time,
                    'ended': nullable_time, 'created_by': {'type': 'string'},
                    'params': {'type': 'object'}, 'result': {}, 'error': {
                        'type': 'string', 'nullable': True}}},
            },
        },
    }
