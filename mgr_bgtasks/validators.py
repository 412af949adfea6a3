"""The checks task requests share, each the one source of its refusal message and of its
part of the REST body schema.

A kind lists its request's fields; `check_fields` validates a request against them and
`body_schema` describes them to the OpenAPI document, so the two cannot disagree.
"""
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from .cluster import Cluster, find_pool
from .errors import Invalid, NotFound

# A bound known only at run time (a Ceph option) is a function of the cluster.
Bound = Union[int, Callable[[Cluster], int], None]


@dataclass(frozen=True)
class Field:
    name: str
    required: bool = False
    # Only for a field that is not required: what an absent field (or null) becomes.
    default: Any = None

    def check(self, cluster: Cluster, value: Any) -> Any:
        raise NotImplementedError

    def schema(self) -> Dict[str, Any]:
        raise NotImplementedError


@dataclass(frozen=True)
class Integer(Field):
    low: int = 1
    high: Bound = None

    def check(self, cluster: Cluster, value: Any) -> Any:
        high = self.high(cluster) if callable(self.high) else self.high
        # bool is an int subclass; JSON true must not pass as 1.
        if isinstance(value, bool) or not isinstance(value, int) or value < self.low \
                or (high is not None and value > high):
            bound = f'from {self.low} to {high}' if high is not None else \
                f'of at least {self.low}'
            raise Invalid(f'{self.name} must be an integer {bound}, not {value!r}')
        return value

    def schema(self) -> Dict[str, Any]:
        schema: Dict[str, Any] = {'type': 'integer', 'minimum': self.low}
        if isinstance(self.high, int):
            schema['maximum'] = self.high
        return schema


@dataclass(frozen=True)
class Name(Field):
    """A non-empty string naming something in the cluster (a pool, an image)."""
    what: str = 'a name'

    def check(self, cluster: Cluster, value: Any) -> Any:
        if not isinstance(value, str) or not value:
            raise Invalid(f'{self.name} must be {self.what}, not {value!r}')
        return value

    def schema(self) -> Dict[str, Any]:
        return {'type': 'string', 'minLength': 1}


@dataclass(frozen=True)
class Choice(Field):
    choices: Tuple[str, ...] = ()

    def check(self, cluster: Cluster, value: Any) -> Any:
        if value not in self.choices:
            allowed = ' or '.join(repr(c) for c in self.choices)
            raise Invalid(f'{self.name} may only be {allowed}, not {value!r}')
        return value

    def schema(self) -> Dict[str, Any]:
        return {'type': 'string', 'enum': list(self.choices)}


def check_fields(fields: Sequence[Field], cluster: Cluster,
                 params: Dict[str, Any]) -> Dict[str, Any]:
    """The request's fields, checked and with their defaults; others are dropped."""
    out = {}
    for f in fields:
        value = params.get(f.name)
        if value is None and not f.required:
            out[f.name] = f.default
        else:
            out[f.name] = f.check(cluster, value)
    return out


def body_schema(fields: Sequence[Field]) -> Dict[str, Any]:
    properties = {}
    for f in fields:
        properties[f.name] = f.schema()
        if f.default is not None:
            properties[f.name]['default'] = f.default
    schema: Dict[str, Any] = {'type': 'object', 'properties': properties}
    required = [f.name for f in fields if f.required]
    if required:
        schema['required'] = required
    return schema


def is_rbd(pool: Dict[str, Any]) -> bool:
    return 'rbd' in pool.get('application_metadata', {})


def rbd_pool(cluster: Cluster, name: str) -> Dict[str, Any]:
    found = find_pool(cluster, name)
    if found is None:
        raise NotFound(f"pool '{name}' not found")
    if not is_rbd(found):
        raise Invalid(f"pool '{name}' is not an RBD pool (no rbd application)")
    return found


def rbd_pools(cluster: Cluster, name: Optional[str]) -> List[Dict[str, Any]]:
    """The named RBD pool, or every RBD pool when no name is given."""
    if name is not None:
        return [rbd_pool(cluster, name)]
    pools = [p for p in cluster.pools() if is_rbd(p)]
    if not pools:
        raise Invalid('there is no RBD pool (none has the rbd application)')
    return pools
