import re

import pytest
from typer.testing import CliRunner

from ehnas.cli import app


@pytest.mark.parametrize("command", ["resume", "report"])
def test_unknown_run_is_a_clear_error(command, tmp_path):
    result = CliRunner().invoke(app, [command, "no-such-run", "--runs-root", str(tmp_path)])
    assert result.exit_code == 2
    text = re.sub(r"[\s│╭╮╰╯─]+", " ", result.output)  # the error box wraps long paths
    assert "is not a run folder (no config.json)" in text
