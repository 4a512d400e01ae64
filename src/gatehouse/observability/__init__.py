"""Metrics, logs, traces and health."""

from gatehouse.observability.access_log import AccessLog, access_fields
from gatehouse.observability.metrics import CONTENT_TYPE, DeploymentState, Metrics

__all__ = ["CONTENT_TYPE", "AccessLog", "DeploymentState", "Metrics", "access_fields"]
