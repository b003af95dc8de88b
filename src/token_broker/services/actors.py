"""Who is acting: the operator (CLI), a dashboard user, or (later) a credential. Audit rows name the actor's label."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    label: str
    user_id: int | None = None
    client_address: str | None = None

    @property
    def is_operator(self) -> bool:
        return self.user_id is None and self.label == "operator"

    @classmethod
    def operator(cls, client_address: str | None = None) -> Actor:
        return cls(label="operator", client_address=client_address)

    @classmethod
    def user(cls, user_id: int, public_id: str, client_address: str | None = None) -> Actor:
        return cls(label=public_id, user_id=user_id, client_address=client_address)

    @classmethod
    def credential(cls, public_id: str, client_address: str | None = None) -> Actor:
        """A workspace API key or partner install token acting through the workspace API, labelled by its id."""
        return cls(label=f"credential:{public_id}", client_address=client_address)
