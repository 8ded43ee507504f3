"""Who uses the demo chatbot: three apps of one company, each with its department, models and users.

The traffic generator plays them, so the stored data has something to compare: models large and
small, an Anthropic model reached through an OpenAI-compatible gateway (recorded as provider
`anthropic`), a local model without a price, costs by app, department and user, and sessions.
All of them are answered by the mock LLM; nothing leaves the machine.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class DemoApp:
    name: str  # llmlens.app
    department: str  # llmlens.department
    model: str  # for everyday questions
    large_model: str  # for long, involved ones
    user_prefix: str
    users: int  # size of the app's user population: small, so each user comes back
    weight: float  # share of the traffic

    def user_id(self, rng: random.Random) -> str:
        return f"{self.user_prefix}-{rng.randint(1, self.users):03d}"


APPS = (
    DemoApp("support-bot", "customer-support", "gpt-4o-mini", "gpt-4o", "customer", 30, 5.0),
    # A gateway (LiteLLM, OpenRouter) names the provider in the model id; the SDK records it.
    DemoApp(
        "sales-assistant", "sales", "anthropic/claude-haiku-4-5", "anthropic/claude-sonnet-4-5", "rep", 8, 2.0
    ),
    # A model served locally (Ollama-style): no list price, so its calls show as unpriced.
    DemoApp("it-helpdesk", "it", "phi3", "phi3", "employee", 12, 1.5),
)
DEFAULT_APP = APPS[0]
# Every model the demo's traffic asks for, the chatbot's default first.
DEMO_MODELS = tuple(dict.fromkeys(m for app in APPS for m in (app.model, app.large_model)))


def pick_app(rng: random.Random) -> DemoApp:
    return rng.choices(APPS, [app.weight for app in APPS])[0]
