"""The IR's JSON Schema: the checked-in file is the generated one, and every contract file's IR fits."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from bmad.compiler import ir, ir_codec
from bmad.compiler.ir_schema import generate_ir_schema, render_ir_schema
from bmad.compiler.yaml_frontend import lower_yaml

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "compiler" / "schema" / f"ir.v{ir.IR_VERSION}.json"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_checked_in_schema_is_the_generated_one():
    assert SCHEMA_FILE.read_text() == render_ir_schema(), (
        "compiler/schema/ir.v1.json is stale: run "
        "`python -m bmad.compiler.ir_schema > compiler/schema/ir.v1.json`")


def test_every_node_class_has_a_definition():
    defs = generate_ir_schema()["$defs"]
    assert set(defs) == set(ir_codec.NODE_CLASSES)
    assert defs["Task"]["properties"]["priority"] == {
        "anyOf": [{"enum": ["low", "medium", "high", "critical"]}, {"type": "null"}]}


def test_contract_file_ir_validates(spec_file: Path, validator):
    from bmad.compiler.compile import compile_file

    result = compile_file(str(spec_file))
    assert result.ok, [d.message for d in result.diagnostics if d.is_error]
    data = json.loads(ir_codec.dumps(result.program))
    validator.validate(data)
    validator.validate(json.loads(ir_codec.dumps(result.program, spans=False)))


def test_schema_rejects_what_the_codec_would_not_write(validator):
    program, _ = lower_yaml((Path(__file__).resolve().parents[2] / ".." / "shared" / "spec" /
                             "seed_workflow.yaml").read_text(), "seed.yaml")
    data = json.loads(ir_codec.dumps(program))
    validator.validate(data)
    bad = json.loads(ir_codec.dumps(program))
    bad["workflows"][0]["tasks"][0]["priority"] = "urgent"
    assert not validator.is_valid(bad)
    bad = json.loads(ir_codec.dumps(program))
    bad["workflows"][0]["tasks"][0]["surprise"] = 1
    assert not validator.is_valid(bad)
    bad = json.loads(ir_codec.dumps(program))
    bad["ir_version"] = "0"
    assert not validator.is_valid(bad)
