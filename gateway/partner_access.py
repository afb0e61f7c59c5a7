"""The broker user of an agency with an AMQP subscription: it may read its own queue
``<namespace>.partner.<agency>`` and nothing else (Hub Santé's one-identity-per-client).

RabbitMQ grants per vhost three regular expressions over resource names: configure
(declare, delete), write (publish to an exchange) and read (consume from a queue, bind
from an exchange). The partner gets ``^$`` for the first two, which matches no name,
and an anchored read expression naming its queue alone.
"""

import re
import shlex
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

NOTHING = "^$"
_WORD = re.compile(r"[a-z0-9_-]+")


@dataclass(frozen=True, slots=True)
class PartnerAccess:
    user: str
    password: str
    vhost: str
    queue: str
    configure: str = NOTHING
    write: str = NOTHING

    @property
    def read(self) -> str:
        return "^" + re.escape(self.queue) + "$"

    def commands(self) -> list[list[str]]:
        """``rabbitmqctl`` argument lists: create the user, then grant its permissions."""
        return [
            ["rabbitmqctl", "add_user", self.user, self.password],
            [
                "rabbitmqctl",
                "set_permissions",
                "-p",
                self.vhost,
                self.user,
                self.configure,
                self.write,
                self.read,
            ],
        ]

    def revoke_commands(self) -> list[list[str]]:
        return [["rabbitmqctl", "delete_user", self.user]]

    def script(self) -> str:
        """The commands as an operator pastes them into a shell, with how to undo them."""
        lines = [shlex.join(command) for command in self.commands()]
        lines += [
            f"# the agency consumes queue {self.queue} (vhost {self.vhost}) as {self.user};",
            "# it cannot declare, delete, publish or read anything else. To revoke:",
            *("# " + shlex.join(command) for command in self.revoke_commands()),
        ]
        return "\n".join(lines) + "\n"


def partner_queue(namespace: str, agency_id: str) -> str:
    return f"{namespace}.partner.{agency_id}"


def partner_access(
    namespace: str, agency_id: str, *, password: str, vhost: str = "/", user: str | None = None
) -> PartnerAccess:
    """Raises ``ValueError`` for a namespace or agency that is not one routing-key word."""
    for word in (namespace, agency_id):
        if not _WORD.fullmatch(word):
            raise ValueError(f"{word!r} is not a routing-key word")
    return PartnerAccess(
        user=user or f"{namespace}-partner-{agency_id}",
        password=password,
        vhost=vhost,
        queue=partner_queue(namespace, agency_id),
    )


def vhost_of(amqp_url: str) -> str:
    """The vhost an AMQP URL names: its path, percent-decoded; ``/`` when it has none."""
    path = urlsplit(amqp_url).path
    return unquote(path[1:]) if len(path) > 1 else "/"
