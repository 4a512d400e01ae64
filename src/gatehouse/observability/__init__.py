"""Metrics, logs, traces and health."""

from gatehouse.observability.metrics import CONTENT_TYPE, DeploymentState, Metrics

__all__ = ["CONTENT_TYPE", "DeploymentState", "Metrics"]
