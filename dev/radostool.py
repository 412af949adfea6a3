"""RADOS chores for tests and benchmarks, run with the cluster's own release's Python
(`DevCluster.script('radostool.py', ...)`; CEPH_CONF names the cluster):
    radostool.py omap POOL NAMESPACE           every object's omap as JSON {obj: {key: value}}
    radostool.py setomap POOL NAMESPACE OBJECT KEY VALUE
                                               one omap entry, as written
    radostool.py images POOL PREFIX COUNT      COUNT RBD images of 4 MiB, PREFIX0..PREFIXn
    radostool.py kvset FIRST COUNT PENDING     COUNT finished test-task records of an older
                                               bgtasks (no version field) in config-key,
                                               ids FIRST.., the last PENDING of them not started
    radostool.py writes POOL NAMESPACE COUNT CLIENTS SIZE
                                               COUNT omap writes of SIZE bytes from CLIENTS
                                               threads, one key each; prints writes/s
"""
import json
import sys
import threading
import time
from typing import Any, Dict


def _connect() -> Any:
    import rados
    r = rados.Rados(conffile='')
    r.connect()
    return r


def omap(pool: str, namespace: str) -> Dict[str, Dict[str, str]]:
    import rados
    r = _connect()
    try:
        io = r.open_ioctx(pool)
        io.set_namespace(namespace)
        result: Dict[str, Dict[str, str]] = {}
        for obj in [o.key for o in io.list_objects()]:
            entries: Dict[str, str] = {}
            after = ''
            while True:
                with rados.ReadOpCtx() as op:
                    it, _ = io.get_omap_vals(op, after, '', 512)
                    io.operate_read_op(op, obj)
                    page = [(k, bytes(v).decode()) for k, v in it]
                entries.update(page)
                if len(page) < 512:
                    break
                after = page[-1][0]
            result[obj] = entries
        return result
    finally:
        r.shutdown()


def setomap(pool: str, namespace: str, obj: str, key: str, value: str) -> None:
    import rados
    r = _connect()
    try:
        io = r.open_ioctx(pool)
        io.set_namespace(namespace)
        with rados.WriteOpCtx() as op:
            io.set_omap(op, (key,), (value.encode(),))
            io.operate_write_op(op, obj)
    finally:
        r.shutdown()


def images(pool: str, prefix: str, count: int) -> None:
    import rbd
    r = _connect()
    try:
        io = r.open_ioctx(pool)
        for i in range(count):
            rbd.RBD().create(io, f'{prefix}{i}', 4 << 20)
    finally:
        r.shutdown()


def writes(pool: str, namespace: str, count: int, clients: int, size: int) -> float:
    import rados
    r = _connect()
    try:
        io = r.open_ioctx(pool)
        io.set_namespace(namespace)
        value = b'x' * size
        next_key = iter(range(count))
        lock = threading.Lock()

        def client() -> None:
            while True:
                with lock:
                    key = next(next_key, None)
                if key is None:
                    return
                with rados.WriteOpCtx() as op:
                    io.set_omap(op, (f'task/{key:010d}',), (value,))
                    io.operate_write_op(op, f'raw.{key // 4096:06d}')

        began = time.monotonic()
        threads = [threading.Thread(target=client) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rate = count / (time.monotonic() - began)
        for obj in [o.key for o in io.list_objects() if o.key.startswith('raw.')]:
            io.remove_object(obj)
        return rate
    finally:
        r.shutdown()


def kvset(first: int, count: int, pending: int) -> None:
    r = _connect()
    try:
        now = time.time()
        for task_id in range(first, first + count):
            done = task_id < first + count - pending
            record = {'id': task_id, 'kind': 'test', 'description': 'Test task counting 1 round',
                      'params': {'times': 1}, 'created': now, 'created_by': 'old-bgtasks',
                      'status': 'Finished' if done else 'Not Started',
                      'percent': 100.0 if done else 0.0, 'last_modified': now,
                      'started': now if done else None, 'ended': now if done else None,
                      'result': {'rounds': 1} if done else None, 'error': None,
                      'status_text': None,
                      'step': {} if done else {'done': 0, 'counting': False}}
            cmd = {'prefix': 'config-key set', 'key': f'mgr/bgtasks/task/{task_id:010d}',
                   'val': json.dumps(record)}
            ret, _, err = r.mon_command(json.dumps(cmd), b'', timeout=30)
            if ret != 0:
                raise RuntimeError(f'config-key set: {err}')
    finally:
        r.shutdown()


if __name__ == '__main__':
    verb = sys.argv[1]
    if verb == 'omap':
        print(json.dumps(omap(sys.argv[2], sys.argv[3])))
    elif verb == 'setomap':
        setomap(*sys.argv[2:7])
    elif verb == 'images':
        images(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif verb == 'kvset':
        kvset(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    elif verb == 'writes':
        print(json.dumps({'writes_per_second': writes(sys.argv[2], sys.argv[3], int(sys.argv[4]),
                                                      int(sys.argv[5]), int(sys.argv[6]))}))
    else:
        sys.exit(f'unknown verb {verb!r}')
