"""The task record: what is persisted after every step and what every interface shows."""
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Optional

from .clock import iso

# States group openATTIC's statuses the way its dialog tabs do.
PENDING = 'pending'
FINISHED = 'finished'
FAILED = 'failed'
STATES = (PENDING, FAILED, FINISHED)

NOT_STARTED = 'Not Started'
RUNNING = 'Running'
STATUS_FINISHED = 'Finished'
EXCEPTION = 'Exception'
ABORTED = 'Aborted'
STATUSES = (NOT_STARTED, RUNNING, STATUS_FINISHED, EXCEPTION, ABORTED)
STATE_OF_STATUS = {NOT_STARTED: PENDING, RUNNING: PENDING, STATUS_FINISHED: FINISHED,
                   EXCEPTION: FAILED, ABORTED: FAILED}

# openATTIC shows no ETA before 5 %: earlier estimates swing too wildly to help.
ETA_MIN_PERCENT = 5.0

KEY_PREFIX = 'task/'


def key_of(task_id: int) -> str:
    # Zero-padded so a prefix scan returns tasks in id order.
    return '%s%010d' % (KEY_PREFIX, task_id)


@dataclass
class Task:
    id: int
    kind: str
    description: str
    params: Dict[str, Any]
    created: float
    created_by: str
    status: str = NOT_STARTED
    percent: float = 0.0
    last_modified: float = 0.0
    started: Optional[float] = None
    ended: Optional[float] = None
    result: Any = None
    error: Optional[str] = None
    status_text: Optional[str] = None
    # The kind's own resumable state: what the next step starts from.
    step: Dict[str, Any] = field(default_factory=dict)

    @property
    def state(self) -> str:
        return STATE_OF_STATUS[self.status]

    @property
    def pending(self) -> bool:
        return self.state == PENDING

    def estimated(self, now: float) -> Optional[float]:
        if self.status != RUNNING or self.started is None or self.percent < ETA_MIN_PERCENT:
            return None
        return self.started + (now - self.started) * 100.0 / self.percent

    def to_json(self, now: float) -> Dict[str, Any]:
        """The public shape (openATTIC's field names plus bgtasks' own)."""
        return {
            'id': self.id,
            'kind': self.kind,
            'description': self.description,
            'state': self.state,
            'status': self.status,
            'status_text': self.status_text,
            'percent': int(self.percent),
            'estimated': iso(self.estimated(now)),
            'created': iso(self.created),
            'last_modified': iso(self.last_modified),
            'started': iso(self.started),
            'ended': iso(self.ended),
            'created_by': self.created_by,
            'params': self.params,
            'result': self.result,
            'error': self.error,
        }

    def dumps(self) -> str:
        return json.dumps(asdict(self), separators=(',', ':'))

    @classmethod
    def loads(cls, text: str) -> 'Task':
        return cls(**json.loads(text))
