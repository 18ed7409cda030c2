"""Who or what made a change. Every service that changes state takes an ``actor``."""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from typing import TYPE_CHECKING

from customers.models import ActorType

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser


@dataclass(frozen=True)
class Actor:
    type: str
    label: str
    user: AbstractBaseUser | None = None

    @classmethod
    def staff(cls, user: AbstractBaseUser) -> Actor:
        return cls(type=ActorType.STAFF, label=user.get_username(), user=user)

    @classmethod
    def system(cls, label: str = "system") -> Actor:
        return cls(type=ActorType.SYSTEM, label=label)

    @classmethod
    def command(cls, name: str) -> Actor:
        """A management command, named with the operating-system account that ran it."""
        try:
            account = getpass.getuser()
        except (OSError, KeyError):  # no login name and no passwd entry (some containers)
            account = "unknown"
        return cls(type=ActorType.SYSTEM, label=f"{name} (run by {account})")

    @classmethod
    def gateway(cls, label: str) -> Actor:
        return cls(type=ActorType.GATEWAY, label=label)

    @classmethod
    def webhook(cls, label: str) -> Actor:
        return cls(type=ActorType.WEBHOOK, label=label)

    @classmethod
    def customer(cls, label: str = "customer") -> Actor:
        return cls(type=ActorType.CUSTOMER, label=label)

    def audit_fields(self) -> dict[str, object]:
        """The columns every audit/event table stores for its actor."""
        return {"actor_type": self.type, "actor_label": self.label[:150], "actor_user": self.user}
