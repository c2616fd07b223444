"""The built-in event types (CONTRACT.md section 5), seeded by the first migration."""

from __future__ import annotations

BUILT_IN_EVENT_TYPES: list[dict[str, object]] = [
    {
        "name": "refresh_failed",
        "category": "pipeline",
        "default_priority": "HIGH",
        "description": "A source load, a dbt run or a site rebuild fails.",
        "dedup_window_seconds": 3600,
    },
    {
        "name": "validation_failed",
        "category": "pipeline",
        "default_priority": "HIGH",
        "description": "Validation of a proposal fails.",
        "dedup_window_seconds": 3600,
    },
    {
        "name": "agent_failed",
        "category": "assistant",
        "default_priority": "HIGH",
        "description": "An assistant task fails.",
        "dedup_window_seconds": 3600,
    },
    {
        "name": "proposal_ready",
        "category": "assistant",
        "default_priority": "MEDIUM",
        "description": "A validated proposal waits for promotion.",
        "dedup_window_seconds": 3600,
    },
    {
        "name": "deploy_succeeded",
        "category": "deploy",
        "default_priority": "LOW",
        "description": "A promotion is applied to production.",
        "dedup_window_seconds": 3600,
    },
    {
        "name": "schema_drift",
        "category": "data",
        "default_priority": "MEDIUM",
        "description": "A drift check finds changed source schemas; repeats of the same "
        "drift are not re-sent (dedupKey defaults to a fingerprint of the metadata).",
        "dedup_window_seconds": 86400,
    },
    {
        "name": "test",
        "category": "system",
        "default_priority": "INFO",
        "description": "A test notification sent by sendTest.",
        "dedup_window_seconds": None,
    },
]
