"""Rerank: the wire shapes, the upstream adapter, local/rerank, and the governed route."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from gatehouse.core.config import DeploymentConfig, LocalRerankConfig
from gatehouse.core.errors import ConfigError, UpstreamError
from gatehouse.core.rerank import RerankRequest, RerankResponse, RerankResult
from gatehouse.providers import MockTransport, UpstreamRequest, UpstreamResponse
from gatehouse.providers.base import ModelInfo, RerankProvider
from gatehouse.providers.local.rerank import LocalReranker
from gatehouse.providers.openai_compat import OpenAICompatProvider
from gatehouse.providers.registry import BUILTIN
from gatehouse.providers.rerank import RerankUpstreamProvider
from gatehouse.providers.rerank.translate import request_to_wire, response_from_wire

from .governed import Governed, governed_app
from .rag_fakes import BagOfWords
from .test_rag_cross_encoder import tiny_model  # noqa: F401 - a fixture

DOCUMENTS = [
    "the cat sat on the mat",
    "stock markets fell sharply today",
    "a cat chased another cat",
]


def request(**extra: Any) -> RerankRequest:
    return RerankRequest.model_validate(
        {"model": "rr", "query": "where is the cat", "documents": DOCUMENTS, **extra}
    )


# -- the wire types --


def test_documents_may_be_objects_with_text() -> None:
    parsed = RerankRequest.model_validate(
        {"model": "m", "query": "q", "documents": ["a", {"text": "b", "title": "t"}]}
    )
    assert parsed.texts() == ["a", "b"]
    with pytest.raises(ValueError, match=r"documents\[0\]"):
        RerankRequest.model_validate({"model": "m", "query": "q", "documents": [{"title": "t"}]})
    with pytest.raises(ValueError, match="at least 1 item"):
        RerankRequest.model_validate({"model": "m", "query": "q", "documents": []})


def test_ranked_sorts_cuts_and_fills_documents_from_the_request() -> None:
    answer = RerankResponse(
        id="r",
        model="upstream-name",
        results=[
            RerankResult(index=0, relevance_score=0.2),
            RerankResult(index=2, relevance_score=0.9),
            RerankResult(index=1, relevance_score=0.2),
            RerankResult(index=7, relevance_score=1.0),  # no such document: dropped
        ],
    )
    ranked = answer.ranked(request(top_n=2, return_documents=True))
    assert [(r.index, r.relevance_score) for r in ranked.results] == [(2, 0.9), (0, 0.2)]
    assert [r.document.text for r in ranked.results if r.document] == [DOCUMENTS[2], DOCUMENTS[0]]
    assert ranked.model == "rr"
    assert all(r.document is None for r in answer.ranked(request()).results)


def test_request_to_wire_sends_strings_top_n_and_extras() -> None:
    body = request_to_wire(request(top_n=2, max_tokens_per_doc=512), "rerank-v3.5")
    assert body == {
        "model": "rerank-v3.5",
        "query": "where is the cat",
        "documents": DOCUMENTS,
        "top_n": 2,
        "max_tokens_per_doc": 512,
    }


def test_cohere_answers_bill_search_units_jina_answers_count_tokens() -> None:
    cohere = {
        "id": "c1",
        "results": [{"index": 1, "relevance_score": 0.1}, {"index": 0, "relevance_score": 0.8}],
        "meta": {"billed_units": {"search_units": 2}},
    }
    answer = response_from_wire(cohere, request())
    assert [r.index for r in answer.results] == [0, 1]
    assert (answer.usage.search_units, answer.usage.total_tokens) == (2, 0)
    jina = {
        "model": "jina-reranker-v2",
        "usage": {"total_tokens": 40},
        "results": [{"index": 2, "relevance_score": 0.7, "document": {"text": "ignored"}}],
    }
    answer = response_from_wire(jina, request(return_documents=True))
    assert answer.usage.prompt_tokens == answer.usage.total_tokens == 40
    assert answer.usage.search_units == 1
    assert answer.results[0].document is not None
    assert answer.results[0].document.text == DOCUMENTS[2]  # the request's, not the echo


@pytest.mark.parametrize(
    "data", [{}, {"results": [{"index": "0", "relevance_score": 1}]}, {"results": [3]}]
)
def test_malformed_answers_are_upstream_errors(data: dict[str, Any]) -> None:
    with pytest.raises(UpstreamError):
        response_from_wire(data, request())


# -- the upstream adapter --


def _provider(name: str, base_url: str | None, seen: list[UpstreamRequest]) -> Any:
    def handler(call: UpstreamRequest) -> UpstreamResponse:
        seen.append(call)
        results = [{"index": 0, "relevance_score": 0.5}]
        return UpstreamResponse(200, {}, orjson.dumps({"results": results}))

    config = DeploymentConfig(provider=name, model="up-model", base_url=base_url)
    info = ModelInfo(id="rr", kind="rerank", owned_by=name, context_window=0)
    return RerankUpstreamProvider(
        config, info=info, api_key="sk-up", api=name, transport=MockTransport(handler)
    )


@pytest.mark.parametrize(
    ("name", "base_url", "url"),
    [
        ("cohere", None, "https://api.cohere.com/v2/rerank"),
        ("jina", None, "https://api.jina.ai/v1/rerank"),
        ("vllm", "http://gpu:8000/", "http://gpu:8000/rerank"),
    ],
)
async def test_each_api_is_called_where_it_answers(name: str, base_url: str, url: str) -> None:
    seen: list[UpstreamRequest] = []
    provider = _provider(name, base_url, seen)
    assert isinstance(provider, RerankProvider)
    answer = await provider.rerank(request())
    assert answer.results[0].index == 0
    assert seen[0].url == url
    assert seen[0].headers["authorization"] == "Bearer sk-up"
    assert orjson.loads(seen[0].body)["model"] == "up-model"


def test_provider_names_build_rerank_adapters_for_rerank_groups_only() -> None:
    rerank = ModelInfo(id="rr", kind="rerank", owned_by="x", context_window=0)
    chat = ModelInfo(id="c", kind="chat", owned_by="x", context_window=0)
    vllm = DeploymentConfig(provider="vllm", model="m", base_url="http://gpu:8000/v1")
    assert isinstance(BUILTIN["vllm"](vllm, info=rerank, api_key=None), RerankUpstreamProvider)
    assert isinstance(BUILTIN["vllm"](vllm, info=chat, api_key=None), OpenAICompatProvider)
    cohere = DeploymentConfig(provider="cohere", model="rerank-v3.5")
    with pytest.raises(ConfigError, match="mode: rerank"):
        BUILTIN["cohere"](cohere, info=chat, api_key=None)
    with pytest.raises(ValueError, match="base_url"):
        DeploymentConfig(provider="vllm", model="m")


# -- local/rerank --


async def test_local_rerank_without_a_cross_encoder_ranks_by_cosine() -> None:
    reranker = LocalReranker(LocalRerankConfig(), BagOfWords())
    answer = await reranker.rerank(request(return_documents=True))
    assert answer.model == "rr"
    assert answer.results[0].index in {0, 2}  # the two about cats
    assert answer.results[-1].index == 1
    scores = [r.relevance_score for r in answer.results]
    assert scores == sorted(scores, reverse=True)
    assert all(-1.0 <= s <= 1.0 for s in scores)


async def test_local_rerank_needs_an_embedder_or_a_cross_encoder() -> None:
    reranker = LocalReranker(LocalRerankConfig(), None)
    assert not reranker.readiness().ready
    with pytest.raises(Exception, match="cross_encoder"):
        await reranker.rerank(request())


async def test_local_rerank_with_a_cross_encoder_uses_its_scores(
    tiny_model: Path,  # noqa: F811 - the fixture
) -> None:
    reranker = LocalReranker(LocalRerankConfig(cross_encoder=tiny_model), None)
    answer = await reranker.rerank(request())
    cross = reranker._cross
    assert cross is not None
    expected = cross.score([("where is the cat", d) for d in DOCUMENTS])
    assert [r.index for r in answer.results] == sorted(
        range(len(DOCUMENTS)), key=lambda i: (-expected[i], i)
    )
    assert answer.usage.prompt_tokens > 0


def test_a_folder_that_is_not_a_cross_encoder_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"local\.rerank\.cross_encoder"):
        LocalReranker(LocalRerankConfig(cross_encoder=tmp_path), None)


# -- the route, governed --


@pytest.fixture
async def gov(tmp_path: Path) -> AsyncIterator[Governed]:
    pricing = {
        "models": {
            "test/echo": {"input_cost_per_token": 1, "output_cost_per_token": 2},
            "local/rerank": {"input_cost_per_token": 0.5, "input_cost_per_query": 3},
        }
    }
    reranker = LocalReranker(LocalRerankConfig(), BagOfWords())
    async for governed in governed_app(tmp_path, providers=[reranker], pricing=pricing):
        yield governed


def _body(**extra: Any) -> dict[str, Any]:
    return {"model": "local/rerank", "query": "where is the cat", "documents": DOCUMENTS, **extra}


async def test_rerank_answers_in_cohere_shape_and_is_metered(gov: Governed) -> None:
    key = await gov.new_key(team="search")
    response = await gov.http.post(
        "/v1/rerank",
        json=_body(top_n=2, return_documents=True),
        headers={"authorization": f"Bearer {key}"},
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["model"] == "local/rerank"
    assert len(answer["results"]) == 2
    assert answer["results"][0]["document"]["text"] in {DOCUMENTS[0], DOCUMENTS[2]}
    assert set(answer["usage"]) == {"prompt_tokens", "total_tokens", "search_units"}
    await gov.governance.shipper.drain()
    events = (await gov.admin("GET", "/admin/ledger?limit=10")).json()["events"]
    assert [(e["endpoint"], e["status"], e["team"]) for e in events] == [("rerank", "ok", "search")]
    # BagOfWords counts 1 prompt token: 0.5 for it, 3 for the search.
    assert events[0]["cost_usd"] == 3.5


async def test_without_return_documents_results_carry_no_document(gov: Governed) -> None:
    key = await gov.new_key()
    response = await gov.http.post(
        "/v1/rerank", json=_body(), headers={"authorization": f"Bearer {key}"}
    )
    assert [set(r) for r in response.json()["results"]] == [{"index", "relevance_score"}] * 3


async def test_rerank_needs_the_embeddings_scope_and_the_model(gov: Governed) -> None:
    chat_only = await gov.new_key(scopes=["chat"])
    response = await gov.http.post(
        "/v1/rerank", json=_body(), headers={"authorization": f"Bearer {chat_only}"}
    )
    assert response.status_code == 403
    assert "embeddings" in response.json()["error"]["message"]
    other_model = await gov.new_key(models=["test/embed"])
    response = await gov.http.post(
        "/v1/rerank", json=_body(), headers={"authorization": f"Bearer {other_model}"}
    )
    assert response.status_code == 403
    assert response.json()["error"]["param"] == "model"


async def test_a_chat_model_cannot_rerank(gov: Governed) -> None:
    key = await gov.new_key()
    response = await gov.http.post(
        "/v1/rerank", json=_body(model="test/echo"), headers={"authorization": f"Bearer {key}"}
    )
    assert response.status_code == 400
    assert "cannot rerank" in response.json()["error"]["message"]


# -- configuration --


def test_a_litellm_rerank_model_list_becomes_rerank_groups() -> None:
    from gatehouse.core.litellm_config import translate

    config = translate(
        {
            "model_list": [
                {
                    "model_name": "rerank-english",
                    "litellm_params": {
                        "model": "cohere/rerank-v3.5",
                        "input_cost_per_query": 0.002,
                    },
                    "model_info": {"mode": "rerank"},
                },
                {
                    "model_name": "bge-rerank",
                    "litellm_params": {"model": "hosted_vllm/bge", "api_base": "http://gpu:8000"},
                    "model_info": {"mode": "rerank"},
                },
            ]
        }
    )
    cohere, vllm = config["models"]
    assert cohere["mode"] == vllm["mode"] == "rerank"
    assert cohere["deployments"][0]["provider"] == "cohere"
    assert cohere["deployments"][0]["input_cost_per_query"] == 0.002
    assert vllm["deployments"][0]["provider"] == "vllm"


def test_a_rerank_group_of_chat_upstreams_is_refused_at_start(tmp_path: Path) -> None:
    from gatehouse.core.config import Settings
    from gatehouse.providers.factory import ProviderFactory

    settings = Settings.model_validate({"data_dir": tmp_path})
    config = DeploymentConfig(provider="openai_compat", model="gpt-4o", base_url="http://up/v1")
    with pytest.raises(ConfigError, match="cannot serve a group of mode: rerank"):
        ProviderFactory(settings).build(
            config, deployment_id="r#0", kind="rerank", where="models[0].deployments[0]"
        )
