"""What the query cost limits cost: validating hostile and ordinary documents with
Tocsin's rules, against graphql-core's own rules alone on the same document.

    python bench/query_limits.py [--repeat 20]

bomb      query { viewer { ...F39 } } with F(n) spreading F(n-1) twice (1.6 KB); it
          expands to 2^39 selections, so a limiter that walks expansions never ends
deep      a 100-deep nesting of one field
ordinary  the settings page's channel listing
Printed per document: ms per validation, and the ratio to graphql-core's rules alone.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from graphql import parse, specified_rules, validate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tocsin.schema import LIMIT_RULES, schema


def bomb(levels: int = 39) -> str:
    fragments = ["fragment F0 on Viewer { name }"]
    fragments += [f"fragment F{n} on Viewer {{ ...F{n - 1} ...F{n - 1} }}" for n in range(1, 40)]
    return f"query {{ viewer {{ ...F{levels} }} }} " + " ".join(fragments[: levels + 1])


def deep(levels: int = 100) -> str:
    return (
        "query { "
        + "channel(id: 1) { lastDelivery { " * (levels // 2)
        + "id"
        + " } }" * (levels // 2)
        + " }"
    )


ORDINARY = """{ channels { id name kind enabled configured eventTypes minPriority mode
  mutedUntil ... on SlackChannel { webhookUrlSet webhookUrlHint } } notificationStatus {
  configured canSendTest channelCount } }"""


def per_validation_ms(document: str, rules: list, repeat: int) -> float:
    graphql_schema = schema._schema
    ast = parse(document, max_tokens=100_000)
    started = time.perf_counter()
    for _ in range(repeat):
        validate(graphql_schema, ast, rules)
    return (time.perf_counter() - started) * 1000 / repeat


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    print(f"{'document':10} {'bytes':>6} {'tocsin ms':>10} {'graphql-core ms':>16} {'ratio':>6}")
    for name, document in (("bomb", bomb()), ("deep", deep()), ("ordinary", ORDINARY)):
        ours = per_validation_ms(document, [*specified_rules, *LIMIT_RULES], args.repeat)
        bare = per_validation_ms(document, list(specified_rules), args.repeat)
        print(f"{name:10} {len(document):6} {ours:10.2f} {bare:16.2f} {ours / bare:6.2f}")


if __name__ == "__main__":
    main()
