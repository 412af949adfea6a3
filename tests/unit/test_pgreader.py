from mgr_bgtasks.pgreader import mon_host, pool_of


def test_mon_host_names_every_address_of_every_mon() -> None:
    mon_map = {'mons': [
        {'name': 'a', 'public_addrs': {'addrvec': [
            {'type': 'v2', 'addr': '10.0.0.1:3300', 'nonce': 0},
            {'type': 'v1', 'addr': '10.0.0.1:6789', 'nonce': 0}]}},
        {'name': 'b', 'public_addr': '10.0.0.2:6789/0'}]}
    assert mon_host(mon_map) == \
        '[v2:10.0.0.1:3300/0,v1:10.0.0.1:6789/0],10.0.0.2:6789/0'


def test_pool_of_names_the_pool_and_the_maps_epoch() -> None:
    osd_map = {'epoch': 42, 'pools': [{'pool': 1, 'pool_name': 'a', 'pg_num_target': 8},
                                      {'pool': 2, 'pool_name': 'b', 'pg_num_target': 32}]}
    assert pool_of(osd_map, 'b') == {'pool': 2, 'pool_name': 'b', 'pg_num_target': 32,
                                     'epoch': 42}
    assert pool_of(osd_map, 'c') is None
