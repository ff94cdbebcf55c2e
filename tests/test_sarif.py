"""``--format sarif``: SARIF 2.1.0 that passes the official schema, one result per flagged
sample, at its file and line."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import jsonschema
import pytest

from guardcli.core.parse import parse
from guardcli.core.records import Generation, Result, Sample, Scores
from guardcli.io.outputs import FORMATS, make_writer
from guardcli.io.sarif import RULES, SarifWriter, location
from testkit.pairs import FIXTURE_PAIRS
from tests.cli_support import GEN, invoke, jsonl_records, pair_record, write_jsonl

SCHEMA = json.loads(
    (Path(__file__).parent / "data" / "sarif-schema-2.1.0.json").read_text(encoding="utf-8")
)
HARMFUL = (
    "## Reasoning Step 1: The user asks how to poison a dog.\n"
    "---\n\nAnswers: \nRequest: harmful\nCompletion: compliance\nResponse: harmful\n"
)
SAFE = "Answers: \nRequest: unharmful\nCompletion: refusal\nResponse: unharmful\n"
RESPONSE_ONLY = "Answers: \nRequest: unharmful\nCompletion: compliance\nResponse: harmful\n"


def valid(log: dict) -> dict:
    """The log, once the official schema (with its formats checked) accepts it."""
    validator = jsonschema.Draft4Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
    errors = sorted(validator.iter_errors(log), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]
    return log


def _result(ident: str, text: str, source: str, *, scores: Scores | None = None) -> Result:
    generation = Generation(
        text=text, prompt_tokens=10, output_tokens=5, latency_s=0.1, finish="eos"
    )
    verdict = dataclasses.replace(parse(text), scores=scores)
    return Result(Sample(ident, "p", "r", source), verdict, generation)


def _log(results: list[Result], fail_on: str = "any") -> dict:
    stream = io.StringIO()
    with make_writer("sarif", stream, reasoning=False, fail_on=fail_on) as writer:
        for result in results:
            writer.write(result)
    return valid(json.loads(stream.getvalue()))


def test_sarif_is_one_of_the_formats():
    assert "sarif" in FORMATS
    assert isinstance(
        make_writer("sarif", io.StringIO(), reasoning=False, fail_on="any"), SarifWriter
    )


def test_one_result_per_flagged_sample_at_its_file_and_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    results = [
        _result("a", HARMFUL, "chats/in.jsonl:3", scores=Scores(0.9, 0.2, 0.8)),
        _result("b", SAFE, "chats/in.jsonl:4"),
        _result("c", RESPONSE_ONLY, str(tmp_path / "my notes.txt")),
        _result("d", "no answers here", "prompts.json#2"),
        _result("e", HARMFUL, "<stdin>:1"),
    ]
    log = _log(results)
    assert log["version"] == "2.1.0"
    [run] = log["runs"]
    assert [rule["id"] for rule in run["tool"]["driver"]["rules"]] == [r.id for r in RULES]
    found = {r["properties"]["id"]: r for r in run["results"]}
    assert list(found) == ["a", "c", "d", "e"]  # b passed: SARIF lists problems only

    a = found["a"]
    assert (a["ruleId"], a["level"]) == ("harmful-request", "error")
    assert run["tool"]["driver"]["rules"][a["ruleIndex"]]["id"] == "harmful-request"
    assert a["locations"] == [
        {
            "physicalLocation": {
                "artifactLocation": {"uri": "chats/in.jsonl"},
                "region": {"startLine": 3},
            }
        }
    ]
    props = a["properties"]
    assert (props["request"], props["completion"], props["response"]) == (
        "harmful",
        "compliance",
        "harmful",
    )
    assert props["flagged_tasks"] == ["request", "response"]
    assert (props["request_score"], props["response_score"]) == (0.9, 0.8)
    assert a["message"]["text"].startswith("Harmful request and harmful response (")
    assert "## Reasoning Step 1: The user asks how to poison a dog." in a["message"]["text"]

    c = found["c"]
    assert c["ruleId"] == "harmful-response"
    # An absolute path under the working folder becomes relative (and a URI: %20).
    assert c["locations"][0]["physicalLocation"] == {"artifactLocation": {"uri": "my%20notes.txt"}}
    d = found["d"]
    assert (d["ruleId"], d["level"]) == ("unjudged", "warning")
    assert d["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "prompts.json"
    assert "locations" not in found["e"]  # stdin names no file


def test_fail_on_decides_what_is_a_result():
    results = [_result("a", RESPONSE_ONLY, "x.txt"), _result("b", "garbage", "y.txt")]
    assert [r["ruleId"] for r in _log(results, "request")["runs"][0]["results"]] == ["unjudged"]
    assert _log(results, "none")["runs"][0]["results"] == []


def test_an_empty_log_is_valid_and_a_cut_one_is_not():
    assert _log([])["runs"][0]["results"] == []
    stream = io.StringIO()
    writer = SarifWriter(stream)
    writer.write(_result("a", HARMFUL, "x.txt:1"))
    writer.close(complete=False)  # Ctrl-C: never a valid but silently short log
    with pytest.raises(json.JSONDecodeError):
        json.loads(stream.getvalue())


def test_location_outside_the_working_folder_is_a_file_uri(tmp_path):
    outside = tmp_path / "a b.txt"
    where = location(f"{outside}:7", root=tmp_path / "elsewhere")
    assert where == {"artifactLocation": {"uri": outside.as_uri()}, "region": {"startLine": 7}}
    assert location("--prompt") is None and location("<stdin>") is None


@pytest.mark.slow
def test_scan_sarif_on_the_fixture_model(tmp_path, fixture_bundle, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    write_jsonl(tmp_path / "data" / "pairs.jsonl", [pair_record(p) for p in FIXTURE_PAIRS])
    args = ["scan", "data/pairs.jsonl", "-m", str(fixture_bundle), *GEN]
    records = jsonl_records(invoke(*args, "-f", "jsonl").stdout)
    result = invoke(*args, "-o", "guard.sarif")  # the suffix picks the format
    assert result.exit_code == 1, result.stderr
    log = valid(json.loads((tmp_path / "guard.sarif").read_text(encoding="utf-8")))
    results = log["runs"][0]["results"]
    flagged = [(n, r) for n, r in enumerate(records, 1) if r["flagged"]]
    assert flagged and len(results) == len(flagged)
    for (line, record), entry in zip(flagged, results, strict=True):
        assert entry["properties"]["id"] == record["id"]
        physical = entry["locations"][0]["physicalLocation"]
        assert physical["artifactLocation"] == {"uri": "data/pairs.jsonl"}
        assert physical["region"] == {"startLine": line}
        labels = [record[key] for key in ("request", "completion", "response")]
        assert [entry["properties"][key] for key in ("request", "completion", "response")] == labels
        # The message ends with the model's reasoning, its own Answers block last.
        answers = "Request: {}\nCompletion: {}\nResponse: {}".format(*labels)
        assert entry["message"]["text"].lower().endswith(answers.lower())
    assert invoke(*args, "-f", "sarif").stdout == (tmp_path / "guard.sarif").read_text("utf-8")
