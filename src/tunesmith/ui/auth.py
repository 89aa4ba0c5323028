"""Who may use the dashboard: the token (the same rules as ``serve``) typed once on the login page, then a session
cookie (HttpOnly, SameSite=Strict, random, kept in memory: a restart logs everyone out). Every state-changing request
carries the session's CSRF token, as a form field or the X-CSRF-Token header, compared in constant time."""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass, field

COOKIE = "tunesmith_session"
SESSION_SECONDS = 12 * 3600
MAX_SESSIONS = 256


@dataclass
class Session:
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    expires: float = field(default_factory=lambda: time.time() + SESSION_SECONDS)


class Sessions:
    def __init__(self, token: str):
        self.token = token
        self._sessions: dict[str, Session] = {}

    def login(self, given: str) -> str | None:
        """A new session id when ``given`` is the token, else None."""
        if not hmac.compare_digest(given.strip().encode("utf-8", "replace"), self.token.encode()):
            return None
        now = time.time()
        self._sessions = {k: s for k, s in self._sessions.items() if s.expires > now}
        while len(self._sessions) >= MAX_SESSIONS:
            self._sessions.pop(min(self._sessions, key=lambda k: self._sessions[k].expires))
        sid = secrets.token_urlsafe(32)
        self._sessions[sid] = Session()
        return sid

    def get(self, sid: str | None) -> Session | None:
        session = self._sessions.get(sid or "")
        if session is None or session.expires < time.time():
            return None
        return session

    def logout(self, sid: str | None) -> None:
        self._sessions.pop(sid or "", None)

    @staticmethod
    def csrf_ok(session: Session, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(given.encode("utf-8", "replace"), session.csrf.encode())
