from mgr_bgtasks.pgreader import mon_host, pg_table, pool_of

PACIFIC = """\
PG    OBJECTS  DEGRADED  MISPLACED  UNFOUND  BYTES  OMAP_BYTES*  OMAP_KEYS*  LOG  STATE                 SINCE  VERSION  REPORTED  UP           ACTING       SCRUB_STAMP                      DEEP_SCRUB_STAMP
3.0        12         0          0        0   4096            0           0   12  active+clean             2m     19'12    231:409  [1,0,2]p1    [1,0,2]p1    2026-12-07T05:28:27.003030+0000  2026-12-07T05:28:27.003030+0000
3.1f        0         0          0        0      0            0           0    0  peering                  0s      0'0      231:7   [0,NONE,2]p0 [2,1]p2      2026-12-07T05:28:27.003030+0000  2026-12-07T05:28:27.003030+0000
3.2         0         0          0        0      0            0           0    0  unknown                  0s      0'0        0:0   []p-1        []p-1        0.000000                         0.000000

* NOTE: Omap statistics are gathered during deep scrub and may be inaccurate soon afterwards depending on utilization. See http://docs.ceph.com/en/latest/dev/placement-group/#omap-statistics for further details.
"""  # noqa: E501
TENTACLE = """\
PG   OBJECTS  DEGRADED  MISPLACED  UNFOUND  BYTES  OMAP_BYTES*  OMAP_KEYS*  LOG  LOG_DUPS  STATE                        SINCE  VERSION  REPORTED  UP     ACTING  SCRUB_STAMP                      DEEP_SCRUB_STAMP                 LAST_SCRUB_DURATION  SCRUB_SCHEDULING
3.0        0         0          0        0      0            0           0    0         0  active+clean+scrubbing+deep     5s      0'0      19:9  [1]p1   [1]p1  2026-12-07T05:30:09.694016+0000  2026-12-07T05:30:09.694016+0000                    0  periodic scrub scheduled @ 2026-12-08T12:55:00.809685+0000
3.1        0         0          0        0      0            0           0    0         0  active+clean                 5s      0'0      20:10 [0]p0   [0]p0  2026-12-07T05:30:09.694016+0000  2026-12-07T05:30:09.694016+0000                    0  periodic scrub scheduled @ 2026-12-08T16:52:49.304497+0000

* NOTE: Omap statistics are gathered during deep scrub and may be inaccurate soon afterwards depending on utilization. See http://docs.ceph.com/en/latest/dev/placement-group/#omap-statistics for further details.
"""  # noqa: E501


def test_pg_table_reads_the_fields_of_the_json_on_pacific() -> None:
    assert pg_table(PACIFIC) == [
        {'pgid': '3.0', 'state': 'active+clean', 'reported_epoch': 231,
         'up': [1, 0, 2], 'acting': [1, 0, 2]},
        {'pgid': '3.1f', 'state': 'peering', 'reported_epoch': 231,
         'up': [0, 2147483647, 2], 'acting': [2, 1]},
        {'pgid': '3.2', 'state': 'unknown', 'reported_epoch': 0, 'up': [], 'acting': []}]


def test_pg_table_reads_tentacles_wider_table() -> None:
    assert pg_table(TENTACLE) == [
        {'pgid': '3.0', 'state': 'active+clean+scrubbing+deep', 'reported_epoch': 19,
         'up': [1], 'acting': [1]},
        {'pgid': '3.1', 'state': 'active+clean', 'reported_epoch': 20,
         'up': [0], 'acting': [0]}]


def test_pg_table_refuses_what_it_cannot_read_exactly() -> None:
    """Never a guess: a check must not see a PG settled that is not."""
    header, row = PACIFIC.splitlines()[:2]
    assert pg_table('') is None
    assert pg_table(header.replace('REPORTED', 'SEEN') + '\n' + row) is None
    assert pg_table(header + '\n' + row.replace('231:409', '231')) is None
    assert pg_table(header + '\n' + row.replace('[1,0,2]p1    [1', '[1, 0,2]p1 [1')) is None
    assert pg_table(header + '\n' + row.replace('2m', '2 m')) is None
    assert pg_table(header + '\n' + row[:120]) is None
    assert pg_table(header + '\n') == []


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
