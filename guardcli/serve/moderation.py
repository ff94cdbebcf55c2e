"""Verdicts -> OpenAI's moderation response, honestly.

GuardReasoner answers three questions (is the request harmful, did the AI refuse, is the
response harmful); it names no category. So every OpenAI category is ``false`` with score
0.0 and applies to no input type (``[]``): a category the model did not express is never
invented. ``flagged`` carries the verdict: the request was judged harmful, or its label could
not be read from the model's answer (fail closed: a guard that cannot read its verdict does
not wave the input through). The full verdict travels beside it in ``guardcli``: the
same record ``guardcli scan -f jsonl`` writes (labels, status, scores, and with
``"reasoning": true`` the reasoning).
"""

from __future__ import annotations

from typing import Any

from guardcli.core.records import Label, Result
from guardcli.io.outputs import result_record

# The categories of OpenAI's current moderation models, in its order.
CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)


def moderation_flagged(result: Result) -> bool:
    """The request verdict of a bare input; an unreadable one flags (fail closed)."""
    label = result.verdict.request
    return label is Label.HARMFUL or label is Label.UNKNOWN


def moderation_result(result: Result, *, reasoning: bool) -> dict[str, Any]:
    return {
        "flagged": moderation_flagged(result),
        "categories": dict.fromkeys(CATEGORIES, False),
        "category_scores": dict.fromkeys(CATEGORIES, 0.0),
        "category_applied_input_types": {name: [] for name in CATEGORIES},
        "guardcli": result_record(result, reasoning=reasoning),
    }


def moderation_body(
    results: list[Result], *, request_id: str, model: str, reasoning: bool
) -> dict[str, Any]:
    return {
        "id": request_id,
        "model": model,
        "results": [moderation_result(result, reasoning=reasoning) for result in results],
    }
