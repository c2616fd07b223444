"""``testSmtpConnection`` and its answer, ``SmtpConnectionResult`` (CONTRACT section 7)."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import Info

from tocsin.channels.registry import kind_for
from tocsin.resolvers.smtp_test import run_smtp_test
from tocsin.schema.inputs import EmailChannelInput, camel_case, present_fields
from tocsin.schema.permissions import EDITORS
from tocsin.schema.types import UserError, user_errors


@strawberry.type(
    description="What testSmtpConnection found. stage names the step that failed: CONNECT, "
    "TLS or AUTH; null when ok."
)
class SmtpConnectionResult:
    ok: bool
    stage: str | None
    error: str | None = strawberry.field(
        description="The server's answer (code and text) or why Tocsin stopped, without secrets."
    )
    latency_ms: float
    status_code: int | None = strawberry.field(
        description="The SMTP reply code of the failure, when the server gave one."
    )
    errors: list[UserError] = strawberry.field(
        description="Problems with the input (as a save would report them): nothing was "
        "connected to, ok is false, stage CONNECT and error the first problem's message."
    )


def _changes(data: EmailChannelInput | None) -> dict[str, Any]:
    """The fields the client sent, by the storage key the e-mail kind declares."""
    if data is None:
        return {}
    keys = {item.input: item.stored_as for item in kind_for("EMAIL").fields}
    return {keys.get(camel_case(name), name): v for name, v in present_fields(data).items()}


async def test_smtp_connection(
    info: Info, id: strawberry.ID | None = None, input: EmailChannelInput | None = None
) -> SmtpConnectionResult:
    outcome, problems = await run_smtp_test(
        info.context, str(id) if id is not None else None, _changes(input)
    )
    return SmtpConnectionResult(
        ok=outcome.ok,
        stage=outcome.stage,
        error=outcome.error,
        latency_ms=outcome.latency_ms,
        status_code=outcome.status_code,
        errors=user_errors(problems),
    )


test_smtp_connection_field: Any = strawberry.mutation(
    resolver=test_smtp_connection,
    permission_classes=EDITORS,
    description="Connects, negotiates TLS and logs in, then quits: no mail is sent. With id, "
    "the saved channel's stored values (its password included) fill whatever input leaves "
    "out. EDITOR; audited.\nAn input that cannot be tested (a missing, malformed or refused "
    "host, a plain-text login outside the allowed networks, an unknown id) is not connected "
    "to: it answers ok false, stage CONNECT, the first problem's message as error, and every "
    "problem in errors.",
)
