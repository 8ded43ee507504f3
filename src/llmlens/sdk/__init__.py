"""The llmlens SDK: init(), OpenAI instrumentation, observe(), context(), metrics, logging, scores.

Use it through the top-level `llmlens` package; the modules here hold one concern each.
"""
