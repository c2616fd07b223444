"""Query cost limits, checked before execution in time linear in the document.

Per operation: the depth of its fields, and — counted as the query would execute, with
every fragment spread expanded — its aliases, fragment spreads and selections. Each
fragment's cost is computed once and reused wherever it is spread, so a document whose
fragments spread each other twice over (``F1 { ...F0 ...F0 }`` … ``F39``) costs a few
milliseconds to refuse, not the minutes that walking every expansion takes.

A refusal is a GraphQL error with ``extensions.code = "QUERY_TOO_COMPLEX"`` whose message
names the limit. The parser's limits (5 000 tokens, nesting) get the same code
(``CodedMaxTokensLimiter``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from graphql import (
    ASTValidationRule,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSyntaxError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
)
from strawberry.extensions import MaxTokensLimiter, ParserCache, ValidationCache

CODE = "QUERY_TOO_COMPLEX"


@dataclass(frozen=True, slots=True)
class Cost:
    """What a selection set costs once expanded. Counts may be huge (a fragment bomb
    doubles them per level); Python's integers hold them exactly."""

    depth: int = 0
    aliases: int = 0
    spreads: int = 0
    selections: int = 0

    def beside(self, other: Cost) -> Cost:
        """Two parts of one selection set: depths side by side, counts added."""
        return Cost(
            depth=max(self.depth, other.depth),
            aliases=self.aliases + other.aliases,
            spreads=self.spreads + other.spreads,
            selections=self.selections + other.selections,
        )


@dataclass(frozen=True, slots=True)
class Limits:
    depth: int
    aliases: int
    spreads: int
    selections: int


def _is_introspection(name: str) -> bool:
    return name.startswith("__") and name != "__typename"


class _CostOf:
    """The costs of one document's fragments, each computed at most once."""

    def __init__(self, fragments: dict[str, FragmentDefinitionNode]) -> None:
        self._fragments = fragments
        self._known: dict[str, Cost] = {}
        self._computing: set[str] = set()

    def fragment(self, name: str) -> Cost:
        known = self._known.get(name)
        if known is not None:
            return known
        definition = self._fragments.get(name)
        if definition is None or name in self._computing:
            # unknown fragments and cycles are graphql-core's own validation errors
            return Cost()
        self._computing.add(name)
        try:
            introspection = _is_introspection(definition.type_condition.name.value)
            cost = self.selection_set(definition.selection_set, introspection)
        finally:
            self._computing.discard(name)
        self._known[name] = cost
        return cost

    def selection_set(self, node: SelectionSetNode | None, introspection: bool) -> Cost:
        total = Cost()
        for selection in node.selections if node is not None else ():
            total = total.beside(self.selection(selection, introspection))
        return total

    def selection(self, node: SelectionNode, introspection: bool) -> Cost:
        if isinstance(node, FragmentSpreadNode):
            inner = self.fragment(node.name.value)
            return Cost(inner.depth, inner.aliases, inner.spreads + 1, inner.selections)
        if isinstance(node, InlineFragmentNode):
            condition = node.type_condition
            inside = introspection or bool(condition and _is_introspection(condition.name.value))
            return self.selection_set(node.selection_set, inside)
        if not isinstance(node, FieldNode):
            return Cost()
        name = node.name.value
        inside = introspection or _is_introspection(name)
        inner = self.selection_set(node.selection_set, inside)
        # ofType unwraps one NON_NULL or LIST wrapper: one object in, one out, so it adds no
        # fan-out. GraphiQL's introspection nests it 7 to 9 times (its TypeRef fragment);
        # every other field, introspection included, counts towards the depth.
        level = 0 if node.selection_set is None or (inside and name == "ofType") else 1
        return Cost(
            depth=inner.depth + level,
            aliases=inner.aliases + (1 if node.alias else 0),
            spreads=inner.spreads,
            selections=inner.selections + 1,
        )


def _fragments(context: ValidationContext) -> dict[str, FragmentDefinitionNode]:
    return {
        definition.name.value: definition
        for definition in context.document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }


def _problems(cost: Cost, limits: Limits) -> Iterator[str]:
    if cost.depth > limits.depth:
        yield f"is {cost.depth} fields deep; the depth limit is {limits.depth}"
    if cost.aliases > limits.aliases:
        yield f"has {cost.aliases} aliases; the aliases limit is {limits.aliases}"
    if cost.spreads > limits.spreads:
        yield (
            f"spreads fragments {cost.spreads} times once expanded; "
            f"the fragment spreads limit is {limits.spreads}"
        )
    if cost.selections > limits.selections:
        yield (
            f"has {cost.selections} selections once fragments are expanded; "
            f"the selections limit is {limits.selections}"
        )


def query_cost_rule(limits: Limits) -> type[ASTValidationRule]:
    """A validation rule refusing each operation of a document that passes ``limits``.
    Build it once: ValidationCache keys on the rules' identity."""

    class QueryCostRule(ValidationRule):
        def enter_document(self, *_: object) -> None:
            costs = _CostOf(_fragments(self.context))
            for definition in self.context.document.definitions:
                if not isinstance(definition, OperationDefinitionNode):
                    continue
                cost = costs.selection_set(definition.selection_set, False)
                name = f"'{definition.name.value}'" if definition.name else "The operation"
                for problem in _problems(cost, limits):
                    self.report_error(
                        GraphQLError(f"{name} {problem}.", definition, extensions={"code": CODE})
                    )

    return QueryCostRule


class CodedMaxTokensLimiter(MaxTokensLimiter):
    """MaxTokensLimiter whose refusal carries ``extensions.code = "QUERY_TOO_COMPLEX"``."""

    def on_operation(self) -> Iterator[None]:
        self.execution_context.parse_options["max_tokens"] = self.max_token_count
        try:
            yield
        except GraphQLSyntaxError as error:  # ParserCache parses inside its hook: it raises
            _mark(error)
            raise
        for refused in self.execution_context.pre_execution_errors or ():
            _mark(refused)  # without ParserCache, Strawberry catches the error and answers it


def _mark(error: GraphQLError) -> None:
    # The parser's own limits (tokens, nesting) all end so; a plain syntax error does not.
    if isinstance(error, GraphQLSyntaxError) and error.message.endswith("Parsing aborted."):
        error.extensions = {**(error.extensions or {}), "code": CODE}


LONGEST_CACHED_QUERY = 16 * 1024
"""Characters of the longest query text the parse and validation caches keep (and
schema/direct.py remembers). Comments cost no token, so without a bound 512 distinct
texts of up to a MiB each (the body's limit) would hold half a GiB or more; a longer
text is parsed and validated each time, by Strawberry itself."""


def _cached(execution_context: Any) -> bool:
    return len(execution_context.query or "") <= LONGEST_CACHED_QUERY


class BoundedParserCache(ParserCache):
    """ParserCache for texts up to LONGEST_CACHED_QUERY characters."""

    def on_parse(self) -> Iterator[None]:
        if _cached(self.execution_context):
            yield from super().on_parse()
        else:
            yield  # no document set: Strawberry parses the text itself


class BoundedValidationCache(ValidationCache):
    """ValidationCache for documents of texts up to LONGEST_CACHED_QUERY characters
    (its key holds the document, and the document its text)."""

    def on_validate(self) -> Iterator[None]:
        if _cached(self.execution_context):
            yield from super().on_validate()
        else:
            yield  # no errors set: Strawberry validates the document itself
