"""GET /api/v1/quality on a real server: scores sent as OTel GenAI evaluation events (as llmlens.score()
and evaluators record them) on traces with known model calls, checked against what was sent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.integration.otlp_requests import (
    MS,
    key_values,
    llm_attrs,
    make_span,
    new_trace_id,
    post,
    trace_request,
)
from tests.server_process import ServerProcess

SECOND = 1_000_000_000
MODELS = ("gpt-4o", "gpt-4o-mini")
APPS = ("support", "search")


@dataclass(frozen=True)
class Sent:
    name: str
    value: float
    model: str
    app: str
    minute: int
    label: str = ""


@dataclass
class Data:
    server: ServerProcess
    base: datetime
    scores: list[Sent]

    def window(self, **extra: Any) -> dict[str, Any]:
        return {"start": iso(self.base - timedelta(minutes=1)), "end": iso(self.base + timedelta(minutes=8)), **extra}

    def of(self, name: str, **match: str) -> list[Sent]:
        return [s for s in self.scores if s.name == name and all(getattr(s, k) == v for k, v in match.items())]


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def score_event(name: str, value: float, time_ns: int, label: str = "") -> Span.Event:
    attrs: dict[str, Any] = {"gen_ai.evaluation.name": name, "gen_ai.evaluation.score.value": value}
    if label:
        attrs["gen_ai.evaluation.score.label"] = label
    return Span.Event(time_unix_nano=time_ns, name="gen_ai.evaluation.result", attributes=key_values(attrs))


@pytest.fixture(scope="module")
def data(llmlens_server: ServerProcess) -> Data:
    base = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=20)
    base_ns = int(base.timestamp()) * SECOND
    sent: list[Sent] = []
    spans_by_app: dict[str, list[Span]] = {app: [] for app in APPS}

    def scored_trace(app: str, models: list[str], minute: int, scores: list[tuple[str, float, str]],
                     on_call: int | None = None) -> None:
        """A root span with one model call per model; the scores are events of the root span, or of the
        on_call-th call's span (then that call's model is the score's)."""
        trace_id, start = new_trace_id(), base_ns + minute * 60 * SECOND + len(sent) * MS
        root = make_span("answer", trace_id=trace_id, start_ns=start, duration_ms=500)
        calls = [make_span(f"chat {m}", trace_id=trace_id, parent=root.span_id, start_ns=start + (i + 1) * 100 * MS,
                           duration_ms=50, attrs=llm_attrs(m, 10, 5)) for i, m in enumerate(models)]
        target = root if on_call is None else calls[on_call]
        for name, value, label in scores:
            target.events.append(score_event(name, value, start + 400 * MS, label))
            sent.append(Sent(name, value, models[-1] if on_call is None else models[on_call], app, minute, label))
        spans_by_app[app] += [root, *calls]

    for k in range(12):
        value = round(0.05 + 0.08 * k, 2)  # 0.05 .. 0.93
        scored_trace(APPS[k % 2], [MODELS[k % 3 == 0]], k % 4, [("helpfulness", value, "")])
    # two calls, scored on the trace: the last call's model; scored on the first call: its model
    scored_trace("support", ["gpt-4o", "gpt-4o-mini"], 1, [("helpfulness", 0.99, "")])
    scored_trace("support", ["gpt-4o", "gpt-4o-mini"], 2, [("helpfulness", 0.01, "")], on_call=0)
    for k, label in enumerate(["up", "up", "down"]):
        scored_trace("search", ["gpt-4o-mini"], k, [("thumbs", 1.0 if label == "up" else 0.0, label)])
    scored_trace("search", ["gpt-4o"], 0, [("rating", 2.0, ""), ("rating2", 7.0, "")])
    scored_trace("search", ["gpt-4o"], 3, [("rating", 5.0, "")])
    for app, spans in spans_by_app.items():
        answer = post(llmlens_server.url, "traces", trace_request(spans, service="qa", resource={"llmlens.app": app}))
        assert answer.status_code == 200, answer.text
    return Data(llmlens_server, base, sent)


def quality(data: Data, **params: Any) -> dict[str, Any]:
    answer = httpx.get(data.server.url + "/api/v1/quality", params=data.window(**params), timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def test_names_are_listed_with_their_counts_and_the_busiest_is_shown(data: Data) -> None:
    answer = quality(data)
    names = {n["name"]: n for n in answer["names"]}
    assert set(names) == {"helpfulness", "thumbs", "rating", "rating2"}
    for name, item in names.items():
        values = [s.value for s in data.of(name)]
        assert item["count"] == len(values)
        assert (item["min"], item["max"]) == (min(values), max(values))
        assert item["avg"] == pytest.approx(mean(values))
    assert answer["name"] == "helpfulness"  # the most recorded
    assert [n["name"] for n in answer["names"]][0] == "helpfulness"


def test_groups_by_model_and_app_attribute_the_scored_call(data: Data) -> None:
    groups = {(g["model"], g["app"]): g for g in quality(data, name="helpfulness")["groups"]}
    expected = {(s.model, s.app) for s in data.of("helpfulness")}
    assert set(groups) == expected
    for (model, app), group in groups.items():
        values = sorted(s.value for s in data.of("helpfulness", model=model, app=app))
        assert group["count"] == len(values)
        assert group["avg"] == pytest.approx(mean(values))
        assert (group["min"], group["max"]) == (values[0], values[-1])
        assert values[0] <= group["p10"] <= group["p50"] <= group["p90"] <= values[-1]
    # the two-call traces: scored on the trace -> the last call's model; on the first call -> its model
    assert 0.99 in [s.value for s in data.of("helpfulness", model="gpt-4o-mini", app="support")]
    assert groups[("gpt-4o", "support")]["min"] == 0.01


@pytest.mark.parametrize("group_by", ["model", "app"])
def test_series_mean_per_minute_per_line(data: Data, group_by: str) -> None:
    answer = quality(data, name="helpfulness", group_by=group_by, step="1m")
    assert answer["step_seconds"] == 60 and answer["group_by"] == group_by
    buckets = answer["buckets"]
    assert buckets[1] == iso(data.base)  # the window starts a minute before the first bucket of data
    lines = {line["key"]: line for line in answer["series"]}
    assert set(lines) == {getattr(s, group_by) for s in data.of("helpfulness")}
    for key, line in lines.items():
        assert len(line["avg"]) == len(line["count"]) == len(buckets)
        for minute in range(6):
            values = [s.value for s in data.of("helpfulness", **{group_by: key}) if s.minute == minute]
            i = buckets.index(iso(data.base + timedelta(minutes=minute)))
            assert line["count"][i] == len(values)
            assert line["avg"][i] == (pytest.approx(mean(values)) if values else None)


def test_filters_narrow_the_scores(data: Data) -> None:
    answer = quality(data, name="helpfulness", model="gpt-4o", app="search")
    want = data.of("helpfulness", model="gpt-4o", app="search")
    assert [(g["model"], g["app"], g["count"]) for g in answer["groups"]] == [("gpt-4o", "search", len(want))]
    assert sum(b["count"] for b in answer["distribution"]) == len(want)


def test_distribution_bins_over_zero_to_one_or_the_range(data: Data) -> None:
    bins = quality(data, name="helpfulness")["distribution"]
    assert len(bins) == 10 and bins[0]["lo"] == 0 and bins[-1]["hi"] == pytest.approx(1)
    for b in bins:
        inside = [s for s in data.of("helpfulness") if b["lo"] <= s.value < b["hi"] or (b["hi"] >= 1 and s.value == 1)]
        assert b["count"] == len(inside), b
    rating = quality(data, name="rating")["distribution"]  # values 2 and 5: bins over [2, 5]
    assert rating[0]["lo"] == 2 and rating[-1]["hi"] == pytest.approx(5)
    assert [b["count"] for b in rating] == [1, 0, 0, 0, 0, 0, 0, 0, 0, 1]


def test_labels_are_counted(data: Data) -> None:
    answer = quality(data, name="thumbs")
    assert answer["labels"] == [{"label": "up", "count": 2}, {"label": "down", "count": 1}]
    assert quality(data, name="helpfulness")["labels"] == []


def test_bad_parameters_and_unknown_name(data: Data) -> None:
    url = data.server.url + "/api/v1/quality"
    for params, parameter in (({"group_by": "service"}, "group_by"), ({"step": "soon"}, "step"),
                              ({"start": "yesterday"}, "start")):
        answer = httpx.get(url, params=params, timeout=30)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["parameter"] == parameter
    missing = httpx.get(url, params=data.window(name="no-such-score"), timeout=30)
    assert missing.status_code == 404 and missing.json()["error"]["parameter"] == "name"


def test_an_empty_range_has_no_names(data: Data) -> None:
    answer = httpx.get(data.server.url + "/api/v1/quality", params={"start": "2001-01-01T00:00:00Z",
                                                                    "end": "2001-01-02T00:00:00Z"}, timeout=30).json()
    assert answer["names"] == [] and answer["name"] is None and answer["series"] == []
