"""The task record: what is persisted after every step and what every interface shows."""
import json
from dataclasses import asdict, dataclass, field, fields
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

# Written into every record as `v`. A record without one is version 0; fields a record lacks
# take their defaults and fields this code does not know are ignored, so an older or newer
# mgr's records load either way.
RECORD_VERSION = 1


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

    # Transitions: the only places a task's status changes. The engine keeps its indexes in
    # step with them (`TaskTable.changed`).

    def start(self, now: float) -> None:
        """Its first step begins; later steps leave `started` as it was."""
        if self.status == NOT_STARTED:
            self.status, self.started = RUNNING, now

    def advance(self, now: float, state: Dict[str, Any], percent: float,
                status_text: Optional[str]) -> None:
        """A step ended and the task goes on from `state`."""
        self.last_modified = now
        self.step = state
        self.percent = max(0.0, min(100.0, percent))
        self.status_text = status_text

    def finish(self, now: float, result: Any) -> None:
        self._end(now)
        self.status, self.percent, self.result = STATUS_FINISHED, 100.0, result

    def fail(self, now: float, error: str, keep_progress: bool = False) -> None:
        """It ends by an error, without a result. `keep_progress` leaves its last step's
        state, text and time as they were: it failed without a step of its own (its kind
        is unknown to this mgr)."""
        if keep_progress:
            self.ended = now
        else:
            self._end(now)
        self.status, self.error, self.result = EXCEPTION, error, None

    def abort(self, now: float, error: str) -> None:
        """A user ended it while pending. Its step state stays: the kind releases what
        that state holds once no step of it runs any more."""
        self.ended = self.last_modified = now
        self.status, self.error, self.status_text = ABORTED, error, None

    def _end(self, now: float) -> None:
        # Nothing resumes a final task: its step state would only take room.
        self.ended = self.last_modified = now
        self.status_text, self.step = None, {}

    def dumps(self) -> str:
        return json.dumps({'v': RECORD_VERSION, **asdict(self)}, separators=(',', ':'))

    @classmethod
    def loads(cls, text: str) -> 'Task':
        record = json.loads(text)
        if not isinstance(record, dict):
            raise ValueError('a task record is a JSON object')
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in record.items() if k in known})
