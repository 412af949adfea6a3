"""The few ways a request can be refused.

Raised where the problem is found; `module.py` maps them to an errno for the CLI
and the REST layer maps them to an HTTP status, each in one place.
"""
import errno


class BgtaskError(Exception):
    """Base of every refusal a caller can act on."""
    errno = errno.EIO
    http_status = 500


class NotFound(BgtaskError):
    errno = errno.ENOENT
    http_status = 404


class Invalid(BgtaskError):
    errno = errno.EINVAL
    http_status = 400


class Conflict(BgtaskError):
    """The request contradicts the task's state (e.g. deleting a pending task unconfirmed)."""
    errno = errno.EPERM
    http_status = 409


class Busy(BgtaskError):
    """Another pending task already works on the same object."""
    errno = errno.EBUSY
    http_status = 409


class NotReady(BgtaskError):
    """The module is still loading its tasks from the store."""
    errno = errno.EAGAIN
    http_status = 503


class Exists(BgtaskError):
    errno = errno.EEXIST
    http_status = 409


class Unauthorized(BgtaskError):
    """No valid session or token, or a wrong password."""
    errno = errno.EACCES
    http_status = 401


class Forbidden(BgtaskError):
    """Authenticated, but the role does not allow it."""
    errno = errno.EACCES
    http_status = 403


class Locked(BgtaskError):
    """Too many failed logins for this user; it is locked for a while."""
    errno = errno.EBUSY
    http_status = 429


class Unavailable(BgtaskError):
    """The store did not take a write in time (pool full, OSDs down): try again later."""
    errno = errno.EAGAIN
    http_status = 503
