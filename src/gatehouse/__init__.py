"""gatehouse: a self-hosted LLM gateway and RAG server with an OpenAI-compatible API."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("gatehouse")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
