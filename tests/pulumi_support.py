"""A Pulumi mock engine that records every registration: type, name, inputs, parent, dependencies.

Mocks are process-global, so every component test uses this one harness; `fresh_engine()` starts
each test with an empty record.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime.mocks import MockMonitor


@dataclass
class Registration:
    urn: str
    type: str
    name: str
    inputs: dict[str, Any]
    parent: str
    dependencies: list[str]
    custom: bool
    provider: str = ""


@dataclass
class Engine(pulumi.runtime.Mocks):
    registrations: list[Registration] = field(default_factory=list)
    _pending: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    # Live state returned when the program reads an existing object (`Resource.get`), by its id.
    live: dict[str, dict[str, Any]] = field(default_factory=dict)
    reads: list[tuple[str, str]] = field(default_factory=list)

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        if args.resource_id:
            self.reads.append((args.typ, args.resource_id))
            return args.resource_id, dict(self.live.get(args.resource_id, {}))
        state = dict(args.inputs)
        if args.typ.startswith("kubernetes:") and "metadata" in state:
            state["metadata"] = {"name": args.name, **(state["metadata"] or {})}
        if args.typ == "docker-build:index:Image":
            state["ref"] = f"{(args.inputs.get('tags') or ['image'])[0]}@sha256:{'0' * 64}"
        meta = self._pending.pop((args.typ, args.name), {})
        self.registrations.append(
            Registration(
                urn=meta.get("urn", ""),
                type=args.typ,
                name=args.name,
                inputs=dict(args.inputs),
                parent=meta.get("parent", ""),
                dependencies=meta.get("dependencies", []),
                custom=args.custom,
                provider=args.provider or "",
            )
        )
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        return {}

    def by_name(self, name: str) -> Registration:
        return next(r for r in self.registrations if r.name == name)

    def of_type(self, type_: str) -> list[Registration]:
        return [r for r in self.registrations if r.type == type_]


class RecordingMonitor(MockMonitor):
    engine: Engine

    def RegisterResource(self, request: Any) -> Any:
        urn = self.make_urn(request.parent, request.type, request.name)
        self.engine._pending[(request.type, request.name)] = {
            "urn": urn,
            "parent": request.parent,
            "dependencies": list(request.dependencies),
        }
        return super().RegisterResource(request)


ENGINE = Engine()


def fresh_engine(live: dict[str, dict[str, Any]] | None = None, preview: bool = False) -> Engine:
    ENGINE.registrations.clear()
    ENGINE._pending.clear()
    ENGINE.reads.clear()
    ENGINE.live = dict(live or {})
    # Stack config a previous program set would leak into this one.
    pulumi.runtime.set_all_config({})
    monitor = RecordingMonitor(ENGINE)
    monitor.engine = ENGINE
    pulumi.runtime.set_mocks(
        ENGINE, project="sailplan", stack="test", preview=preview, monitor=monitor
    )
    return ENGINE


def register(
    build: Callable[[], Any],
    live: dict[str, dict[str, Any]] | None = None,
    preview: bool = False,
) -> tuple[Engine, Any]:
    """Run `build` under a fresh mock engine and wait for every registration and output.

    `live` is the state of existing objects the program reads, by id ("<namespace>/<name>");
    `preview` runs it as `pulumi preview` does (outputs of new resources unknown).
    Returns the engine and the resolved value of what `build` returned (an Output or plain value).
    """
    engine = fresh_engine(live, preview)
    resolved: dict[str, Any] = {}

    @pulumi.runtime.test
    def run() -> Any:
        return pulumi.Output.from_input(build()).apply(lambda value: resolved.update(value=value))

    run()
    return engine, resolved.get("value")
