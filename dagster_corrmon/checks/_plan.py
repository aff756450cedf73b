"""A corrmon check before it becomes a Dagster definition, and the two ways it becomes one.

Every factory describes each check as a :class:`CheckPlan`: the asset it judges, its name and
kind, and an ``evaluate`` function from a :class:`CheckCall` (the resource, the standard tags of
the judged materialization, the asset's value, the reference asset's value) to a
:class:`~dagster_corrmon.checks._common.CheckOutcome`. A plan is rendered

* alone (:func:`check_definition`): one Dagster step per check — what the public factories
  return, like Dagster's own ``build_*_checks``;
* with the other corrmon checks of the same asset (:func:`bundle_checks`): **one** step per
  asset that loads the asset's value once, reads its materialization's tags once, and yields
  every check's result. The checks, their keys, results and signals are the same; a partition of
  a monitored pipeline is a handful of steps instead of one per check, which is most of the
  cost of running it (Dagster writes ~7 events per step).
"""

import time
import warnings
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import pandas as pd

from dagster_corrmon.checks._common import (
    CheckOutcome,
    CheckTarget,
    as_frame,
    finish,
    not_a_frame_outcome,
    open_check,
)
from dagster_corrmon.core.signal import SignalKind
from dagster_corrmon.errors import CorrmonError
from dagster_corrmon.resource import CorrmonResource, MaterializationTags

VALUE_INPUT = "corrmon_checked_value"
REFERENCE_INPUT = "corrmon_reference_model"


@dataclass(frozen=True, kw_only=True)
class CheckCall:
    """What one evaluation of a check sees."""

    context: dg.AssetCheckExecutionContext
    corrmon: CorrmonResource
    tags: MaterializationTags
    now: datetime
    value: Any = None  # the judged asset's value (when the plan reads it)
    reference: Any = None  # the reference asset's value (when the plan names one)


Evaluate = Callable[[CheckCall], CheckOutcome]


@dataclass(frozen=True, kw_only=True)
class CheckPlan:
    """One corrmon check on one asset, not yet a Dagster definition."""

    target: CheckTarget
    name: str
    description: str
    kind: SignalKind
    evaluate: Evaluate
    resource_key: str
    blocking: bool = False
    metadata: Mapping[str, Any] = field(default_factory=dict[str, Any])
    reads_value: bool = True
    reference: dg.AssetKey | None = None

    @property
    def key(self) -> dg.AssetCheckKey:
        return dg.AssetCheckKey(self.target.key, self.name)

    def spec(self) -> dg.AssetCheckSpec:
        # A check of a partitioned asset judges one partition, so its spec carries the asset's
        # partitioning — a Dagster 1.13 preview feature that warns once per spec. corrmon relies
        # on it deliberately (and tests it); repeating the warning for every check of every
        # definitions build would drown `corrmon simulate`'s progress output.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", dg.PreviewWarning)
            return dg.AssetCheckSpec(
                name=self.name,
                asset=self.target.key,
                description=self.description,
                blocking=self.blocking,
                metadata=dict(self.metadata),
                partitions_def=self.target.partitions_def,
                additional_deps=[self.reference] if self.reference is not None else None,
            )


Judge = Callable[[pd.DataFrame, MaterializationTags, CorrmonResource], CheckOutcome]


def frame_plan(
    target: CheckTarget,
    *,
    name: str,
    description: str,
    kind: SignalKind,
    judge: Judge,
    resource_key: str,
    blocking: bool,
    metadata: Mapping[str, Any] | None = None,
) -> CheckPlan:
    """A check that judges the asset's value as a table (a value that is not one fails ERROR)."""

    def evaluate(call: CheckCall) -> CheckOutcome:
        frame = as_frame(call.value)
        if frame is None:
            return not_a_frame_outcome(call.value, tags=call.tags, kind=kind, check_name=name)
        return judge(frame, call.tags, call.corrmon)

    return CheckPlan(
        target=target,
        name=name,
        description=description,
        kind=kind,
        evaluate=evaluate,
        resource_key=resource_key,
        blocking=blocking,
        metadata=dict(metadata or {}),
    )


# The plan behind each definition a corrmon factory returned, so bundle_checks can regroup them
# (weak keys: a definition that is dropped takes its plan with it).
_PLANS: "weakref.WeakKeyDictionary[dg.AssetChecksDefinition, CheckPlan]" = (
    weakref.WeakKeyDictionary()
)


def check_definition(plan: CheckPlan) -> dg.AssetChecksDefinition:
    """``plan`` as a check of its own (one step), named like ``@dg.asset_check`` names it."""
    definition = _definition([plan], name=plan.spec().get_python_identifier())
    _PLANS[definition] = plan
    return definition


def check_definitions(plans: Iterable[CheckPlan]) -> list[dg.AssetChecksDefinition]:
    return [check_definition(plan) for plan in plans]


def plan_of(definition: dg.AssetChecksDefinition) -> CheckPlan | None:
    """The plan a corrmon factory built ``definition`` from (``None`` for any other check)."""
    return _PLANS.get(definition)


def bundle_checks(
    checks: Iterable[dg.AssetChecksDefinition],
) -> list[dg.AssetChecksDefinition]:
    """Run the corrmon checks of each asset in one step; other checks come back unchanged.

    The checks keep their keys, descriptions, partitioning, blocking flags and results — the
    Dagster UI lists them exactly as before — but each asset's corrmon checks share one step
    (``<asset>_corrmon_checks``) that loads the asset's value once; those that also read a
    reference asset (drift against a model's profile) share a second one. The step can be subset: a
    job or a backfill may still select a single check. A check that raises does not stop its
    siblings: their results are recorded, then the step fails with the first error.
    """
    groups: dict[tuple[dg.AssetKey, str, dg.AssetKey | None], list[CheckPlan]] = {}
    out: list[dg.AssetChecksDefinition | tuple[dg.AssetKey, str, dg.AssetKey | None]] = []
    for check in checks:
        plan = plan_of(check)
        if plan is None:
            out.append(check)
            continue
        group = (plan.target.key, plan.resource_key, plan.reference)
        if group not in groups:
            groups[group] = []
            out.append(group)
        groups[group].append(plan)
    bundled: list[dg.AssetChecksDefinition] = []
    for item in out:
        if isinstance(item, dg.AssetChecksDefinition):
            bundled.append(item)
            continue
        asset, resource_key, reference = item
        name = f"{asset.to_python_identifier()}_corrmon_checks"
        if reference is not None:
            # Checks that read a reference asset (drift against a model) get their own step: a
            # job that runs before the reference exists can then leave them out.
            name = f"{name}_vs_{reference.to_python_identifier()}"
        if any(other == asset and key != resource_key for other, key, _ in groups):
            name = f"{name}_{resource_key}"  # two stores on one asset: one step each
        bundled.append(_definition(groups[item], name=name))
    return bundled


def _definition(plans: Sequence[CheckPlan], *, name: str) -> dg.AssetChecksDefinition:
    first = plans[0]
    target, resource_key = first.target, first.resource_key
    names = [plan.name for plan in plans]
    if len(set(names)) != len(names):
        raise CorrmonError(
            f"corrmon checks on {target.key.to_user_string()!r} share a name: {sorted(names)}"
        )
    if len({plan.reference for plan in plans}) > 1:
        raise CorrmonError(
            f"corrmon checks on {target.key.to_user_string()!r} with different reference assets "
            "cannot share a step"
        )
    ins: dict[str, dg.AssetIn] = {}
    if any(plan.reads_value for plan in plans):
        ins[VALUE_INPUT] = dg.AssetIn(key=target.key)
    if first.reference is not None:
        ins[REFERENCE_INPUT] = dg.AssetIn(key=first.reference)

    @dg.multi_asset_check(
        name=name,
        specs=[plan.spec() for plan in plans],
        description=first.description if len(plans) == 1 else None,
        can_subset=len(plans) > 1,
        required_resource_keys={resource_key},
        ins=ins,
    )
    def _checks(
        context: dg.AssetCheckExecutionContext, **inputs: Any
    ) -> Iterator[dg.AssetCheckResult]:
        now = datetime.now(UTC)
        corrmon, tags = open_check(context, target, resource_key, now=now)
        call = CheckCall(
            context=context,
            corrmon=corrmon,
            tags=tags,
            now=now,
            value=inputs.get(VALUE_INPUT),
            reference=inputs.get(REFERENCE_INPUT),
        )
        selected = context.selected_asset_check_keys
        errors: list[tuple[CheckPlan, Exception]] = []
        for plan in plans:
            if plan.key not in selected:
                continue
            started = time.perf_counter()
            try:
                outcome = plan.evaluate(call)
            except Exception as error:
                if len(plans) == 1:
                    raise
                errors.append((plan, error))
                continue
            yield finish(
                corrmon,
                tags,
                check_name=plan.name,
                kind=plan.kind,
                outcome=outcome,
                started=started,
                asset_key=target.key,
            )
        if errors:
            plan, error = errors[0]
            failed = ", ".join(p.name for p, _ in errors)
            raise CorrmonError(
                f"corrmon check(s) {failed} on {target.key.to_user_string()!r} raised; the "
                f"other checks' results were recorded. First error ({plan.name}): {error}"
            ) from error

    return _checks
