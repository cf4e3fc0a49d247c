"""What a workflow's history is made of, and the Temporal Cloud actions it bills, counted from
its events. The benchmark compares a real saga's shape with the floor's and reports actions and
events per saga; tests pin the shapes.

Actions follow https://docs.temporal.io/cloud/actions: the start (a signal-with-start is one
action in all), each activity attempt, all local activities of one workflow task together, each
timer, each search-attribute upsert (those given at start, and a patch's `TemporalChangeVersion`,
are free; a patch's marker shares its workflow task's marker action), each signal, each accepted
update (update-with-start: the update besides the start), two per child workflow. Memo changes
and workflow tasks are not billed. Queries, heartbeats and rejected updates leave no event and
are not counted here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory

LOCAL_ACTIVITY_MARKER = "core_local_activity"
SHAPE = ("activities", "local_activities", "signals", "updates", "timers", "upserts", "children")
"""What the floor must have exactly as a captured checkout has it."""
PATCH_ATTRIBUTE = "TemporalChangeVersion"


@dataclass(frozen=True)
class Shape:
    """The commands and messages one workflow run is made of."""

    activities: int = 0
    local_activities: int = 0
    signals: int = 0
    updates: int = 0
    timers: int = 0
    upserts: int = 0
    children: int = 0
    # Not part of the shape the floor must match, but what the run costs:
    activity_attempts: int = 0
    marker_tasks: int = 0
    """Workflow tasks that recorded markers (local activities, patches): one action each."""
    signal_with_start: bool = False
    memo_changes: int = 0
    workflow_tasks: int = 0
    events: int = 0

    @property
    def actions(self) -> int:
        signals = self.signals - (1 if self.signal_with_start else 0)
        return (
            1
            + self.activity_attempts
            + self.marker_tasks
            + signals
            + self.updates
            + self.timers
            + self.upserts
            + 2 * self.children
        )

    def differences(self, other: Shape) -> dict[str, tuple[int, int]]:
        """The shape's counts that differ: name → (ours, theirs)."""
        return {
            name: (getattr(self, name), getattr(other, name))
            for name in SHAPE
            if getattr(self, name) != getattr(other, name)
        }

    def as_dict(self) -> dict[str, int | bool]:
        return {**asdict(self), "actions": self.actions}


def shape_of(history: WorkflowHistory) -> Shape:
    counts: dict[str, int] = {f.name: 0 for f in fields(Shape) if f.type == "int"}
    tasks_with_markers: set[int] = set()
    last_task_completed = 0
    signal_with_start = False
    for event in history.events:
        kind = event.event_type
        counts["events"] += 1
        if kind == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            counts["workflow_tasks"] += 1
            last_task_completed = event.event_id
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            counts["activities"] += 1
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started = event.activity_task_started_event_attributes
            counts["activity_attempts"] += max(started.attempt, 1)
        elif kind == EventType.EVENT_TYPE_MARKER_RECORDED:
            tasks_with_markers.add(last_task_completed)  # every marker of a task: one action
            if event.marker_recorded_event_attributes.marker_name == LOCAL_ACTIVITY_MARKER:
                counts["local_activities"] += 1
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            counts["signals"] += 1
            # Signal-with-start records the signal before the first workflow task is scheduled.
            signal_with_start = signal_with_start or event.event_id == 2
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            counts["updates"] += 1
        elif kind == EventType.EVENT_TYPE_TIMER_STARTED:
            counts["timers"] += 1
        elif kind == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            fields_set = event.upsert_workflow_search_attributes_event_attributes.search_attributes
            if set(fields_set.indexed_fields) - {PATCH_ATTRIBUTE}:
                counts["upserts"] += 1
        elif kind == EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED:
            counts["memo_changes"] += 1
        elif kind == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
            counts["children"] += 1
    counts["marker_tasks"] = len(tasks_with_markers)
    return Shape(**counts, signal_with_start=signal_with_start)
