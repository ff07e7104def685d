"""Which embedding function a collection uses: the one passed, the one it was created with, or none."""

from __future__ import annotations

import warnings
from typing import Any


def default_embedding_function() -> Any:
    """chromadb's default: all-MiniLM-L6-v2 (here computed offline, see vecduck.embeddings)."""
    from vecduck.embeddings import DefaultEmbeddingFunction

    return DefaultEmbeddingFunction()


def embedding_function_config(ef: Any) -> dict[str, Any] | None:
    if ef is None:
        return None
    from vecduck.embeddings import embedding_function_config as config_of

    return config_of(ef)


def resolve_embedding_function(stored: dict[str, Any] | None, passed: Any, unset: Any) -> Any:
    """The function a collection object embeds with.

    Not passed: rebuild the one recorded at creation (None stays None). Passed: used as
    given, but a named function that differs from the recorded one is refused, as
    chromadb refuses it, since its vectors would not match those stored.
    """
    if passed is unset:
        if stored is None:
            return None
        from vecduck.embeddings import build_embedding_function

        try:
            return build_embedding_function(stored)
        except Exception as exc:
            warnings.warn(
                f"Could not rebuild the collection's embedding function {stored.get('name')!r}: {exc};"
                " pass embedding_function= to embed documents or query texts",
                stacklevel=3,
            )
            return None
    if passed is None or not stored or stored.get("type") != "known":
        return passed
    name = _name_of(passed)
    if name is not None and name != "default" and stored.get("name") not in (None, name):
        raise ValueError(
            f"An embedding function with name {name} is different from the collection's"
            f" embedding function {stored.get('name')}."
        )
    return passed


def _name_of(ef: Any) -> str | None:
    name = getattr(ef, "name", None)
    if callable(name):
        try:
            result = name()
        except TypeError:
            return None
        return result if isinstance(result, str) else None
    return None


def is_default_function(ef: Any) -> bool:
    """Whether `ef` is (named as) chromadb's default function."""
    return _name_of(ef) == "default"


def function_from_configuration(configuration: dict[str, Any] | None, passed: Any, unset: Any) -> tuple[Any, Any]:
    """`create_collection(configuration={"embedding_function": ef})`, as chromadb takes it:
    the configuration gets the function's record and the collection object the function,
    unless a different function was also passed (refused, as chromadb refuses it).
    Returns the configuration and the function to pass on."""
    function = (configuration or {}).get("embedding_function")
    if function is None or isinstance(function, dict):
        return configuration, passed
    if passed is not unset and passed is not None and not is_default_function(passed):
        if _name_of(passed) != _name_of(function):
            raise ValueError(
                "Multiple embedding functions provided. Please provide only one. Embedding function conflict:"
                f" {_name_of(passed)} vs {_name_of(function)}"
            )
        return {**configuration, "embedding_function": embedding_function_config(function)}, passed
    return {**configuration, "embedding_function": embedding_function_config(function)}, function
