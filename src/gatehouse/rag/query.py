"""Query-side rewriting through the gateway: condensing, multi-query, HyDE. All opt-in.

Each asks the chat model for text and returns plain strings; the engine decides
how to search with them. Failures of the model surface as gateway errors.
"""

from __future__ import annotations

from collections.abc import Sequence

from gatehouse.core.types import ChatCompletionRequest, ChatMessage
from gatehouse.gateway import ModelClient

CONDENSE_PROMPT = (
    "Rewrite the user's last question as one standalone question that needs no "
    "conversation to be understood. Reply with the question only."
)
MULTI_QUERY_PROMPT = (
    "Write {n} different search queries that would find passages answering the "
    "question. One query per line, no numbering, nothing else."
)
HYDE_PROMPT = "Write a short passage (3 sentences) that answers the question."


async def _complete(client: ModelClient, model: str, system: str, user: str, limit: int) -> str:
    request = ChatCompletionRequest(
        model=model,
        messages=[
            ChatMessage(role="system", content=system),
            ChatMessage(role="user", content=user),
        ],
        max_tokens=limit,
        temperature=0.0,
    )
    completion = await client.chat(request)
    return (completion.choices[0].message.content or "").strip()


async def condense(
    client: ModelClient, model: str, history: Sequence[ChatMessage], question: str
) -> str:
    """The last turn as a standalone question; the question itself without history."""
    if not history:
        return question
    transcript = "\n".join(f"{m.role}: {m.text()}" for m in history[-6:])
    rewritten = await _complete(
        client, model, CONDENSE_PROMPT, f"{transcript}\nuser: {question}", 64
    )
    return rewritten.splitlines()[0].strip() if rewritten.strip() else question


async def multi_query(client: ModelClient, model: str, question: str, n: int = 3) -> list[str]:
    """The question plus up to ``n`` distinct rephrasings from the model."""
    reply = await _complete(client, model, MULTI_QUERY_PROMPT.format(n=n), question, 96)
    queries = [question]
    for line in reply.splitlines():
        line = line.strip().lstrip("-*0123456789. )").strip()
        if line and line.lower() not in {q.lower() for q in queries}:
            queries.append(line)
    return queries[: n + 1]


async def hypothetical_document(client: ModelClient, model: str, question: str) -> str:
    """HyDE: a passage the model imagines answers the question (embedded instead of it)."""
    return await _complete(client, model, HYDE_PROMPT, question, 128)
