"""A standby mgr given an address of its own sends clients to the active one."""
import requests
from conftest import RestApi
from devcluster import DevCluster, free_port


def test_standby_redirects_to_the_active_mgr(cluster: DevCluster, api: RestApi) -> None:
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
