"""Every kind of bad setup gets one clear message: file, line, what is wrong, what would be valid; exit 2."""

from __future__ import annotations

import pytest

GOOD = """\
name: ok-setup
use_case: chat
target:
  kind: local
  hardware: {gpus: [], ram_gib: 16}
"""


def assert_clean(result, path: str, line: int | None, *needles: str) -> None:
    assert result.code == 2, result
    assert "Traceback" not in result.err and "Traceback" not in result.out
    location = f"{path}:{line}" if line else path
    assert location in result.err, result.err
    for needle in needles:
        assert needle in result.err, f"{needle!r} not in {result.err!r}"


def test_good_setup_is_ok(cli, write):
    path = write(GOOD)
    result = cli("validate", path)
    assert result.code == 0 and result.out.startswith("ok:"), result


def test_unknown_field_suggests_the_right_one(cli, write):
    path = write(GOOD + "use_cas: coding\n")
    assert_clean(cli("validate", path), path, 6, "unknown field 'use_cas'", "did you mean 'use_case'")


def test_unknown_nested_field(cli, write):
    path = write(GOOD.replace("ram_gib", "ram_gb"))
    assert_clean(cli("validate", path), path, 5, "target.hardware.ram_gb", "'ram_gib'")


def test_wrong_type(cli, write):
    path = write(GOOD.replace("ram_gib: 16", "ram_gib: lots"))
    assert_clean(cli("validate", path), path, 5, "target.hardware.ram_gib", "valid number")


def test_bad_enum_lists_valid_values(cli, write):
    path = write(GOOD.replace("use_case: chat", "use_case: poetry"))
    assert_clean(cli("validate", path), path, 2, "'poetry' is not valid", "'chat'", "'coding'", "'rag'")


def test_bad_target_kind(cli, write):
    path = write(GOOD.replace("kind: local", "kind: gcp"))
    assert_clean(cli("validate", path), path, 4, "target.kind", "'aws-spot'", "'free-trial'")


def test_yaml_syntax_error(cli, write):
    path = write("name: x\nuse_case: [chat\ntarget: {kind: local}\n")
    assert_clean(cli("validate", path), path, 3, "YAML syntax error")


def test_duplicate_key(cli, write):
    path = write(GOOD + "name: again\n")
    assert_clean(cli("validate", path), path, 6, "duplicate key 'name'")


@pytest.mark.parametrize("content", ["", "\n\n# only a comment\n"])
def test_empty_file(cli, write, content):
    path = write(content)
    assert_clean(cli("validate", path), path, 1, "empty", "name, use_case and target")


@pytest.mark.parametrize(("content", "kind"), [("- a\n- b\n", "a list"), ("42\n", "int scalar"),
                                               ("just text\n", "str scalar")])
def test_non_mapping_root(cli, write, content, kind):
    path = write(content)
    assert_clean(cli("validate", path), path, 1, kind, "mapping")


@pytest.mark.parametrize("name", ["../../etc/passwd", "Coder", "a b", "-lead", "x" * 64, "a/b", ""])
def test_name_must_be_slug(cli, write, name):
    path = write(GOOD.replace("name: ok-setup", f"name: {name!r}"))
    assert_clean(cli("validate", path), path, 1, "slug")


@pytest.mark.parametrize(("old", "new", "line", "needle"), [
    ("ram_gib: 16", "ram_gib: -4", 5, "greater than 0"),
    ("ram_gib: 16", "ram_gib: 1000000", 5, "less than or equal to 65536"),
    ("gpus: []", "gpus: [{name: RTX 4090, vram_gib: 100000}]", 5, "vram_gib"),
])
def test_negative_or_absurd_numbers(cli, write, old, new, line, needle):
    path = write(GOOD.replace(old, new))
    assert_clean(cli("validate", path), path, line, needle)


@pytest.mark.parametrize("context", ["-5", "100", "99999999999", "lots", "true"])
def test_bad_context(cli, write, context):
    path = write(GOOD + f"context: {context}\n")
    assert_clean(cli("validate", path), path, 6, "context", "'auto'")


def test_missing_model_file(cli, write):
    path = write(GOOD + "model: {file: ./nowhere/model.gguf}\n")
    assert_clean(cli("validate", path), path, 6, "does not exist", "nowhere/model.gguf")


def test_existing_model_file_is_accepted(cli, write, tmp_path):
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    path = write(GOOD + "model: {file: m.gguf}\n")
    assert cli("validate", path).code == 0


def test_unknown_model_id_suggests(cli, write):
    path = write(GOOD + "model:\n  id: llama-3.1-8b-instrct\n")
    assert_clean(cli("validate", path), path, 7, "unknown model id", "did you mean 'llama-3.1-8b-instruct'")


def test_unknown_gpu_suggests(cli, write):
    path = write(GOOD.replace("gpus: []", "gpus: [{name: RTX 4908}]"))
    assert_clean(cli("validate", path), path, 5, "unknown GPU 'RTX 4908'", "did you mean", "RTX 4090")


def test_unknown_quant(cli, write):
    path = write(GOOD + "model: {id: llama-3.1-8b-instruct, quant: Q4_K_N}\n")
    assert_clean(cli("validate", path), path, 6, "unknown quantization", "Q4_K_M")


def test_undecodable_bytes(cli, write):
    path = write(GOOD.encode() + b"# caf\xe9\n")
    assert_clean(cli("validate", path), path, 6, "not UTF-8")


def test_missing_file(cli, tmp_path):
    path = str(tmp_path / "nope.yaml")
    assert_clean(cli("validate", path), path, None, "file not found")


def test_missing_required_fields(cli, write):
    path = write("name: only-name\n")
    result = cli("validate", path)
    assert_clean(result, path, 1, "missing required field 'use_case'", "missing required field 'target'")


def test_cloud_fields_rejected_on_local(cli, write):
    path = write(GOOD.replace("kind: local", "kind: local\n  ttl: 3h"))
    assert_clean(cli("validate", path), path, 5, "target.ttl: ttl applies only to cloud targets")


@pytest.mark.parametrize(("field", "value", "needle"), [
    ("ttl", "forever", "duration"), ("ttl", "90d", "30 days"), ("allowed_cidrs", "[everyone]", "CIDR"),
    ("region", "mars-1", "should match pattern"),
])
def test_bad_cloud_fields(cli, write, field, value, needle):
    path = write(f"name: c\nuse_case: chat\ntarget:\n  kind: aws-spot\n  {field}: {value}\n")
    assert_clean(cli("validate", path), path, 5, needle)


def test_https_model_needs_sha256(cli, write):
    path = write(GOOD + "model: {file: 'https://example.com/m.gguf'}\n")
    assert_clean(cli("validate", path), path, 6, "sha256")


def test_debug_shows_traceback(cli, write, monkeypatch):
    path = write("- a\n")
    monkeypatch.setenv("INFERFORM_DEBUG", "1")
    from inferform.errors import InferformError

    with pytest.raises(InferformError):
        cli("validate", path)
