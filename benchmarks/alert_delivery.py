"""Time from the first error span to the alert in Alertmanager, by both engines: a real `llmlens
serve` evaluating HighErrorRate itself (sending to one Alertmanager), and Debian's Prometheus
scraping that server's /metrics with the same rule as `llmlens export prometheus-rules` writes
it (sending to a second Alertmanager).

    python benchmarks/alert_delivery.py [--rounds 5] [--for 2s] [--window 30s] [--interval 1s]

Each round sends a burst (3 failed and 2 good calls every 0.5 s) for a model not seen before, and
polls both Alertmanagers' /api/v2/alerts every 0.1 s until each holds the alert of that model. The
rule is the default HighErrorRate (error rate > 5% by model, at least 10 calls) with a shorter
`for` and window; `--interval` is llmlens's --rules-interval and Prometheus's scrape and evaluation
interval. Prints each round and the median of each path.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.integration.otlp_requests import llm_attrs, make_span, post, trace_request  # noqa: E402
from tests.monitoring_processes import alertmanager, alerts, prometheus  # noqa: E402
from tests.server_process import ServerProcess  # noqa: E402

RULES = """\
rules:
  - name: HighErrorRate
    signal: error_rate
    window: {window}
    group_by: [model]
    op: ">"
    threshold: 0.05
    for: {for_}
    min_samples: 10
    labels: {{severity: critical}}
"""


def send_burst(server: ServerProcess, model: str) -> None:
    spans = [make_span("chat " + model, attrs=llm_attrs(model, 10, 5), error=i < 3) for i in range(5)]
    answer = post(server.url, "traces", trace_request(spans, service="alert-delivery-bench"))
    answer.raise_for_status()


def holds(url: str, model: str) -> bool:
    return any(a["labels"].get("model") == model for a in alerts(url, "HighErrorRate"))


def one_round(server: ServerProcess, model: str, managers: dict[str, str], timeout_s: float) -> dict[str, float]:
    reached: dict[str, float] = {}
    first_error = time.monotonic()
    next_burst = first_error
    while len(reached) < len(managers):
        now = time.monotonic()
        if now >= next_burst:
            send_burst(server, model)
            next_burst = now + 0.5
        for name, url in managers.items():
            if name not in reached and holds(url, model):
                reached[name] = time.monotonic() - first_error
        if time.monotonic() - first_error > timeout_s:
            raise RuntimeError(f"{model}: only {sorted(reached)} reached Alertmanager in {timeout_s:.0f} s")
        time.sleep(0.1)
    return reached


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--for", dest="for_", default="2s", help="the rule's for (default: %(default)s)")
    parser.add_argument("--window", default="30s", help="the rule's window (default: %(default)s)")
    parser.add_argument("--interval", default="1s",
                        help="llmlens --rules-interval, Prometheus scrape and evaluation interval (default: %(default)s)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="llmlens-alert-delivery-") as tmp_name:
        tmp = Path(tmp_name)
        rules = tmp / "rules.yaml"
        rules.write_text(RULES.format(window=args.window, for_=args.for_))
        exported = tmp / "llmlens.rules.yml"
        subprocess.run([sys.executable, "-m", "llmlens.cli", "export", "prometheus-rules", "--rules-file", str(rules),
                        "--no-alerts-default-rules", "--out", str(exported)], check=True, capture_output=True)
        with alertmanager(tmp / "am-llmlens") as am_llmlens, alertmanager(tmp / "am-prometheus") as am_prometheus:
            server = ServerProcess(tmp / "data", extra_args=[
                "--rules-file", str(rules), "--rules-interval", args.interval, "--no-alerts-default-rules",
                "--alertmanager-url", am_llmlens]).start()
            try:
                config = {
                    "global": {"scrape_interval": args.interval, "scrape_timeout": args.interval,
                               "evaluation_interval": args.interval},
                    "rule_files": [str(exported)],
                    "alerting": {"alertmanagers": [{"static_configs": [{"targets": [am_prometheus.split("//")[1]]}]}]},
                    "scrape_configs": [{"job_name": "llmlens",
                                        "static_configs": [{"targets": [server.url.split("//")[1]]}]}],
                }
                with prometheus(tmp / "prometheus", config):
                    managers = {"llmlens": am_llmlens, "prometheus": am_prometheus}
                    print(f"rule: error_rate by model > 5%, window {args.window}, for {args.for_}; "
                          f"interval {args.interval}")
                    results: list[dict[str, float]] = []
                    for i in range(args.rounds):
                        reached = one_round(server, f"bench-model-{i}", managers, timeout_s=120)
                        results.append(reached)
                        print(f"round {i + 1}: first error span -> Alertmanager: "
                              + ", ".join(f"through {name} {reached[name]:.2f} s" for name in managers))
                    for name in managers:
                        times = [r[name] for r in results]
                        print(f"{name}: median {statistics.median(times):.2f} s (min {min(times):.2f}, "
                              f"max {max(times):.2f}) over {len(times)} rounds")
            finally:
                server.terminate()


if __name__ == "__main__":
    main()
