"""The fast record constructors build the same frozen objects as the dataclasses' own."""

from __future__ import annotations

import dataclasses

import pytest

from bmad.runtime.providers import base
from bmad.runtime.providers.record_builder import positional_builder


def test_built_records_equal_the_constructed_ones_and_stay_frozen():
    message = (base.Message("user", "hi"),)
    request = positional_builder(base.CompletionRequest)(
        "m-1", message, 64, 0.2, None, ("a", "b"), False, 5.0, (), "t", "m", {"purpose": "answer"})
    assert request == base.CompletionRequest(
        model_id="m-1", messages=message, max_tokens=64, temperature=0.2, enum_values=("a", "b"),
        timeout_s=5.0, task_id="t", model_name="m", metadata={"purpose": "answer"})
    response = positional_builder(base.CompletionResponse)(
        "x", 1, 2, 0.5, 0.01, 0, 0, "stop", "m-1", True, {"k": 1}, None)
    assert response == base.CompletionResponse("x", 1, 2, 0.5, 0.01, finish_reason="stop",
                                               model_id="m-1", simulated=True, raw={"k": 1})
    assert repr(response).startswith("CompletionResponse(text='x'")
    with pytest.raises(dataclasses.FrozenInstanceError):
        response.text = "y"  # type: ignore[misc]


def test_every_field_must_be_given_and_only_slotted_dataclasses_qualify():
    build = positional_builder(base.Message)
    with pytest.raises(TypeError):
        build("user")  # type: ignore[call-arg]

    @dataclasses.dataclass
    class Plain:
        a: int

    with pytest.raises(TypeError):
        positional_builder(Plain)
