"""Failed sign-ins are limited by where they come from, so that nobody can lock a user out by knowing their email.

- Per (email, address block): 5 failures, then one a minute. The attacker's own address runs dry; the user's does not.
- Per address block (IPv4 address, IPv6 /64): 20 failures over all emails, then one each 10 seconds, so that one place
  cannot spray many emails (and each refusal costs no argon2).
- Per email, from everywhere: 20 failures, then one a minute. This one never refuses (an email is public, and a limit
  keyed on it alone would be a lockout switch); once it runs dry, each further failed answer for that email is held
  back for a second: friction for a distributed guesser, nothing for the user, whose correct password is not delayed.

A success gives back its attempt's tokens. Buckets are least-recently-used sets of at most 100,000 each, so memory is
bounded whatever arrives; evicting a bucket only forgets failures, and filling a set takes 100,000 failures, which the
per-address limit spreads over many addresses and much time.
"""

from __future__ import annotations

from token_broker.guard.throttle import RecentFailures, TokenBuckets
from token_broker.sources import source_of

FRICTION_SECONDS = 1.0


class SignInThrottle:
    def __init__(
        self,
        per_pair: tuple[float, float] = (5, 1 / 60),
        per_address: tuple[float, float] = (20, 1 / 10),
        per_email: tuple[float, float] = (20, 1 / 60),
    ) -> None:
        self.by_pair = TokenBuckets(*per_pair)
        self.by_address = TokenBuckets(*per_address)
        self.by_email = TokenBuckets(*per_email)
        self.recent = RecentFailures()  # sources whose sign-ins failed lately: hashed behind others (hashing_pool)
        self.refused = 0

    def admit(self, email: str, address: str | None) -> bool:
        """May this attempt be checked? Takes one attempt from the pair's and the address block's budgets."""
        block = source_of(address)
        pair = f"{block} {email}"
        if not self.by_pair.take(pair):
            self.refused += 1
            return False
        if not self.by_address.take(block):
            self.by_pair.give_back(pair)
            self.refused += 1
            return False
        return True

    def failed(self, email: str, address: str | None = None) -> float:
        """Note a failure against the email's global count (and the address as a suspect); the seconds to hold the
        failed answer back (0 or more)."""
        self.recent.failed(address)
        return 0.0 if self.by_email.take(email) else FRICTION_SECONDS

    def suspect(self, address: str | None) -> bool:
        return self.recent.suspect(address)

    def succeeded(self, email: str, address: str | None) -> None:
        block = source_of(address)
        self.by_pair.give_back(f"{block} {email}")
        self.by_address.give_back(block)
