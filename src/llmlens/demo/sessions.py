"""Per-session chat history for the chatbot: bounded in turns per session and in sessions overall."""

from __future__ import annotations

from collections import OrderedDict

Message = dict[str, str]


class SessionStore:
    """In-memory, least-recently-used eviction; the demo needs no persistence across restarts."""

    def __init__(self, max_sessions: int = 1000, max_turns: int = 6) -> None:
        self._sessions: OrderedDict[str, list[Message]] = OrderedDict()
        self._max_sessions = max_sessions
        self._max_messages = max_turns * 2

    def __len__(self) -> int:
        return len(self._sessions)

    def history(self, session_id: str) -> list[Message]:
        messages = self._sessions.get(session_id)
        if messages is None:
            return []
        self._sessions.move_to_end(session_id)
        return list(messages)

    def append_turn(self, session_id: str, user_message: str, answer: str) -> None:
        messages = self._sessions.setdefault(session_id, [])
        messages += [{"role": "user", "content": user_message}, {"role": "assistant", "content": answer}]
        del messages[: -self._max_messages]
        self._sessions.move_to_end(session_id)
        while len(self._sessions) > self._max_sessions:
            self._sessions.popitem(last=False)

    def reset(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)
