"""What a training-set request means in a Feast registry, checked before Feast runs a query.

Feast reports an unknown feature as a ``KeyError`` from deep inside its join, an entity frame
without a join key as a dask error, and a join key of the wrong type as a pandas merge error.
Here every reference of the request is resolved against the registry first, so a mistake is a
``ConfigError`` naming the reference and what the registry has instead.

This module reads registry objects (feature views, services) through their attributes and
imports nothing from Feast itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlrelay.errors import ConfigError
from mlrelay.features.spec import FeatureRequest

if TYPE_CHECKING:
    import pandas as pd

# Feast primitive type names -> the numpy dtype kinds a join key column may have for them.
_KEY_KINDS = {"INT32": "iu", "INT64": "iu", "STRING": "OSU"}


@dataclass
class Plan:
    """A request resolved against the registry.

    Attributes:
        refs: the feature references served (``"view:feature"``), services expanded.
        keys: the join keys the entity rows must have, in first-use order.
        key_types: each join key's Feast type, to check the entity column against.
        request_fields: request data that on-demand views compute from.
        view_columns: for each feature view read, the output columns of its features.
        views: the feature views read (whose data files must exist).
    """

    refs: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    key_types: dict[str, Any] = field(default_factory=dict)
    request_fields: list[str] = field(default_factory=list)
    view_columns: dict[str, list[str]] = field(default_factory=dict)
    views: list[Any] = field(default_factory=list)

    def add_keys(self, columns: list[Any], key_map: dict[str, str] | None = None) -> None:
        for column in columns:
            name = (key_map or {}).get(column.name, column.name)
            if name not in self.keys:
                self.keys.append(name)
                self.key_types[name] = column.dtype


def resolve(store: Any, request: FeatureRequest) -> Plan:
    """Resolve the request's features or service; ``ConfigError`` for any unknown name."""
    views = {v.name: v for v in store.list_feature_views()}
    on_demand = {v.name: v for v in store.list_on_demand_feature_views()}
    if not views and not on_demand:
        raise ConfigError(
            f"the registry of project {store.project!r} is empty: apply the repo first "
            "(`feast apply`, or apply_definitions='if_empty')",
            field="repo",
        )
    if request.feature_service:
        wanted = _service_projections(store, request.feature_service, views, on_demand)
    else:
        wanted = _referenced(store, request.features, views, on_demand)

    plan = Plan()
    for view, alias, names, key_map in wanted:
        plan.refs.extend(f"{view}:{n}" for n in names)
        if view in views:
            plan.views.append(views[view])
            plan.view_columns[alias] = [
                f"{alias}__{n}" if request.full_feature_names else n for n in names
            ]
            plan.add_keys(views[view].entity_columns, key_map)
            continue
        odfv = on_demand[view]
        for source in odfv.source_feature_view_projections.values():
            if source.name in views:
                plan.add_keys(views[source.name].entity_columns)
        for request_source in odfv.source_request_sources.values():
            plan.request_fields.extend(
                f.name for f in request_source.schema if f.name not in plan.request_fields
            )
    return plan


Wanted = list[tuple[str, str, list[str], dict[str, str]]]  # view, alias, features, key map


def _service_projections(
    store: Any, name: str, views: dict[str, Any], on_demand: dict[str, Any]
) -> Wanted:
    services = {s.name: s for s in store.list_feature_services()}
    if name not in services:
        raise ConfigError(
            f"no feature service {name!r} in project {store.project!r}; it has {sorted(services)}",
            field="feature_service",
        )
    wanted: Wanted = []
    for p in services[name].feature_view_projections:
        if p.name not in views and p.name not in on_demand:
            raise ConfigError(
                f"service {name!r} uses feature view {p.name!r}, which the registry no longer "
                "has (apply the repo again)",
                field="feature_service",
            )
        wanted.append((p.name, p.name_to_use(), [f.name for f in p.features], p.join_key_map))
    return wanted


def _referenced(
    store: Any, refs: list[str], views: dict[str, Any], on_demand: dict[str, Any]
) -> Wanted:
    by_view: dict[str, list[str]] = {}
    for ref in refs:
        view, _, name = ref.partition(":")
        definition = views.get(view) or on_demand.get(view)
        if definition is None:
            raise ConfigError(
                f"{ref!r}: no feature view {view!r} in project {store.project!r}; it has "
                f"{sorted([*views, *on_demand])}",
                field="features",
            )
        defined = [f.name for f in definition.features]
        if name not in defined:
            raise ConfigError(
                f"{ref!r}: feature view {view!r} has no feature {name!r}; it has {defined}",
                field="features",
            )
        by_view.setdefault(view, []).append(name)
    return [(view, view, names, {}) for view, names in by_view.items()]


def check_columns(entities: pd.DataFrame, plan: Plan, *, on: list[str], full_names: bool) -> None:
    """The entity rows fit the plan: no column the features would fill, join keys typed right."""
    columns = [c for cols in plan.view_columns.values() for c in cols]
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise ConfigError(
            f"feature name(s) {repeated} are served by more than one view; "
            "set full_feature_names=True",
            field="features",
        )
    clash = sorted(set(columns) & (set(entities.columns) - set(on)))
    if clash:
        hint = "" if full_names else " (or set full_feature_names=True)"
        raise ConfigError(
            f"entity rows already have column(s) {clash} that the features would fill; "
            f"rename them{hint}",
            field="entity_source",
        )
    for key, feast_type in plan.key_types.items():
        kinds = _KEY_KINDS.get(getattr(feast_type, "name", ""))
        if kinds and entities[key].dtype.kind not in kinds:
            raise ConfigError(
                f"join key {key!r} holds {entities[key].dtype} values but the feature views key "
                f"it by {feast_type}",
                field="entity_source",
            )
