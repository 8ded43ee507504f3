"""The web UI: server-rendered page shells, vanilla JS modules and vendored charts."""
