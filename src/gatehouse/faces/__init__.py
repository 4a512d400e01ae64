"""Inbound API dialects: other vendors' HTTP APIs, translated to and from the canonical types.

The gateway's pipeline speaks one language, the canonical (OpenAI-shaped)
types of ``gatehouse.core.types``. A *face* lets a client that speaks another
API reach it: pure functions and small state machines, no I/O, importing only
``gatehouse.core``; the route in ``server/routes/`` does the HTTP.

Each face is one module offering the same parts:

- a request model (pydantic) for the inbound body, and ``to_openai`` mapping
  it to a ``ChatCompletionRequest``;
- ``from_openai`` mapping a ``ChatCompletion`` back to the dialect's response;
- a ``StreamTranslator`` turning ``ChatCompletionChunk`` objects into the
  dialect's stream events (``feed`` per chunk, ``close`` at the end);
- ``error_body`` shaping a ``GatehouseError`` the way the dialect's clients expect.

Faces:

- ``gatehouse.faces.anthropic``: the Anthropic Messages API (``POST /v1/messages``),
  its content blocks in ``anthropic_blocks``.
- ``gatehouse.faces.responses``: the OpenAI Responses API (``POST /v1/responses``),
  with its input items (``responses_input``), tools (``responses_tools``), objects
  (``responses_items``), reasoning items (``responses_reasoning``) and stream
  (``responses_stream``, which also builds the finished response to store).

Outbound translation (gatehouse calling a vendor) is not here: it belongs to
the vendor's adapter under ``gatehouse.providers``.
"""
