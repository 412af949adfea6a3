"""What a PG task reads of one pool, at a cost that follows the pool.

A module gets per-PG stats only as a dump of every PG in the cluster (`get('pg_stats')`),
and a pool's pg_num only in a dump of the whole OSD map (`get('osd_map')`, which on
Tentacle also scores the read balance of every pool by mapping all its PGs), both built as
Python objects under the GIL every module shares. The mgr's own `pg ls-by-pool` filters
in C++ and sends back the pool's PGs alone, and the mon's `osd pool get` one pool's
counts, but the mgr's key is refused the first: its caps name no mgr commands. So bgtasks
asks both as a client of its own, `client.bgtasks`, allowed to read the maps and that one
mgr command, nothing else. Its key is made (or fetched) with `auth get-or-create`, which
the mgr's key may do (cephadm makes its daemons' keys that way), and is kept only in
memory.

`pg ls-by-pool` is asked for its plain table: its JSON carries some 60 fields a PG and
takes ten times as long to parse (and the mgr longer to write) as the five columns the
check needs. The table is read only where every row reads exactly as expected; else
the JSON serves, from then on.
"""
import errno
import json
import re
import threading
from typing import Any, Callable, Dict, List, Match, Optional, Tuple

import rados

ENTITY = 'client.bgtasks'
CAPS = ['mon', 'allow r', 'mgr', 'allow command "pg ls-by-pool"']
TIMEOUT = 5
# How a table writes CRUSH_ITEM_NONE (a missing shard of an erasure-coded PG), and how
# its JSON does.
NONE_OSD = ('NONE', 2147483647)
_OSDS = re.compile(r'\[((?:\d+|NONE)(?:,(?:\d+|NONE))*)?\]p-?\d+')
# The columns read from the table, none of which (nor any before them) holds a space,
# and how each of their cells must read.
COLUMNS = {'PG': re.compile(r'\d+\.[0-9a-f]+'), 'STATE': re.compile(r'[a-z_+]+'),
           'REPORTED': re.compile(r'(\d+):\d+'), 'UP': _OSDS, 'ACTING': _OSDS}

TABLE_UNREAD = "pg ls-by-pool's table did not read as expected; reading its JSON instead"


class Unavailable(Exception):
    pass


def pg_table(text: str) -> Optional[List[Dict[str, Any]]]:
    """The PGs of `pg ls-by-pool`'s plain table, with the fields of its JSON that the
    check reads (pgid, state, up, acting, reported_epoch); None unless each row reads as
    expected."""
    lines = text.splitlines()
    if not lines:
        return None
    header = lines[0].split()
    if not all(c in header for c in COLUMNS):
        return None
    at = {c: header.index(c) for c in COLUMNS}
    pgs = []
    for line in lines[1:]:
        if not line.strip():
            break       # the table ends before a note on omap statistics
        cells = line.split()
        if len(cells) <= max(at.values()):
            return None
        read: Dict[str, Match[str]] = {}
        for column, i in at.items():
            cell = COLUMNS[column].fullmatch(cells[i])
            if cell is None:
                return None
            read[column] = cell
        pgs.append({'pgid': cells[at['PG']], 'state': cells[at['STATE']],
                    'reported_epoch': int(read['REPORTED'].group(1)),
                    'up': _osds(read['UP'].group(1)), 'acting': _osds(read['ACTING'].group(1))})
    return pgs


def _osds(listed: Optional[str]) -> List[int]:
    return [NONE_OSD[1] if o == NONE_OSD[0] else int(o) for o in (listed or '').split(',') if o]


def mon_host(mon_map: Dict[str, Any]) -> str:
    """mon_host for a client, from the mgr's monmap (the mgr's own config may name the
    mons by DNS or not at all)."""
    hosts = []
    for mon in mon_map.get('mons', []):
        addrs = mon.get('public_addrs', {}).get('addrvec', [])
        if addrs:
            hosts.append('[' + ','.join(f"{a['type']}:{a['addr']}/{a.get('nonce', 0)}"
                                        for a in addrs) + ']')
        elif mon.get('public_addr'):
            hosts.append(mon['public_addr'])
    return ','.join(hosts)


def pool_of(osd_map: Dict[str, Any], pool_name: str) -> Optional[Dict[str, Any]]:
    """The named pool's entry of an OSD map's dump, with the map's epoch."""
    for pool in osd_map.get('pools', []):
        if pool['pool_name'] == pool_name:
            return {**pool, 'epoch': int(osd_map['epoch'])}
    return None


class PgReader:
    def __init__(self, mon_command: Callable[[Dict[str, Any]], str],
                 mon_map: Callable[[], Dict[str, Any]], warn: Callable[[str], None]) -> None:
        self._mon_command = mon_command
        self._mon_map = mon_map
        self._warn = warn
        self._lock = threading.Lock()
        self._client: Optional[Any] = None
        self.tables = True

    def pool_pg_stats(self, pool_name: str) -> List[Dict[str, Any]]:
        cmd = {'prefix': 'pg ls-by-pool', 'poolstr': pool_name}
        if self.tables:
            _, out = self._command('mgr', cmd, fmt='plain')
            pgs = pg_table(out.decode('utf-8', 'replace'))
            if pgs is not None:
                return pgs
            self.tables = False
            self._warn(f"{TABLE_UNREAD}: {out[:300]!r}")
        _, out = self._command('mgr', cmd)
        data = json.loads(out)
        # A dict with pg_ready since Nautilus; a bare list before.
        return list(data['pg_stats'] if isinstance(data, dict) else data)

    def pool_counts(self, pool_name: str) -> Optional[Dict[str, Any]]:
        """pool_id, pg_num, pgp_num and pg_autoscale_mode of one pool as the mon has them
        now (it may be an epoch ahead of the mgr's map); None if there is no such pool."""
        ret, out = self._command('mon', {'prefix': 'osd pool get', 'pool': pool_name,
                                         'var': 'all'}, missing_ok=True)
        if ret == -errno.ENOENT:
            return None
        pool = json.loads(out)
        return {'pool_id': int(pool['pool_id']), 'pg_num': int(pool['pg_num']),
                'pgp_num': int(pool['pgp_num']),
                'pg_autoscale_mode': pool.get('pg_autoscale_mode')}

    def pool_entry(self, pool_name: str,
                   epoch: Optional[int] = None) -> Optional[Dict[str, Any]]:
        """The pool's entry of the mon's OSD map now or at `epoch`, with the map's epoch;
        None if there is no such pool or the mon no longer keeps that map. The mon builds
        the dump (on Tentacle scoring every pool's read balance) in its own process; this
        one only parses it."""
        cmd: Dict[str, Any] = {'prefix': 'osd dump'}
        if epoch is not None:
            cmd['epoch'] = epoch
        ret, out = self._command('mon', cmd, missing_ok=True)
        return None if ret == -errno.ENOENT else pool_of(json.loads(out), pool_name)

    def _command(self, to: str, cmd: Dict[str, Any], missing_ok: bool = False,
                 fmt: str = 'json') -> Tuple[int, bytes]:
        """(ret, out) of a command to the mon or the mgr as client.bgtasks; raises
        Unavailable unless it succeeded (or, with missing_ok, found nothing: ENOENT)."""
        client = self._connected()
        send = client.mgr_command if to == 'mgr' else client.mon_command
        try:
            ret, out, err = send(json.dumps({**cmd, 'format': fmt}), b'', timeout=TIMEOUT)
        except rados.Error as e:
            self.close()
            raise Unavailable(f"{cmd['prefix']} as {ENTITY}: {e}")
        if ret != 0 and not (missing_ok and ret == -errno.ENOENT):
            raise Unavailable(f"{cmd['prefix']} as {ENTITY}: {err} ({ret})")
        return ret, out

    def _connected(self) -> Any:
        with self._lock:
            if self._client is not None:
                return self._client
            try:
                out = self._mon_command({'prefix': 'auth get-or-create', 'entity': ENTITY,
                                         'caps': CAPS, 'format': 'json'})
                key = json.loads(out)[0]['key']
            except Exception as e:
                raise Unavailable(f'no key for {ENTITY}: {e}')
            client = rados.Rados(rados_id=ENTITY.split('.', 1)[1], conf={
                'mon_host': mon_host(self._mon_map()), 'key': key, 'keyring': '',
                # A client inside the mgr process: no socket or log file of its own.
                'admin_socket': '', 'log_to_file': 'false'})
            try:
                client.connect(timeout=TIMEOUT)
            except rados.Error as e:
                client.shutdown()
                raise Unavailable(f'{ENTITY} could not connect: {e}')
            self._client = client
            return client

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.shutdown()
