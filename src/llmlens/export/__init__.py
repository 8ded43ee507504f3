"""What teams on Prometheus and Grafana take from llmlens: dashboards, provisioning files, rule files.

`llmlens export grafana` writes the dashboards (built with grafana-foundation-sdk) and the
provisioning files that load them; `llmlens export prometheus-rules` writes recording rules.
Both read only the metric names and labels of the llmlens server's `/metrics` (and of the SDK's
in-process metrics), never the store, so they need the `export` extra and nothing of the server.
"""
