"""Alerting: declarative rules over stored telemetry (rules.py, catalogue.py), one grouped query
per rule (signals.py), evaluated every interval into per-group states kept in the store
(evaluator.py, state.py), and delivered to Alertmanager, webhooks and Slack (notify.py)."""
