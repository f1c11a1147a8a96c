"""The pipeline API's OpenAPI document as a checker of real answers.

:class:`Contract` finds the operation a request is (method and path template under ``servers[0].url``) and
says what is wrong with an answer to it: a status the operation does not list, a body that does not match
the schema of that status (JSON Schema 2020-12, the document's own ``$ref``\\s resolved, ``date-time`` checked),
a header the response promises but does not carry or carries in another type. Requests that are no
operation (an unknown route, a method the path does not have) are held to what every refusal of the API
is: a JSON object with an ``error``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

#: Where the document is registered, so that its ``#/components/...`` references resolve inside it.
BASE_URI = 'urn:jit:openapi'
METHODS = ('get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace')


@dataclass(frozen=True)
class Operation:
    operation_id: str
    method: str
    template: str
    spec: dict[str, Any]


def _pointer(*parts: str) -> str:
    return ''.join('/' + p.replace('~', '~0').replace('/', '~1') for p in parts)


class Contract:
    """Which operation a request is, and whether an answer is one the document describes."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.prefix = document['servers'][0]['url'].rstrip('/')
        self._registry: Registry[Any] = Registry().with_resource(BASE_URI, DRAFT202012.create_resource(document))
        self._validators: dict[str, Draft202012Validator] = {}
        self._templates = [
            (re.compile('^' + re.sub(r'\\\{[^}/]+\\\}', '[^/]+', re.escape(path)) + '$'), path)
            for path in document['paths']
        ]  # fmt: skip

    def operation(self, method: str, path: str) -> Operation | None:
        """The operation ``METHOD path`` is (the path as sent, query and all), or None."""
        route = urlsplit(path).path
        if not route.startswith(self.prefix + '/'):
            return None
        route = route[len(self.prefix) :]
        for pattern, template in self._templates:
            spec = self.document['paths'][template].get(method.lower()) if pattern.match(route) else None
            if spec is not None:
                return Operation(spec['operationId'], method.lower(), template, spec)
        return None

    def operations(self) -> Iterable[Operation]:
        for template, item in self.document['paths'].items():
            for method in METHODS:
                if method in item:
                    yield Operation(item[method]['operationId'], method, template, item[method])

    def statuses(self, operation_id: str) -> set[int]:
        """The statuses an operation documents."""
        found = next(op for op in self.operations() if op.operation_id == operation_id)
        return {int(s) for s in found.spec['responses']}

    def _response(self, operation: Operation, status: int) -> tuple[dict[str, Any], str] | None:
        """The response object for ``status`` and its JSON pointer in the document (references followed)."""
        responses = operation.spec['responses']
        for key in (str(status), f'{str(status)[0]}XX', 'default'):
            if key in responses:
                break
        else:
            return None
        where = _pointer('paths', operation.template, operation.method, 'responses', key)
        response = responses[key]
        while '$ref' in response:
            ref = response['$ref']
            assert ref.startswith('#/'), ref
            where = ref[1:]
            response = self.document
            for part in ref[2:].split('/'):
                response = response[part.replace('~1', '/').replace('~0', '~')]
        return response, where

    def _validator(self, pointer: str) -> Draft202012Validator:
        if pointer not in self._validators:
            self._validators[pointer] = Draft202012Validator(
                {'$ref': f'{BASE_URI}#{pointer}'}, registry=self._registry,
                format_checker=Draft202012Validator.FORMAT_CHECKER,
            )  # fmt: skip
        return self._validators[pointer]

    def problems(self, method: str, path: str, status: int, headers: dict[str, str], body: bytes) -> list[str]:
        """What is wrong with this answer to ``METHOD path``; ``headers`` with lower-case names."""
        found: list[str] = []
        if status >= 500:
            found.append(f'{status}: a 5xx')
        head = method.upper() == 'HEAD'
        parsed: Any = None
        if not head:
            if not headers.get('content-type', '').startswith('application/json'):
                found.append(f'{status}: Content-Type {headers.get("content-type")!r}, not JSON')
            try:
                parsed = json.loads(body)
            except ValueError:
                found.append(f'{status}: the body is not JSON: {body[:200]!r}')
                return found
            if not 200 <= status < 300 and not (isinstance(parsed, dict) and isinstance(parsed.get('error'), str)):
                found.append(f'{status}: a refusal without an "error" string: {body[:200]!r}')
        operation = self.operation(method, path)
        if operation is None:
            return found
        documented = self._response(operation, status)
        if documented is None:
            return [*found, f'{operation.operation_id}: status {status} is not documented']
        response, where = documented
        for name, header in (response.get('headers') or {}).items():
            value = headers.get(name.lower())
            if value is None:
                found.append(f'{operation.operation_id} {status}: no {name} header')
            elif header.get('schema', {}).get('type') == 'integer' and not re.fullmatch(r'[0-9]+', value):
                found.append(f'{operation.operation_id} {status}: {name}: {value!r} is not an integer')
        content = response.get('content') or {}
        if head or not content:
            return found
        if 'application/json' not in content:
            return [*found, f'{operation.operation_id} {status}: documented as {sorted(content)}, answered JSON']
        schema_at = where + _pointer('content', 'application/json', 'schema')
        for error in self._validator(schema_at).iter_errors(parsed):
            at = '/'.join(str(p) for p in error.absolute_path) or '(the body)'
            found.append(f'{operation.operation_id} {status}: {at}: {error.message[:300]}')
        return found
