"""botocore's ``Stubber``, with answers completed from the service's own model.

A stubbed answer names the fields a test is about; every other field the operation's output shape marks
*required* is filled with a placeholder of the right type here, in one place (a tagged union gets its first
member). When a botocore release makes a new field required (``GetUserIdResponse`` gained ``UserArn``), the
stubs keep validating, and a provider that starts to read such a field gets a recognisable ``stub-<Field>``
value instead of a silent ``None``. ``tests/providers/test_botocore_stubs.py`` checks the completion against
every operation of the services the providers call.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from botocore.model import ListShape, MapShape, Shape, StructureShape
from botocore.stub import Stubber

__all__ = ['ModelStubber', 'complete']


def _placeholder(shape: Shape, name: str) -> Any:
    if isinstance(shape, StructureShape):
        return complete(shape, {})
    if isinstance(shape, ListShape):
        return []
    if isinstance(shape, MapShape):
        return {}
    kind = shape.type_name
    if kind == 'string':
        enum = shape.metadata.get('enum')
        if enum:
            return enum[0]
        text = f'stub-{name}'  # padded to the shape's minimum length, which the Stubber validates
        return text + 'x' * max(0, int(shape.metadata.get('min', 0)) - len(text))
    if kind in ('integer', 'long'):
        return int(shape.metadata.get('min', 0))
    if kind in ('float', 'double'):
        return float(shape.metadata.get('min', 0))
    if kind == 'boolean':
        return False
    if kind == 'timestamp':
        return dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    if kind == 'blob':
        return b''
    raise TypeError(f'no placeholder for {name} of type {kind}')


def complete(shape: Shape | None, value: Any) -> Any:
    """``value`` with every required member of ``shape`` that it lacks filled in, recursively."""
    if shape is None:
        return value
    if isinstance(shape, StructureShape) and isinstance(value, dict):
        out = {key: complete(shape.members.get(key), item) for key, item in value.items()}
        if shape.is_tagged_union and not out:  # exactly one member must be set: the model's first
            key, member = next(iter(shape.members.items()))
            out[key] = _placeholder(member, key)
        for key in shape.required_members:
            if key not in out:
                out[key] = _placeholder(shape.members[key], key)
        return out
    if isinstance(shape, ListShape) and isinstance(value, list):
        return [complete(shape.member, item) for item in value]
    if isinstance(shape, MapShape) and isinstance(value, dict):
        return {key: complete(shape.value, item) for key, item in value.items()}
    return value


class ModelStubber(Stubber):
    """A ``Stubber`` whose ``add_response`` completes the answer from the operation's output shape."""

    def add_response(self, method: str, service_response: dict[str, Any], expected_params: Any = None) -> None:
        operation = self.client.meta.method_to_api_mapping[method]
        shape = self.client.meta.service_model.operation_model(operation).output_shape
        super().add_response(method, complete(shape, service_response), expected_params)
