"""Emit documents run by graphql-core itself once Strawberry has parsed and validated them.

Other services send the same emitEvent or emitEvents document again and again. Each time
Strawberry's ``Schema.execute`` made its execution context and the schema's six
extensions afresh, ran their hooks around parsing, validation and execution (two cache
lookups for a document already known valid) and converted the result: under emit load
a fifth of the server's CPU, more than graphql-core's execution of the field (issue 11).

``DirectEmits`` remembers, per query text and operation name, the document of an
operation Strawberry executed (so it parsed it within the token limit and validated it
with every rule) whose root fields are only emitEvent and emitEvents. The next time the
same text comes, ``execute`` hands the document to graphql-core as Strawberry does, then
does to the result what our extensions do after execution: the errors are logged by
``process_errors``, the errors RefuseBesideData recorded are added (ErrorsBesideData),
and unexpected ones are masked (MaskErrors). The answer is the same; tests hold the two
paths to it (tests/api/test_direct_emits.py). Any other document takes Strawberry's path.
"""

from __future__ import annotations

import inspect
from collections import OrderedDict
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    OperationDefinitionNode,
    OperationType,
    execute,
    get_operation_ast,
)
from strawberry.execution.is_awaitable import optimized_is_awaitable
from strawberry.extensions import MaskErrors, SchemaExtension
from strawberry.types import ExecutionResult

from tocsin.schema.limits import LONGEST_CACHED_QUERY
from tocsin.schema.permissions import beside_data_errors

if TYPE_CHECKING:
    import strawberry

__all__ = ["DIRECT_FIELDS", "DirectEmits", "RememberEmits"]

DIRECT_FIELDS = frozenset({"emitEvent", "emitEvents"})
"The root fields of the operations run directly."

_Key = tuple[str, str | None]


class DirectEmits:
    """Validated emit documents by (query text, operation name), at most ``maxsize``."""

    def __init__(self, mask: MaskErrors) -> None:
        self.maxsize = 512
        self._documents: OrderedDict[_Key, DocumentNode] = OrderedDict()
        self._mask = mask
        self.schema: strawberry.Schema | None = None
        "Set by the schema that owns this (build_schema)."

    def document(self, query: str, operation_name: str | None) -> DocumentNode | None:
        """The remembered document of this text, if Strawberry executed it before."""
        document = self._documents.get((query, operation_name))
        if document is not None:
            self._documents.move_to_end((query, operation_name))
        return document

    def remember(self, query: str, operation_name: str | None, document: DocumentNode) -> None:
        """A document Strawberry is about to execute: kept when it is an emit operation.

        ``operation_name`` is the operation executed (Strawberry names it even when the
        request did not). A document of one operation runs the same whether the request
        names it or not, so it is kept under both; one of several is always named."""
        if len(query) > LONGEST_CACHED_QUERY or not _only_emits(document, operation_name):
            return
        keys = [(query, operation_name)]
        if operation_name is not None and _operations(document) == 1:
            keys.append((query, None))
        for key in keys:
            self._documents[key] = document
            self._documents.move_to_end(key)
        while len(self._documents) > self.maxsize:
            self._documents.popitem(last=False)

    async def execute(
        self,
        document: DocumentNode,
        *,
        variables: dict[str, Any] | None,
        context: Any,
        operation_name: str | None,
    ) -> ExecutionResult:
        """What Strawberry's execute answers for this document, without its wrapping."""
        schema = self.schema
        assert schema is not None
        result: Any = execute(
            schema._schema,
            document,
            variable_values=variables,
            context_value=context,
            operation_name=operation_name,
            is_awaitable=optimized_is_awaitable,  # type: ignore[arg-type]  # as Strawberry passes it
            executor_class=schema.execution_context_class,
        )
        if inspect.isawaitable(result):
            result = await result
        errors: list[GraphQLError] | None = result.errors
        if errors:
            # As Strawberry does: the errors as raised are logged, before masking.
            schema._process_errors(errors, None)
        recorded = beside_data_errors(context)
        if recorded:
            errors = [*(errors or []), *recorded]
        if errors:
            errors = [
                self._mask.anonymise_error(error) if self._mask.should_mask_error(error) else error
                for error in errors
            ]
        return ExecutionResult(data=result.data, errors=errors)


def _operations(document: DocumentNode) -> int:
    return sum(isinstance(node, OperationDefinitionNode) for node in document.definitions)


def _only_emits(document: DocumentNode, operation_name: str | None) -> bool:
    operation = get_operation_ast(document, operation_name)
    if operation is None or operation.operation is not OperationType.MUTATION:
        return False
    return all(
        isinstance(selection, FieldNode) and selection.name.value in DIRECT_FIELDS
        for selection in operation.selection_set.selections
    )


class RememberEmits(SchemaExtension):
    """Shows ``DirectEmits`` each document Strawberry executes: only a document that was
    parsed and validated without an error reaches execution."""

    def __init__(self, direct: DirectEmits) -> None:
        self.direct = direct

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        if context.query is not None and context.graphql_document is not None:
            self.direct.remember(context.query, context.operation_name, context.graphql_document)
        yield
