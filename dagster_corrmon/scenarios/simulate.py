"""``corrmon simulate``: run a scenario's monitored pipeline partition by partition, for real.

Everything goes through a real Dagster instance at ``OUT/dagster_home`` (SQLite) and the corrmon
store beside it: the pipeline's jobs run per partition with the scenario's incidents injected at
the source feeds, the correlation sensor is evaluated after every partition, the correlation jobs
it requests run, and the retrain sensor's requests retrain the model on recent partitions. At the
end ``OUT/report.json`` says what was injected, what was detected and attributed, which runs were
flagged and which retraining decisions were taken; ``dagster dev`` on that home shows it all.
"""

import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import dagster as dg
import pandas as pd

from dagster_corrmon import instance_api
from dagster_corrmon.core.attribution import AttributionConfig
from dagster_corrmon.core.incident import Incident
from dagster_corrmon.core.signal import SignalKind
from dagster_corrmon.correlation.annotation import suspected_cause
from dagster_corrmon.correlation.definitions import (
    CORRELATION_JOB_NAME,
    RETRAIN_SENSOR_NAME,
    build_corrmon_defs,
)
from dagster_corrmon.correlation.model import MonitoredModel
from dagster_corrmon.correlation.retrain import RETRAIN_SIGNAL_NAME, RetrainPolicy
from dagster_corrmon.correlation.sensor import build_correlation_sensor
from dagster_corrmon.errors import ConfigError
from dagster_corrmon.pipeline.builder import (
    FEATURE_SOURCES,
    SourceBatch,
    build_monitored_pipeline,
    build_partitions_def,
    pipeline_keys,
    training_partition_keys,
)
from dagster_corrmon.pipeline.repair import build_repair_provider
from dagster_corrmon.pipeline.training import retrain_partitions
from dagster_corrmon.resource import CorrmonResource
from dagster_corrmon.scenarios.injections import (
    CodeChange,
    Effect,
    Injection,
    LabelDelay,
    injection_rng,
)
from dagster_corrmon.scenarios.spec import ScenarioSpec
from dagster_corrmon.store import CorrmonStore

REPORT_VERSION = 1
CHECKPOINT_FILE = "checkpoint.json"
# What a simulation writes into its --out: all that --overwrite may delete.
_SIMULATION_ENTRIES = frozenset({"dagster_home", "report.json", CHECKPOINT_FILE})
ExistingOut = Literal["refuse", "overwrite", "resume"]
# Keep Dagster's console log out of the simulator's progress output, its warnings and errors
# included: a failed run is reported there in one line (:func:`failure_summary`), not with
# Dagster's traceback — most failures in a scenario are injected on purpose. Every log line
# (warnings from ops too) stays in the event log, for the UI.
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
SENSOR_NAME = "corrmon_correlation_sensor"


def instance_yaml(home: Path) -> str:
    """The simulated home's ``dagster.yaml``: Dagster's SQLite storages, tuned for many small runs.

    One consolidated event-log file (Dagster's default SQLite event log opens, and creates the
    schema of, a new database per run and mirrors asset events into an index file), one shared
    engine per database with ``synchronous=NORMAL`` (:mod:`dagster_corrmon.scenarios.storage`), and
    no per-step stdout capture (a ``tail`` subprocess per step; the simulator's steps print nothing
    worth keeping), and Python log records below INFO left out of the event log: a score run's
    IO manager alone logs ~30 DEBUG lines ("Loading partition ... using
    PickledObjectFilesystemIOManager"), a fifth of its events. Dagster's own events (step starts,
    outputs, check evaluations) are stored whatever their level.
    """
    module = "dagster_corrmon.scenarios.storage"

    def storage(key: str, cls: str, folder: str) -> str:
        return (
            f"{key}:\n  module: {module}\n  class: {cls}\n"
            f"  config:\n    base_dir: {json.dumps(str(home / folder))}\n"
        )

    return (
        "telemetry:\n  enabled: false\n"
        + storage("run_storage", "SimulationRunStorage", "history")
        + storage("event_log_storage", "SimulationEventLogStorage", "history")
        + storage("schedule_storage", "SimulationScheduleStorage", "schedules")
        + "compute_logs:\n"
        "  module: dagster._core.storage.noop_compute_log_manager\n"
        "  class: NoOpComputeLogManager\n"
        "python_logs:\n  python_log_level: INFO\n"
    )


def _date(partition: str) -> dt.date:
    return dt.date.fromisoformat(partition[:10])


def schedule_arrivals(
    spec: ScenarioSpec,
    injections: Sequence[Injection],
    index: int,
    partition: str,
    *,
    label_due: dict[int, list[str]],
    late_due: dict[int, list[tuple[str, str]]],
) -> None:
    """File ``partition`` (scored at step ``index``) under the steps its labels and, for a late
    batch, its re-delivery arrive at: the label delay plus any injected extra delay."""
    day = _date(partition)
    delay = spec.evaluation.label_delay + sum(
        i.extra_delay for i in injections if isinstance(i, LabelDelay) and i.active(day)
    )
    label_due.setdefault(index + delay, []).append(partition)
    for injection in injections:
        if injection.effect() is Effect.LATE_BATCH and injection.active(day):
            late_due.setdefault(index + getattr(injection, "delay", 1), []).append(
                (injection.id or "", partition)
            )


@dataclass
class _State:
    late_delivered: set[tuple[str, str]] = field(default_factory=set)
    failed_runs: list[dict[str, Any]] = field(default_factory=list)
    retrains: list[dict[str, Any]] = field(default_factory=list)
    correlation_runs: int = 0


def _spec_fingerprint(spec: ScenarioSpec, max_partitions: int | None) -> str:
    text = json.dumps([spec.model_dump(mode="json"), max_partitions], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def prepare_out_dir(
    out_dir: Path, existing: ExistingOut, *, fingerprint: str
) -> dict[str, Any] | None:
    """Make ``out_dir`` ready; return the checkpoint to resume from (None: start afresh).

    An empty or missing folder is simply used. A non-empty one is refused unless ``existing``
    says what to do: ``overwrite`` deletes what an earlier simulation wrote there (and refuses a
    folder holding anything else), ``resume`` continues from the last completed partition of the
    same scenario (its checkpoint).
    """
    entries = sorted(out_dir.iterdir()) if out_dir.is_dir() else []
    if not entries:
        return None
    if existing == "refuse":
        raise ConfigError(
            f"--out {out_dir} is not empty: pass --resume to continue the simulation there, "
            "or --overwrite to start it afresh"
        )
    foreign = [entry.name for entry in entries if entry.name not in _SIMULATION_ENTRIES]
    if existing == "overwrite":
        if foreign:
            raise ConfigError(
                f"--overwrite: {out_dir} holds files no simulation wrote "
                f"({', '.join(foreign[:3])}): refusing to delete it"
            )
        for entry in entries:
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        return None
    checkpoint_path = out_dir / CHECKPOINT_FILE
    if not checkpoint_path.is_file():
        raise ConfigError(
            f"--resume: {out_dir} has no {CHECKPOINT_FILE} (the simulation stopped before "
            "training finished, or another one wrote there): use --overwrite"
        )
    try:
        checkpoint = json.loads(checkpoint_path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ConfigError(f"--resume: {checkpoint_path} is unreadable ({error})") from error
    if not isinstance(checkpoint, dict) or checkpoint.get("fingerprint") != fingerprint:
        raise ConfigError(
            f"--resume: {out_dir} holds a simulation of another scenario or --max-partitions: "
            "use --overwrite"
        )
    return checkpoint


def _write_checkpoint(out_dir: Path, checkpoint: dict[str, Any]) -> None:
    """Atomically: a kill leaves the previous checkpoint or this one, never half of one."""
    path = out_dir / CHECKPOINT_FILE
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(checkpoint, sort_keys=True))
    os.replace(partial, path)


def _roll_back_partial_attempt(
    instance: dg.DagsterInstance, store: CorrmonStore, checkpoint: dict[str, Any]
) -> list[str]:
    """Delete the runs that started after the checkpoint, and the signals written since.

    The partition they belonged to is simulated again from the start, so its evidence comes
    from one attempt only; a run the kill left STARTED goes with them.
    """
    known_runs = set(checkpoint["runs"])
    partial = [run_id for run_id in instance.get_run_ids() if run_id not in known_runs]
    store.delete_attempt_signals(
        run_ids=partial, observed_since=dt.datetime.fromisoformat(checkpoint["saved_at"])
    )
    for run_id in partial:
        instance.delete_run(run_id)
    return partial


def default_metric(spec: ScenarioSpec) -> str:
    metrics = spec.metrics
    for preferred in ("roc_auc", "rmse", "mae"):
        if preferred in metrics:
            return preferred
    return metrics[0]


def monitored_model(spec: ScenarioSpec, *, repair: Any = None) -> MonitoredModel:
    """The model a scenario monitors, with the scenario's attribution settings."""
    keys = pipeline_keys(spec)
    # Repair tests re-score whole partitions: the 20 most likely candidates are enough to find
    # the one whose restoration recovers the loss (the rest keep their observational score).
    attribution = AttributionConfig(max_repairs=20)
    if spec.simulation.min_reference is not None:
        attribution = replace(attribution, min_reference=spec.simulation.min_reference)
    return MonitoredModel(
        model=keys.model,
        evaluation=keys.evaluation,
        predictions=keys.predictions,
        metric=default_metric(spec),
        config=attribution,
        repair=repair,
    )


def simulate(
    spec: ScenarioSpec,
    *,
    out_dir: Path,
    progress: Callable[[str], None] = print,
    max_partitions: int | None = None,
    existing: ExistingOut = "refuse",
) -> dict[str, Any]:
    """Simulate ``spec``; write and return the report.

    ``existing`` says what to do with a non-empty ``out_dir`` (:func:`prepare_out_dir`). After
    training and after each partition a checkpoint is written, so ``resume`` continues with the
    first partition not completed, after deleting what a killed attempt left of it.
    """
    if max_partitions is not None and max_partitions < 0:
        raise ConfigError(f"--max-partitions must be 0 or more, got {max_partitions}")
    started = time.perf_counter()
    out_dir = out_dir.resolve()
    fingerprint = _spec_fingerprint(spec, max_partitions)
    checkpoint = prepare_out_dir(out_dir, existing, fingerprint=fingerprint)
    home, database_url = simulation_home(out_dir)
    resource = CorrmonResource(database_url=database_url)
    keys = pipeline_keys(spec)
    partitions_def = build_partitions_def(spec)
    all_keys = list(partitions_def.get_partition_keys())
    training_keys = list(training_partition_keys(spec, partitions_def))
    scoring_keys = scoring_partition_keys(spec, all_keys, training_keys, max_partitions)
    state = _State()
    injections = list(spec.incidents)
    metric = default_metric(spec)
    seed = spec.simulation.seed

    def source_transform(source: str, partition: str | None, frame: pd.DataFrame) -> Any:
        if partition is None:
            return frame
        day = _date(partition)
        for injection in injections:
            if injection.source != source or not injection.active(day):
                continue
            effect = injection.effect()
            if effect is Effect.LATE_BATCH:
                if (injection.id or "", partition) in state.late_delivered:
                    continue
                return SourceBatch(frame=frame.iloc[0:0], note=f"{injection.id}: batch is late")
            if effect in (Effect.TRANSFORM_SOURCE, Effect.EMPTY_BATCH, Effect.FAIL_RUN):
                frame = injection.apply(frame, injection_rng(injection.id or "", partition, seed))
        return frame

    code_changes = [i for i in injections if isinstance(i, CodeChange)]

    def feature_transform(partition: str, frame: pd.DataFrame) -> pd.DataFrame:
        day = _date(partition)
        for change in code_changes:
            if change.active(day):
                frame = change.apply(frame, injection_rng(change.id or "", partition, seed))
        return frame

    current_spec: list[ScenarioSpec] = [spec]
    defs_cache: dict[tuple[str, bool], dg.Definitions] = {}

    def pipeline_defs(day: dt.date | None) -> dg.Definitions:
        buggy = [c for c in code_changes if day is not None and c.active(day)]
        code_versions = {"features": buggy[0].code_version} if buggy else None
        cache_key = (current_spec[0].training.model_dump_json(), bool(buggy))
        if cache_key not in defs_cache:
            pipeline = build_monitored_pipeline(
                current_spec[0],
                source_transform=source_transform,
                feature_transform=feature_transform if buggy else None,
                code_versions=code_versions,
                resources={spec.monitoring.resource_key: resource},
            )
            defs_cache[cache_key] = dg.Definitions.merge(pipeline, corrmon_defs)
        return defs_cache[cache_key]

    model = monitored_model(
        spec,
        repair=build_repair_provider(
            spec, lambda: pipeline_defs(None), all_keys, metric=metric, seed=seed
        ),
    )
    policy = retrain_policy(spec)
    corrmon_defs = build_corrmon_defs(models=[model], store=resource, retrain_policy=policy)

    with (
        _dagster_home(home),
        interrupt_latch(),
        dg.DagsterInstance.from_config(str(home)) as instance,
    ):
        store = CorrmonStore(database_url)

        def run(job: str, partition: str | None, *, tags: dict[str, str] | None = None) -> bool:
            defs = pipeline_defs(_date(partition) if partition else None)
            result = defs.resolve_job_def(job).execute_in_process(
                run_config=QUIET,
                instance=instance,
                partition_key=partition,
                raise_on_error=False,
                tags=tags,
            )
            stop_if_interrupted(result)
            if not result.success:
                state.failed_runs.append(
                    {"job": job, "partition": partition, "run_id": result.run_id}
                )
                progress(
                    f"  {partition or '-'}: {job} failed (run {result.run_id[:8]}): "
                    f"{failure_summary(result)}"
                )
            return result.success

        name = spec.name
        progress(f"simulating {spec.name}: {len(scoring_keys)} partitions into {out_dir}")
        label_due: dict[int, list[str]] = {}
        labelled_keys: set[str] = set()
        unscored: set[str] = set()
        late_due: dict[int, list[tuple[str, str]]] = {}
        cursor: str | None = None

        def save_checkpoint(next_index: int) -> None:
            _write_checkpoint(
                out_dir,
                {
                    "fingerprint": fingerprint,
                    "next_index": next_index,
                    "saved_at": dt.datetime.now(dt.UTC).isoformat(),
                    "runs": sorted(instance.get_run_ids()),
                    "cursor": cursor,
                    "training": current_spec[0].training.model_dump(mode="json"),
                    "label_due": {str(k): v for k, v in label_due.items()},
                    "unscored": sorted(unscored),
                    "labelled": sorted(labelled_keys),
                    "late_due": {str(k): [list(p) for p in v] for k, v in late_due.items()},
                    "late_delivered": sorted(list(p) for p in state.late_delivered),
                    "failed_runs": state.failed_runs,
                    "retrains": state.retrains,
                    "correlation_runs": state.correlation_runs,
                },
            )

        resume_from = 0
        if checkpoint is not None:
            dropped = _roll_back_partial_attempt(instance, store, checkpoint)
            resume_from = int(checkpoint["next_index"])
            cursor = checkpoint["cursor"]
            current_spec[0] = spec.model_copy(
                update={"training": type(spec.training).model_validate(checkpoint["training"])}
            )
            label_due.update({int(k): v for k, v in checkpoint["label_due"].items()})
            unscored.update(checkpoint["unscored"])
            labelled_keys.update(checkpoint.get("labelled", []))
            late_due.update(
                {int(k): [(i, p) for i, p in v] for k, v in checkpoint["late_due"].items()}
            )
            state.late_delivered = {(i, p) for i, p in checkpoint["late_delivered"]}
            state.failed_runs = list(checkpoint["failed_runs"])
            state.retrains = list(checkpoint["retrains"])
            state.correlation_runs = int(checkpoint["correlation_runs"])
            progress(
                f"  resuming at partition {resume_from + 1}/{len(scoring_keys)}; removed the "
                f"{len(dropped)} run(s) of the interrupted attempt"
            )
        else:
            if keys.static:
                run(f"{name}_static", None)
            for index, partition in enumerate(training_keys):
                run(f"{name}_training_inputs", partition)
                if index % 10 == 0:
                    progress(f"  training inputs {index + 1}/{len(training_keys)} ({partition})")
            run(f"{name}_train", None)
            progress(f"  trained the model on {training_keys[0]} .. {training_keys[-1]}")
            save_checkpoint(0)

        for index, partition in enumerate(scoring_keys):
            if index < resume_from:
                continue
            day = _date(partition)
            tick_started = time.perf_counter()
            if not run(f"{name}_score", partition):
                unscored.add(partition)
            schedule_arrivals(
                spec, injections, index, partition, label_due=label_due, late_due=late_due
            )
            for injection_id, late in late_due.pop(index, []):
                state.late_delivered.add((injection_id, late))
                if run(f"{name}_score", late, tags={"corrmon/late_delivery": injection_id}):
                    unscored.discard(late)
            for labelled in label_due.pop(index, []):
                # nothing was predicted there: nothing to label
                if labelled not in unscored and run(f"{name}_label", labelled):
                    labelled_keys.add(labelled)
            cursor = _correlate(
                pipeline_defs(day), instance, resource, cursor, state, progress=progress
            )
            retrain_requests, _ = _tick(pipeline_defs(day), RETRAIN_SENSOR_NAME, instance, resource)
            for request in retrain_requests:
                window = spec.retraining.window_partitions or len(training_keys)
                recent = retrain_partitions(
                    scoring_keys[: index + 1], labelled=labelled_keys, window=window
                )
                current_spec[0] = _retrained(current_spec[0], recent)
                tags = {**request.tags, "dagster/run_key": request.run_key or ""}
                ok = run(f"{name}_train", None, tags=tags)
                state.retrains.append(
                    {"partition": partition, "window": [recent[0], recent[-1]], "success": ok}
                )
                progress(f"  retrained on {recent[0]} .. {recent[-1]} ({request.tags})")
            elapsed = time.perf_counter() - tick_started
            if index % 5 == 0 or index == len(scoring_keys) - 1:
                incidents = store.list_incidents(model_asset=model.name)
                progress(
                    f"  [{index + 1}/{len(scoring_keys)}] {partition}: {elapsed:.1f} s, "
                    f"{len(incidents)} incident(s), {len(state.failed_runs)} failed run(s)"
                )
            save_checkpoint(index + 1)
        # labels still pending at the end of the window arrive now
        for pending in sorted(label_due):
            for labelled in label_due[pending]:
                if labelled not in unscored:
                    run(f"{name}_label", labelled)
        cursor = _correlate(
            pipeline_defs(None), instance, resource, cursor, state, progress=progress
        )
        report = build_report(
            spec=spec,
            store=store,
            instance=instance,
            model=model,
            scoring_keys=scoring_keys,
            state=state,
        )
        report["elapsed_seconds"] = round(time.perf_counter() - started, 1)
        store.close()
    (out_dir / "report.json").write_text(json.dumps(report, indent=2, default=str))
    progress(f"report: {out_dir / 'report.json'} ({report['elapsed_seconds']} s)")
    return report


def simulation_home(out_dir: Path) -> tuple[Path, str]:
    """``OUT/dagster_home`` with the simulation's ``dagster.yaml``, and the store URL beside it."""
    home = out_dir / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(instance_yaml(home))
    return home, f"sqlite:///{home / 'corrmon.db'}"


def scoring_partition_keys(
    spec: ScenarioSpec,
    all_keys: list[str],
    training_keys: list[str],
    max_partitions: int | None = None,
) -> list[str]:
    """The partitions a simulation scores: from ``simulation.start`` (default: the day after
    training) to ``simulation.end``, training partitions left out, at most ``max_partitions``."""
    first = spec.simulation.start or _date(training_keys[-1]) + dt.timedelta(days=1)
    scoring_keys = [
        k
        for k in all_keys
        if _date(k) >= first
        and k not in training_keys
        and (spec.simulation.end is None or _date(k) < spec.simulation.end)
    ]
    return scoring_keys if max_partitions is None else scoring_keys[:max_partitions]


def scenario_definitions(spec: ScenarioSpec) -> dg.Definitions:
    """The definitions a simulation of ``spec`` ran, for looking at its history in the UI.

    The incidents are data, not definitions, so they are absent. The retrain policy is the
    simulation's (a correlation run launched from the UI decides as the simulation did); the
    sensors start stopped, so opening a recorded history does not act on it (the daemon would
    otherwise correlate and retrain on the whole of it).
    """
    resource = CorrmonResource()
    pipeline = build_monitored_pipeline(spec, resources={spec.monitoring.resource_key: resource})
    return dg.Definitions.merge(
        pipeline,
        build_corrmon_defs(
            models=[monitored_model(spec)],
            store=resource,
            retrain_policy=retrain_policy(spec),
            sensor_status=dg.DefaultSensorStatus.STOPPED,
        ),
    )


_LATCHES: list[socket.socket] = []  # reading ends of the active interrupt latches


@contextlib.contextmanager
def interrupt_latch() -> Iterator[None]:
    """Remember every Ctrl-C / SIGTERM while Dagster runs, for :func:`stop_if_interrupted`.

    ``execute_in_process`` swaps in its own SIGINT handler for the whole run and raises the
    interrupt only inside a step; one that arrives between steps (while events are written, while
    the run is created) sets a flag Dagster clears when the run ends — the simulation went on.
    A wakeup fd receives every signal's number whichever Python handler is installed, so it
    keeps what Dagster drops. Outside the main thread (no signals there) it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    previous = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    _LATCHES.append(reader)
    try:
        yield
    finally:
        _LATCHES.remove(reader)
        signal.set_wakeup_fd(previous)
        reader.close()
        writer.close()


def _raise_latched_interrupt() -> None:
    for reader in _LATCHES:
        try:
            received = reader.recv(4096)
        except BlockingIOError:
            continue
        if signal.SIGINT in received or signal.SIGTERM in received:
            raise KeyboardInterrupt("interrupted while Dagster was running")


def stop_if_interrupted(result: dg.ExecuteInProcessResult) -> None:
    """Re-raise a Ctrl-C (or SIGTERM) that Dagster turned into a failed step, or dropped.

    Inside a step Dagster catches the interrupt and fails the run; without this the simulation
    would record an "injected" failure and carry on with the next partition. Between steps it
    drops the interrupt; within :func:`interrupt_latch` that one is raised here too.
    """
    _raise_latched_interrupt()
    for event in result.all_events:
        if not event.is_step_failure or event.step_failure_data is None:
            continue
        error = event.step_failure_data.error
        while error is not None:
            if error.cls_name == "DagsterExecutionInterruptedError":
                raise KeyboardInterrupt(f"interrupted in run {result.run_id}")
            error = error.cause


@contextlib.contextmanager
def _dagster_home(home: Path) -> Iterator[None]:
    """``DAGSTER_HOME`` is the simulated home while it runs, and what it was afterwards."""
    previous = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(home)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = previous


def retrain_policy(spec: ScenarioSpec) -> RetrainPolicy:
    """The scenario's retraining policy (its cooldown counted in partitions)."""
    keys = list(build_partitions_def(spec).get_partition_keys())
    return RetrainPolicy(
        on_concept_drift=spec.retraining.on_concept_drift,
        cooldown=_partition_span(keys) * spec.retraining.cooldown_partitions,
    )


def _partition_span(keys: list[str]) -> dt.timedelta:
    if len(keys) < 2:
        return dt.timedelta(days=1)
    return dt.datetime.fromisoformat(keys[1][:10]) - dt.datetime.fromisoformat(keys[0][:10])


def _retrained(spec: ScenarioSpec, recent: list[str]) -> ScenarioSpec:
    # The training window is [start, end) of whole partitions: it must end where the last
    # partition ends (one day after its key covers only a daily partition).
    partitions = build_partitions_def(spec)
    start = partitions.time_window_for_partition_key(recent[0]).start.date()
    end = partitions.time_window_for_partition_key(recent[-1]).end.date()
    training = spec.training.model_copy(update={"start": start, "end": end})
    return spec.model_copy(update={"training": training})


def _tick(
    defs: dg.Definitions,
    sensor_name: str,
    instance: dg.DagsterInstance,
    resource: CorrmonResource,
    cursor: str | None = None,
) -> tuple[list[dg.RunRequest], str | None]:
    sensor = defs.resolve_sensor_def(sensor_name)
    with dg.build_sensor_context(
        instance=instance, definitions=defs, resources={"corrmon": resource}, cursor=cursor
    ) as context:
        data = sensor.evaluate_tick(context)
    requests = list(data.run_requests or [])
    # run_key de-duplication is the daemon's job; here, skip keys that already ran.
    fresh = []
    for request in requests:
        if request.run_key and instance.get_runs(
            dg.RunsFilter(tags={"dagster/run_key": request.run_key}), limit=1
        ):
            continue
        fresh.append(request)
    return fresh, data.cursor


def _correlate(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    resource: CorrmonResource,
    cursor: str | None,
    state: _State,
    *,
    progress: Callable[[str], None],
) -> str | None:
    requests, cursor = _tick(defs, SENSOR_NAME, instance, resource, cursor)
    job = defs.resolve_job_def(CORRELATION_JOB_NAME)
    for request in requests:
        tags = {**request.tags, "dagster/run_key": request.run_key or ""}
        result = job.execute_in_process(
            instance=instance,
            run_config={**request.run_config, **QUIET},
            tags=tags,
            raise_on_error=False,
        )
        stop_if_interrupted(result)
        state.correlation_runs += 1
        if not result.success:
            progress(f"  correlation failed (run {result.run_id[:8]}): {failure_summary(result)}")
    return cursor


def failure_summary(result: dg.ExecuteInProcessResult) -> str:
    """The first failed step and its error, in one line (the traceback is in the event log)."""
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data is not None:
            error = event.step_failure_data.error
            # Dagster wraps the op's exception; its cause is what the op raised.
            while error is not None and error.cause is not None:
                error = error.cause
            if error is None:
                return f"step {event.step_key} failed"
            message = " ".join(error.message.split()) if error.message else error.cls_name
            return f"step {event.step_key}: {message}"[:300]
    return "the run failed before any step (see the run in the Dagster UI)"


def _suspected(incident: Incident) -> dict[str, str | None] | None:
    cause = suspected_cause(incident)
    return None if cause is None else {"asset": cause.asset_key, "column": cause.column}


def build_report(
    *,
    spec: ScenarioSpec,
    store: CorrmonStore,
    instance: dg.DagsterInstance,
    model: MonitoredModel,
    scoring_keys: list[str],
    state: _State,
) -> dict[str, Any]:
    """The ``report.json`` document (schema in docs/scenarios.md)."""
    keys = pipeline_keys(spec)
    incidents = []
    for incident in store.list_incidents(model_asset=model.name):
        incidents.append(
            {
                "id": incident.id,
                "model": incident.model_asset,
                "metric": incident.metric,
                "classification": incident.classification.value,
                "consequential": incident.consequential,
                "provisional": bool(incident.metadata.get("provisional")),
                "onset_partition": incident.onset_partition,
                "detected_partition": incident.detected_partition,
                "baseline_value": incident.baseline_value,
                "observed_value": incident.observed_value,
                "status": incident.status.value,
                "summary": incident.summary,
                # What the run tags and the incident check blame: the top cause only when it
                # explains the loss (correlation.annotation.suspected_cause).
                "suspected_cause": _suspected(incident),
                "causes": [
                    {
                        "rank": cause.rank,
                        "kind": cause.kind,
                        "asset": cause.asset_key,
                        "source": _source_of(cause.asset_key, keys),
                        "column": cause.column,
                        "partition": cause.partition,
                        "score": cause.score,
                        "p_value": cause.p_value,
                        "q_value": cause.q_value,
                        "repair_recovery": cause.repair_recovery,
                    }
                    for cause in incident.causes
                ],
                "affected_runs": [
                    {
                        "run_id": run.run_id,
                        "asset": run.asset_key,
                        "role": run.role,
                        "partition": run.partition,
                        "at_risk": run.at_risk,
                    }
                    for run in incident.affected_runs
                ],
            }
        )
    decisions = [
        {
            "partition": signal.partition,
            "event_time": signal.event_time.isoformat(),
            "decision": signal.metadata.get("decision"),
            "reason": signal.metadata.get("reason"),
            "incident": signal.metadata.get("incident"),
        }
        for signal in store.read_signals(
            asset_key=model.name, name=RETRAIN_SIGNAL_NAME, kind=SignalKind.RETRAIN_DECISION
        )
    ]
    scoring_runs = {
        record.partition: record.run_id
        for record in instance_api.all_materializations(instance, keys.predictions)
        if record.partition is not None
    }
    features_event = instance.get_latest_materialization_event(keys.features)
    sources_meta = (
        features_event.asset_materialization.metadata.get(FEATURE_SOURCES)
        if features_event is not None and features_event.asset_materialization is not None
        else None
    )
    feature_sources = sources_meta.value if sources_meta is not None else {}
    return {
        "version": REPORT_VERSION,
        "scenario": spec.name,
        "metric": model.metric,
        "features_asset": keys.features.to_user_string(),
        "evaluation_asset": keys.evaluation.to_user_string(),
        "feature_sources": feature_sources,
        "partitions": scoring_keys,
        "raw_assets": {name: key.to_user_string() for name, key in keys.raw.items()},
        "injected": [
            {
                "id": injection.id,
                "kind": injection.kind,
                "source": injection.source,
                "asset": _injected_asset(injection.source, keys),
                "column": injection.column_hit,
                "start": injection.start.isoformat(),
                "end": injection.end.isoformat() if injection.end else None,
            }
            for injection in spec.incidents
        ],
        "expect": spec.expect.model_dump(mode="json"),
        "incidents": incidents,
        "retrain_decisions": decisions,
        "retrains": state.retrains,
        "failed_runs": state.failed_runs,
        "correlation_runs": state.correlation_runs,
        "scoring_runs": scoring_runs,
    }


def _source_of(asset: str, keys: Any) -> str | None:
    for name, key in keys.raw.items():
        if key.to_user_string() == asset:
            return name
    return None


def _injected_asset(source: str, keys: Any) -> str:
    if source in keys.raw:
        return keys.raw[source].to_user_string()
    if source == "features":
        return keys.features.to_user_string()
    return keys.evaluation.to_user_string()


__all__ = ["build_correlation_sensor", "build_report", "simulate"]
