"""Promotion: move alias ``champion`` to the challenger when it is better, or back.

Moves are recorded as version tags (``promoted_at``, ``promoted_from``, ``promotion``,
``demoted_at``, ``rolled_back_at``, ``rolled_back_from``) and in the registered-model tag
``champion_history``: a JSON list of versions, a stack whose last entry is the champion
(promote pushes, rollback pops).

Crash safety: tags and history are written first and the alias move is the last call, so the
alias only ever points at a complete version. ``champion_history_before`` keeps the list as it
was before the last change: if a crash came between the history write and the alias move, the
history's last entry differs from the alias and the next operation restores the previous list
(see ``_history``). Concurrent promotions of the same model are not guarded against: promote
from one place (CI or an operator).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone

from mlflow.entities.model_registry import ModelVersion, RegisteredModel
from mlflow.tracking import MlflowClient

from arcscan.errors import RegistryError
from arcscan.mlops.registry import CHALLENGER, CHAMPION, METRIC_TAG_PREFIX, get_version, is_complete, registered_model
from arcscan.mlops.tracking import mlflow_client

HISTORY_TAG = "champion_history"
HISTORY_BEFORE_TAG = "champion_history_before"
HISTORY_MAX = 200  # entries kept; the registry's tag column holds 5000 characters


@dataclass(frozen=True)
class PromotionResult:
    """What ``promote`` or ``rollback`` did. For a rollback, ``challenger`` is the version
    the champion went back to and the metric values are None."""

    promoted: bool
    reason: str
    challenger: str
    champion_before: str | None
    champion_after: str | None
    challenger_value: float | None = None
    champion_value: float | None = None
    metric: str | None = None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _history(model: RegisteredModel, aliases: dict[str, str]) -> list[str]:
    """The champion stack, repaired if the last change did not reach the alias (crash)."""
    history = json.loads(model.tags.get(HISTORY_TAG, "[]"))
    before = json.loads(model.tags.get(HISTORY_BEFORE_TAG, "[]"))
    champion = aliases.get(CHAMPION)
    if champion is None:
        return []
    if history and history[-1] == champion:
        return history
    if before and before[-1] == champion:  # interrupted before the alias moved
        return before
    return history + [champion]  # alias moved outside arcscan: take it as is


def _write_history(client: MlflowClient, name: str, before: list[str], after: list[str]) -> None:
    client.set_registered_model_tag(name, HISTORY_BEFORE_TAG, json.dumps(before[-HISTORY_MAX:]))
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(after[-HISTORY_MAX:]))


def _metric(client: MlflowClient, mv: ModelVersion, metric: str) -> float | None:
    """The version's own value (tag ``metric.<name>``, its run's metrics when it was
    registered), else its run's latest value."""
    tagged = mv.tags.get(f"{METRIC_TAG_PREFIX}{metric}")
    if tagged is not None:
        value = float(tagged)
    else:
        value = client.get_run(mv.run_id).data.metrics.get(metric) if mv.run_id else None
    return None if value is None or math.isnan(value) else float(value)


def promote(model_name: str, metric: str, higher_is_better: bool = True, force: bool = False, guards: tuple[str, ...] = ()) -> PromotionResult:
    """Point ``champion`` at ``challenger`` if there is no champion, the challenger's run
    metric is strictly better and it is no worse on any ``guards`` metric (higher is better;
    e.g. the real-frame figures) that both versions have, or ``force``; otherwise leave it
    and say why."""
    client = mlflow_client()
    model, aliases = registered_model(client, model_name)
    if CHALLENGER not in aliases:
        raise RegistryError(f"{model_name} has no @{CHALLENGER}: register a version first")
    challenger = get_version(client, model_name, aliases[CHALLENGER])
    if not is_complete(challenger):
        raise RegistryError(f"{model_name} version {challenger.version} (@{CHALLENGER}) is not complete=true")
    value = _metric(client, challenger, metric)
    if value is None:
        raise RegistryError(f"{model_name} version {challenger.version} (@{CHALLENGER}): its run has no metric {metric!r}")

    history = _history(model, aliases)
    champion_version = aliases.get(CHAMPION)
    result = dict(challenger=challenger.version, champion_before=champion_version, challenger_value=value, metric=metric)
    if champion_version == challenger.version:
        reason = f"version {challenger.version} is already @{CHAMPION}"
        return PromotionResult(False, reason, champion_after=champion_version, champion_value=value, **result)

    champion_value = None
    if champion_version is None:
        how = "first"
    else:
        champion_mv = get_version(client, model_name, champion_version)
        champion_value = _metric(client, champion_mv, metric)
        better = champion_value is not None and (value > champion_value if higher_is_better else value < champion_value)
        worse = []  # a guard the champion has not got (an older version) cannot be compared
        for guard in guards:
            mine, theirs = _metric(client, challenger, guard), _metric(client, champion_mv, guard)
            if theirs is not None and (mine is None or mine < theirs):
                worse.append(f"{guard}={'missing' if mine is None else f'{mine:.4f}'} < {theirs:.4f}")
        if better and worse and not force:
            reason = (f"not promoted: version {challenger.version} {metric}={value:.4f} is better than @{CHAMPION} version "
                      f"{champion_version} {metric}={champion_value:.4f} but worse on {', '.join(worse)}")
            return PromotionResult(False, reason, champion_after=champion_version, champion_value=champion_value, **result)
        how = "better" if better else "forced" if force else None
        if champion_value is None and how is None:
            raise RegistryError(f"@{CHAMPION} version {champion_version} has no metric {metric!r} to compare with: use force")
        if how is None:
            reason = (f"not promoted: version {challenger.version} {metric}={value:.4f} is not better than "
                      f"@{CHAMPION} version {champion_version} {metric}={champion_value:.4f}")
            return PromotionResult(False, reason, champion_after=champion_version, champion_value=champion_value, **result)

    stamp = _now()
    client.set_model_version_tag(model_name, challenger.version, "promoted_at", stamp)
    client.set_model_version_tag(model_name, challenger.version, "promoted_from", champion_version or "none")
    client.set_model_version_tag(model_name, challenger.version, "promotion", how)
    client.set_model_version_tag(model_name, challenger.version, "promotion_metric", f"{metric}={value}")
    if champion_version is not None:
        client.set_model_version_tag(model_name, champion_version, "demoted_at", stamp)
        client.set_model_version_tag(model_name, champion_version, "demoted_by", challenger.version)
    _write_history(client, model_name, history, history + [challenger.version])
    client.set_registered_model_alias(model_name, CHAMPION, challenger.version)  # last step

    previous = f"version {champion_version} ({metric}={champion_value})" if champion_version else "none"
    reason = f"promoted ({how}): version {challenger.version} ({metric}={value}) is @{CHAMPION}; before: {previous}"
    return PromotionResult(True, reason, champion_after=challenger.version, champion_value=champion_value, **result)


def rollback(model_name: str) -> PromotionResult:
    """Point ``champion`` back at the previous champion of the history."""
    client = mlflow_client()
    history = _history(*registered_model(client, model_name))
    if len(history) < 2:
        raise RegistryError(f"{model_name}: no previous @{CHAMPION} to roll back to (history {history})")
    current, target = history[-1], history[-2]
    if not is_complete(get_version(client, model_name, target)):
        raise RegistryError(f"{model_name} version {target} is not complete=true; not rolling back to it")

    stamp = _now()
    client.set_model_version_tag(model_name, target, "rolled_back_at", stamp)
    client.set_model_version_tag(model_name, target, "rolled_back_from", current)
    client.set_model_version_tag(model_name, current, "demoted_at", stamp)
    client.set_model_version_tag(model_name, current, "demoted_by", f"rollback to {target}")
    _write_history(client, model_name, history, history[:-1])
    client.set_registered_model_alias(model_name, CHAMPION, target)  # last step
    reason = f"rolled back: @{CHAMPION} is version {target} again (was {current})"
    return PromotionResult(True, reason, challenger=target, champion_before=current, champion_after=target)
