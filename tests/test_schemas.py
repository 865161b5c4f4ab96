"""The published JSON Schemas are true: real output validates against them with a JSON Schema validator.

`pain-sdm schema result` is what integrators code against, so every JSON-emitting output that
claims `pain-sdm/result/1` is checked against it: `evaluate --format json` for every example
under every profile, and every line of `evaluate --batch --full`. `schema answers` is checked
against the example answer files it describes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from conftest import EXAMPLES, run_cli


def published(kind: str) -> dict[str, Any]:
    done = run_cli("schema", kind)
    assert done.returncode == 0, done.stderr
    schema: dict[str, Any] = json.loads(done.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


@pytest.fixture(scope="module")
def result_schema() -> dict[str, Any]:
    return published("result")


def errors(schema: dict[str, Any], instance: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(instance)]


def test_the_result_schema_names_its_schema_field_as_output_writes_it(result_schema: dict[str, Any]) -> None:
    assert result_schema["additionalProperties"] is False
    assert "schema" in result_schema["properties"] and "schema_" not in result_schema["properties"]
    assert "schema" in result_schema["required"] or "default" in result_schema["properties"]["schema"]


@pytest.mark.parametrize("profile", ["consensus", "us-medicare", "uk-nice"])
def test_every_example_evaluated_as_json_validates_against_the_published_result_schema(
    result_schema: dict[str, Any], profile: str
) -> None:
    assert EXAMPLES
    for example in EXAMPLES:
        done = run_cli("evaluate", str(example), "--format", "json", "--profile", profile)
        assert done.returncode == 0, done.stderr
        output = json.loads(done.stdout)
        assert output["schema"] == "pain-sdm/result/1"
        assert errors(result_schema, output) == [], example.name


def test_every_full_batch_line_validates_against_the_published_result_schema(
    result_schema: dict[str, Any], tmp_path: Path
) -> None:
    batch = tmp_path / "in.jsonl"
    batch.write_text("".join(json.dumps(yaml.safe_load(p.read_text())) + "\n" for p in EXAMPLES))
    out = tmp_path / "out.jsonl"
    done = run_cli("evaluate", "--batch", str(batch), "-o", str(out), "--full", "--compare-profiles")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == len(EXAMPLES)
    for line in lines:
        assert errors(result_schema, line["result"]) == [], line["line"]


def test_a_result_that_breaks_the_schema_is_caught(result_schema: dict[str, Any]) -> None:
    """The check can fail: a misspelt field or a status that does not exist is an error."""
    done = run_cli("evaluate", str(EXAMPLES[0]), "--format", "json")
    output = json.loads(done.stdout)
    assert errors(result_schema, {**output, "schema_": output["schema"]})
    output["options"][0]["status"] = "maybe"
    assert errors(result_schema, output)


def test_every_example_validates_against_the_published_answers_schema() -> None:
    schema = published("answers")
    for example in EXAMPLES:
        assert errors(schema, yaml.safe_load(example.read_text())) == [], example.name
