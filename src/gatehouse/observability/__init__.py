"""Metrics, logs, traces and health."""

from gatehouse.observability.access_log import AccessLog, access_fields
from gatehouse.observability.live_metrics import DeploymentState
from gatehouse.observability.metrics import CONTENT_TYPE, Metrics

__all__ = ["CONTENT_TYPE", "AccessLog", "DeploymentState", "Metrics", "access_fields"]
