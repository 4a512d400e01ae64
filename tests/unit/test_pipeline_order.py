"""The pipeline's stage order, set in one function and nowhere else."""

from __future__ import annotations

from pathlib import Path

from gatehouse.core.config import Settings
from gatehouse.core.types import EmbeddingRequest, EmbeddingResponse
from gatehouse.gateway.auth import AuthStage
from gatehouse.gateway.cache import Coalescer, ExactCache, SemanticCache, build_caches
from gatehouse.gateway.governance import Governance
from gatehouse.gateway.guard_stage import GuardStage, guard_stages
from gatehouse.gateway.limits import LimitsStage
from gatehouse.gateway.metering import MeteringStage
from gatehouse.gateway.observer import NullObserver, ObserveStage
from gatehouse.gateway.service import pipeline_stages


async def no_embeddings(request: EmbeddingRequest) -> EmbeddingResponse:
    raise AssertionError("not called while building stages")


def test_every_stage_in_order_and_only_what_is_on(tmp_path: Path) -> None:
    settings = Settings.model_validate(
        {
            "data_dir": tmp_path,
            "guard": {"enabled": True, "entities": {"EMAIL": "mask"}},
            "cache": {"semantic": {"groups": ["faq"]}},
        }
    )
    governance = Governance(settings)
    stages = pipeline_stages(
        governance,
        observer=NullObserver(),
        guard=guard_stages(settings.guard),
        caches=build_caches(settings.cache, no_embeddings),
    )
    assert [type(stage) for stage in stages] == [
        ObserveStage,
        AuthStage,
        MeteringStage,
        GuardStage,
        LimitsStage,
        ExactCache,
        SemanticCache,
        Coalescer,
    ]
    bare = pipeline_stages(governance)
    assert [type(stage) for stage in bare] == [AuthStage, MeteringStage, LimitsStage]
