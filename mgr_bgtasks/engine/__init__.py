"""The task engine: `Task` transitions, the `TaskTable` of records, the `Scheduler` that
knows ids only, and the service functions (`Engine`) every interface calls."""
from .scheduler import MAINTENANCE_SECONDS, THREAD_CAP, Scheduler
from .service import ABORT_WARNING, ID_FLOOR_KEY, MAX_RECORD_BYTES, Engine, Observer
from .table import TaskTable

__all__ = ['ABORT_WARNING', 'ID_FLOOR_KEY', 'MAINTENANCE_SECONDS', 'MAX_RECORD_BYTES',
           'THREAD_CAP', 'Engine', 'Observer', 'Scheduler', 'TaskTable']
