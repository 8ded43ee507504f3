"""Per-user alert signals count a call whose user is set only on its trace's request span, exported in
another request (trace_index: query/call_context.py), on a real embedded store."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from zoneinfo import ZoneInfo

from llmlens.server.alerts.rules import parse_rules
from llmlens.server.alerts.signals import measure
from llmlens.server.normalise import normalise_spans
from llmlens.server.normalise.cost import build_cost_model
from llmlens.server.store import Store, open_backend
from tests.alert_seed import llm_call, ns, reference_now, write

NOW = reference_now()


def _run(store: Store, text: str) -> dict[str, float]:
    found = asyncio.run(measure(store, parse_rules(f"rules:\n  - {text}\n", "test")[0], NOW, ZoneInfo("UTC"), 30))
    return {m.labels.get("user", ""): round(m.value, 9) for m in found}


def test_budget_per_user_reads_the_users_of_calls_traces(tmp_path):
    store = Store(open_backend(data_dir=str(tmp_path / "data")))
    try:
        app, user = "app-" + uuid.uuid4().hex[:8], "u-" + uuid.uuid4().hex[:8]
        at = NOW - timedelta(hours=1)
        orphan = llm_call(at, app=app, cost=10.0, user="")  # its user is on its trace's request span only
        own = llm_call(at, app=app, cost=5.0, user="other")
        write(store, [orphan, own])
        request_span = (orphan["TraceId"], "1" * 16, "", "", "handle_request", 2, ns(at), ns(at) + 10**9, 0, "",
                        {"user.id": user}, None, None)
        batch = normalise_spans([({"service.name": "svc"}, [("app", "", [request_span])])],
                                build_cost_model(window=None))
        store.write_sync(batch.freeze(), timeout=60)
        budget = f"name: B, signal: budget, period: day, amount: 100, filters: {{app: {app}}}"
        assert _run(store, f"{{{budget}, group_by: [user]}}") == {user: 0.10, "other": 0.05}
        assert _run(store, f"{{name: B, signal: budget, period: day, amount: 100, filters: {{app: {app}, user: {user}}}}}") == {"": 0.10}
    finally:
        store.close()
