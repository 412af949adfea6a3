"""Time, behind an interface so the engine can be driven by a fake clock in tests."""
import datetime
import functools
import time
from typing import Optional


class Clock:
    def now(self) -> float:
        """Seconds since the epoch."""
        return time.time()


# A task's times rarely change and lists format each of them again: formatting was most
# of the cost of listing a thousand tasks.
@functools.lru_cache(maxsize=8192)
def iso(ts: Optional[float]) -> Optional[str]:
    """ISO 8601 UTC with a trailing Z, the form Ceph's dashboard uses for task times."""
    if ts is None:
        return None
    dt = datetime.datetime.fromtimestamp(ts, tz=datetime.timezone.utc)
    return dt.strftime('%Y-%m-%dT%H:%M:%S.') + '%06dZ' % dt.microsecond
