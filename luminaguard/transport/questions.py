"""Requests an MCP server sends to the client: questions for a person, and refusals.

A server may ask the user for input while a tool runs (MCP elicitation). This client
declares form-mode elicitation only, parses each form (``forms``) and hands it to an
``Asker`` -- the scheduler puts it in the approval queue and waits for a person -- then
returns the answer. Everything else a server may ask of the client is refused with a
message saying why, and the refusal is audited through the asker:

- a URL-mode question (a link chosen by the server, to be opened by a person);
- a form this client does not show (``FormError``);
- sampling (``sampling/createMessage``): no model is configured for an agent.
"""

from __future__ import annotations

from typing import Any, Protocol

import mcp_types as types
from mcp import ClientSession
from mcp.client.session import ClientRequestContext

from luminaguard.transport.forms import MAX_MESSAGE, Form, FormError, parse_form
from luminaguard.transport.reply import Reply

SAMPLING_REFUSED = (
    "LuminaGuard refuses sampling/createMessage: no model is configured for this agent"
)
URL_REFUSED = "LuminaGuard answers form questions only: a URL-mode question is declined"


class Asker(Protocol):
    """Whoever puts a server's question to a person and waits for the reply."""

    async def ask(self, message: str, form: Form) -> Reply:
        """Ask; the reply (a decline when nobody answers in time).

        Any exception refuses the question with its message (a server asking too much).
        """
        ...

    async def refuse(self, request: str, why: str) -> None:
        """Record that a request of the server was refused, and why."""
        ...


class GuardedSession(ClientSession):
    """A ClientSession that declares form-mode elicitation only: no URL mode, no sampling.

    (The SDK declares sampling as soon as a sampling callback is set, which is set to
    refuse with a message, and URL mode with form mode.)
    """

    def _build_capabilities(self, version: str) -> types.ClientCapabilities:
        capabilities = super()._build_capabilities(version)
        capabilities.sampling = None
        if capabilities.elicitation is not None:
            form = types.FormElicitationCapability()
            capabilities.elicitation = types.ElicitationCapability(form=form)
        return capabilities


def callbacks(asker: Asker | None) -> dict[str, Any]:
    """The ClientSession callbacks that route a server's requests to ``asker``.

    Without an asker, elicitation is not declared (the SDK refuses it); sampling is
    refused with a message either way.
    """

    async def elicit(
        context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult | types.ErrorData:
        assert asker is not None
        if isinstance(params, types.ElicitRequestURLParams):
            await asker.refuse("elicitation.url", URL_REFUSED)
            return types.ElicitResult(action="decline")
        try:
            form = parse_form(params.requested_schema)
            if len(params.message) > MAX_MESSAGE:
                raise FormError(f"the question's message is over {MAX_MESSAGE} characters")
        except FormError as exc:
            await asker.refuse("elicitation.form", str(exc))
            return types.ErrorData(code=types.INVALID_PARAMS, message=f"LuminaGuard: {exc}")
        try:
            reply = await asker.ask(params.message, form)
        except Exception as exc:  # refused by the asker: the server hears why
            await asker.refuse("elicitation", str(exc))
            return types.ErrorData(code=types.INVALID_REQUEST, message=f"LuminaGuard: {exc}")
        return types.ElicitResult(action=reply.action, content=reply.content)

    async def sample(
        context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult | types.CreateMessageResultWithTools | types.ErrorData:
        if asker is not None:
            await asker.refuse("sampling", SAMPLING_REFUSED)
        return types.ErrorData(code=types.INVALID_REQUEST, message=SAMPLING_REFUSED)

    hooks: dict[str, Any] = {"sampling_callback": sample}
    if asker is not None:
        hooks["elicitation_callback"] = elicit
    return hooks
