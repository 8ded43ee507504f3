"""OTLP request bytes -> what the normaliser reads: protobuf messages (messages.py) or, for protobuf
trace bodies, span tuples read straight from the wire by a C fast path (spans.py), with attribute
values in their stored form (attributes.py). Nothing here knows tables or rows."""
