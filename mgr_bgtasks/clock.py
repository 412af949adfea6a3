"""Time, behind an interface so the engine can be driven by a fake clock in tests."""
import datetime
import time
from typing import Optional


class Clock:
    def now(self) -> float:
        """Seconds since the epoch."""
        return time.time()


def iso(ts: Optional[float]) -> Optional[str]:
    """ISO 8601 UTC with a trailing Z, the form Ceph's dashboard uses for task times."""
    if ts is None:
        return None
    dt = datetime.datetime.fromtimestamp(ts, tz=datetime.timezone.utc)
    return dt.strftime('%Y-%m-%dT%H:%M:%S.') + '%06dZ' % dt.microsecond
