import json

from typer.testing import CliRunner

from ehnas.cli import app

runner = CliRunner()


def test_help_lists_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "space" in result.output


def test_space_describe_prints_exact_size():
    result = runner.invoke(app, ["space", "describe"])
    assert result.exit_code == 0, result.output
    assert "exact size: 151443381882830110119962572078232868113790463123034112" in result.output
    assert "log10 size: 53.1803" in result.output


def test_space_describe_with_constraints_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "max_depth: 4\nstage_types:\n  early: [cnn]\n  mid: [cnn]\n  late: [cnn]\nhyperparameters:\n  cnn: {planes: [16], stride: [1], cardinality: [1], base_width: [32]}\nstage_connections:\n  early: [residual]\n  mid: [residual]\n  late: [residual]\n"
    )
    result = runner.invoke(app, ["space", "describe", "--constraints", str(path)])
    assert result.exit_code == 0, result.output
    assert "exact size: 1\n" in result.output


def test_bad_constraints_file_is_a_clear_error(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("stage_types:\n  early: [lstm]\n")
    result = runner.invoke(app, ["space", "describe", "--constraints", str(path)])
    assert result.exit_code != 0
    assert "lstm" in result.output


def test_space_sample_json():
    result = runner.invoke(app, ["space", "sample", "-n", "2", "--seed", "3", "--depth", "4", "--json", "--image-size", "16"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.strip().splitlines()]
    assert len(rows) == 2
    assert all(len(r["arch_id"]) == 12 and r["params"] > 0 and r["flops"] > 0 and len(r["code"]) == 120 for r in rows)
    again = runner.invoke(app, ["space", "sample", "-n", "2", "--seed", "3", "--depth", "4", "--json", "--image-size", "16"])
    assert again.output == result.output


def test_depth_on_a_space_without_depths_is_a_clear_error():
    result = runner.invoke(app, ["space", "sample", "--space", "nb201", "--depth", "4"])
    assert result.exit_code == 2
    assert "--depth applies to the hybrid space only" in result.output
