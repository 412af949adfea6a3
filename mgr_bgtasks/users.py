"""REST users and their sessions, kept in the module's store so both survive failover.

Passwords are stored only as scrypt hashes with a salt of their own; tokens only as
SHA-256 digests, so reading the store reveals neither.
"""
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from .clock import Clock
from .errors import Exists, Invalid, Locked, NotFound, Unauthorized
from .store import Store

ADMIN = 'admin'
READ_ONLY = 'read-only'
ROLES = (ADMIN, READ_ONLY)
USER_PREFIX = 'user/'
SESSION_PREFIX = 'session/'
USERNAME_RE = re.compile(r'^[A-Za-z0-9_.@-]{1,64}$')
# scrypt cost: ~50 ms and 16 MiB per check; hashlib releases the GIL while it runs.
SCRYPT = {'n': 2 ** 14, 'r': 8, 'p': 1}
# Failed logins of one user are answered this much later each (capped), then locked.
SLOWDOWN_STEP = 0.25
SLOWDOWN_MAX = 2.0


def _hash(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# Checked against when the user does not exist, so a miss costs as long as a hit.
_DUMMY_SALT = b'bgtasks-no-such-user'


class Users:
    def __init__(self, store: Store, clock: Clock, session_ttl: float = 28800.0,
                 max_failures: int = 5, lockout_seconds: float = 300.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._store = store
        self._clock = clock
        self._sleep = sleep
        self.session_ttl = session_ttl
        self.max_failures = max_failures
        self.lockout_seconds = lockout_seconds
        self._lock = threading.Lock()
        self._users: Dict[str, Dict[str, Any]] = {}
        self._sessions: Dict[str, Dict[str, Any]] = {}
        # username -> (failed logins, locked until, forgotten at); memory only, like a rate
        # limit. Kept a lockout period after the last failure only: any client may try any
        # name, and a record kept for each name ever tried would grow without end.
        self._failures: Dict[str, Tuple[int, float, float]] = {}

    def load(self) -> None:
        users = {k[len(USER_PREFIX):]: json.loads(v)
                 for k, v in self._store.scan(USER_PREFIX).items()}
        sessions = {k[len(SESSION_PREFIX):]: json.loads(v)
                    for k, v in self._store.scan(SESSION_PREFIX).items()}
        with self._lock:
            self._users, self._sessions = users, sessions

    # ------------------------------------------------------------ users

    def create(self, username: str, role: str, password: str) -> Dict[str, str]:
        if not USERNAME_RE.match(username):
            raise Invalid('username must be 1 to 64 letters, digits or _.@-')
        if role not in ROLES:
            raise Invalid(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        record = self._record(role, password)
        with self._lock:
            if username in self._users:
                raise Exists(f'user {username!r} exists')
            self._users[username] = record
        self._store.put(USER_PREFIX + username, json.dumps(record))
        return {'username': username, 'role': role}

    def remove(self, username: str) -> None:
        with self._lock:
            if self._users.pop(username, None) is None:
                raise NotFound(f'user {username!r} not found')
        self._store.put(USER_PREFIX + username, None)
        self._end_sessions_of(username)

    def set_password(self, username: str, password: str) -> None:
        with self._lock:
            user = self._users.get(username)
            if user is None:
                raise NotFound(f'user {username!r} not found')
        record = self._record(user['role'], password)
        with self._lock:
            self._users[username] = record
        self._store.put(USER_PREFIX + username, json.dumps(record))
        self._end_sessions_of(username)

    def list(self) -> List[Dict[str, str]]:
        with self._lock:
            return [{'username': u, 'role': r['role']} for u, r in sorted(self._users.items())]

    def _record(self, role: str, password: str) -> Dict[str, Any]:
        if not password:
            raise Invalid('the password is empty (give it in a file with -i)')
        salt = secrets.token_bytes(16)
        return {'role': role, 'salt': salt.hex(), 'hash': _hash(password, salt, **SCRYPT).hex(),
                **SCRYPT}

    # ------------------------------------------------------------ sessions

    def login(self, username: str, password: str) -> Dict[str, str]:
        now = self._clock.now()
        with self._lock:
            failures, locked_until, forget_at = self._failures.get(username, (0, 0.0, 0.0))
            user = self._users.get(username)
        if forget_at <= now:
            failures = 0
        if locked_until > now:
            raise Locked(f'too many failed logins for {username!r}; '
                         f'try again in {int(locked_until - now) + 1} s')
        if user is None:
            _hash(password, _DUMMY_SALT, **SCRYPT)
            ok = False
        else:
            digest = _hash(password, bytes.fromhex(user['salt']),
                           user['n'], user['r'], user['p'])
            ok = hmac.compare_digest(digest.hex(), user['hash'])
        if not ok:
            failures += 1
            locked = failures >= self.max_failures
            with self._lock:
                until = now + self.lockout_seconds
                self._failures[username] = (0, until, until) if locked else (failures, 0.0, until)
            self._sleep(min(SLOWDOWN_MAX, SLOWDOWN_STEP * failures))
            raise Unauthorized('wrong username or password')
        with self._lock:
            self._failures.pop(username, None)
        token = secrets.token_urlsafe(32)
        session = {'username': username, 'expires': now + self.session_ttl}
        self._store.put(SESSION_PREFIX + _digest(token), json.dumps(session))
        with self._lock:
            self._sessions[_digest(token)] = session
        assert user is not None
        return {'username': username, 'role': user['role'], 'token': token}

    def logout(self, token: str) -> None:
        key = _digest(token)
        with self._lock:
            found = self._sessions.pop(key, None)
        if found is not None:
            self._store.put(SESSION_PREFIX + key, None)

    def whoami(self, token: Optional[str]) -> Dict[str, str]:
        """The user of a session token, or Unauthorized."""
        if not token:
            raise Unauthorized('log in first (POST /api/auth/login)')
        key = _digest(token)
        with self._lock:
            session = self._sessions.get(key)
            user = self._users.get(session['username']) if session else None
        if session is None or user is None:
            raise Unauthorized('the session is not valid; log in again')
        if session['expires'] <= self._clock.now():
            self.logout(token)
            raise Unauthorized('the session expired; log in again')
        return {'username': session['username'], 'role': user['role']}

    def expire_sessions(self) -> None:
        """Forgets expired sessions, and failed logins a lockout period old."""
        now = self._clock.now()
        with self._lock:
            gone = [k for k, s in self._sessions.items() if s['expires'] <= now]
            for k in gone:
                del self._sessions[k]
            for name in [n for n, f in self._failures.items() if f[2] <= now]:
                del self._failures[name]
        for k in gone:
            self._store.put(SESSION_PREFIX + k, None)

    def _end_sessions_of(self, username: str) -> None:
        with self._lock:
            gone = [k for k, s in self._sessions.items() if s['username'] == username]
            for k in gone:
                del self._sessions[k]
        for k in gone:
            self._store.put(SESSION_PREFIX + k, None)
