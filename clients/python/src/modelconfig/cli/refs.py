"""Naming a model on the command line: by id, name or alias, as an operator remembers it."""

from __future__ import annotations

from .._client import ModelConfigClient


def model_ref(text: str) -> int | str:
    """A model id if the text is all digits, else a name or alias."""
    return int(text) if text.isascii() and text.isdigit() else text


def model_id(client: ModelConfigClient, text: str) -> int:
    """The id of the model `text` names; a name or alias costs one GetModel (NOT_FOUND if none)."""
    found = model_ref(text)
    return found if isinstance(found, int) else client.get_model(found).model.id
