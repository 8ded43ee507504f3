"""The exported Grafana dashboards, by file name: each is the JSON Grafana stores (schemaVersion 42)."""

from __future__ import annotations

from typing import Any

# First: panels imports grafana-foundation-sdk with its import-time deprecation warning silenced.
from llmlens.export import panels  # noqa: F401
from llmlens.export.dashboards.llm_overview import llm_overview
from llmlens.export.dashboards.red import red_and_service_graph
from llmlens.export.dashboards.traces_logs import traces_and_logs


def build_dashboards(*, default_job: str, llmlens_url: str) -> dict[str, dict[str, Any]]:
    """Every dashboard, keyed by its file name (`<uid>.json`)."""
    boards = [llm_overview(default_job), red_and_service_graph(default_job), traces_and_logs(llmlens_url)]
    return {f"{board['uid']}.json": board for board in boards}
