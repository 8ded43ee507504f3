"""Microseconds per Redactor.redact() on a ~500-character prompt, with and without PII.

Run: python benchmarks/pii.py
"""

from __future__ import annotations

import timeit

from llmlens.pii import Redactor

CLEAN = (
    "You are a helpful assistant for an online bookshop. The customer asks about order #12345678 "
    "placed on 2026-11-23, which contained 3 paperbacks priced $12.99 each and one hardcover at "
    "$24.50. Shipping took 5 days instead of the promised 2. Please draft a polite reply that "
    "apologises for the delay, explains that our warehouse moved to version 2.4.1 of the routing "
    "software last week, offers a 10% discount code on the next purchase, and asks whether the "
    "books arrived in good condition. Keep it under 120 words and sign it from the support team."
)
WITH_PII = (
    "You are a helpful assistant for an online bookshop. The customer Jane Roe (jane.roe@example.com, "
    "+44 20 7946 0958) asks about order #12345678 placed on 2026-11-23 and paid with card "
    "4111 1111 1111 1111. She wrote from IP 203.0.113.42 and included her IBAN "
    "GB82 WEST 1234 5698 7654 32 for a refund. Our API key sk-proj-abcdefghijklmnopqrstuvwx123 "
    "leaked into the log too. Please draft a polite reply that apologises for the delay, offers a "
    "10% discount code on the next purchase, and keeps it under 120 words, signed by support."
)
NO_DIGITS = CLEAN.translate(str.maketrans("", "", "0123456789#$%"))


def per_call_us(redactor: Redactor, text: str, number: int = 20_000) -> float:
    best = min(timeit.repeat(lambda: redactor.redact(text), number=number, repeat=5))
    return best / number * 1e6


def main() -> None:
    redactor = Redactor()
    for label, text in (
        ("no PII", CLEAN),
        ("with PII", WITH_PII),
        ("no digits (pre-check skips)", NO_DIGITS),
    ):
        print(f"{label:30s} {len(text):4d} chars  {per_call_us(redactor, text):7.1f} us/redact")
    print(
        f"{'hash mode, with PII':30s} {len(WITH_PII):4d} chars  {per_call_us(Redactor(mode='hash'), WITH_PII):7.1f} us/redact"
    )


if __name__ == "__main__":
    main()
