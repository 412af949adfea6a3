"""A standby mgr given an address of its own sends clients to the active one."""
import requests
from conftest import RestApi
from devcluster import DevCluster, free_port


def test_standby_redirects_to_the_active_mgr(cluster: DevCluster, api: RestApi) -> None:
    cluster.wait_mgrs()             # an earlier test's failed mgr may still be starting
    standby = cluster.standby_mgrs()[0]
    port = free_port()
    key = f'mgr/bgtasks/{standby}/server_port'
    cluster.ceph('config', 'set', 'mgr', key, str(port))
    try:
        def redirected() -> requests.Response:
            try:
                r = requests.get(f'https://127.0.0.1:{port}/api/taskqueue?state=pending',
                                 verify=False, allow_redirects=False, timeout=5)
            except requests.RequestException:
                return None  # type: ignore[return-value]
            return r if r.status_code == 303 else None  # type: ignore[return-value]
        r = cluster.wait_for(redirected, timeout=40, what='the standby to answer')
        active = cluster.ceph('mgr', 'services', json_out=True)['bgtasks'].rstrip('/')
        assert r.headers['Location'] == f'{active}/api/taskqueue'
        assert 'active mgr' in r.json()['detail']
        # The active mgr kept its own port: the per-mgr setting is the standby's alone.
        assert api.get('/api/auth/me').status_code == 200
    finally:
        cluster.ceph('config', 'rm', 'mgr', key)


def test_active_gets_a_port_the_standby_holds(cluster: DevCluster, api: RestApi) -> None:
    """The race of a port change with both mgrs on one host, made certain: the standby has
    bound the port before the active is told to use it. The active publishes no URL while
    it cannot bind, so the standby stands aside and the active's next try gets the port."""
    cluster.wait_mgrs()
    active, standby = cluster.active_mgr(), cluster.standby_mgrs()[0]
    pid, old, port = cluster.mgr_pid(active), api.port, free_port()
    keys = [f'mgr/bgtasks/{standby}/server_port', f'mgr/bgtasks/{active}/server_port']
    cluster.ceph('config', 'set', 'mgr', keys[0], str(port))
    try:
        def status() -> int:
            try:
                return requests.get(f'https://127.0.0.1:{port}/api/auth/me', verify=False,
                                    allow_redirects=False, timeout=5).status_code
            except requests.RequestException:
                return 0
        cluster.wait_for(lambda: status() == 303, timeout=40, what='the standby to hold it')
        cluster.ceph('config', 'set', 'mgr', keys[1], str(port))
        api.port = port
        # 401, not 303: the active answers (it wants a login), not the standby's redirect.
        cluster.wait_for(lambda: status() == 401, timeout=60, interval=1,
                         what=f'the active mgr to serve port {port}')
        assert api.get('/api/auth/me').status_code == 200
        assert cluster.active_mgr() == active and cluster.mgr_pid(active) == pid
    finally:
        # `config rm` does not reach a running Pacific mgr: set the old port, then remove.
        for key in keys:
            cluster.ceph('config', 'set', 'mgr', key, str(old))
            cluster.ceph('config', 'rm', 'mgr', key)
        api.port = old
    api.wait_answers(timeout=60)
