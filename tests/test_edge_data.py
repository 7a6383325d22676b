"""Issue 13 items 4 and 6: the data is checked before a run, and corrupt images are skipped.

Real image files on disk; the CLI cases run the real `ehnas run` app and must stop before Prefect
starts with the data exit code (3).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ehnas.exit_codes import ExitCode
from nas_lib.data.checks import check_source
from nas_lib.data.datasets import DatasetError, load_dataset
from tests.test_edge_config import assert_nothing_started, invoke


def write_folder(root: Path, counts: dict[str, int], corrupt: dict[str, int] | None = None) -> Path:
    """``root/<class>/<i>.png`` (random 8x8 RGB) plus ``bad_<i>.png`` files that are not images."""
    rng = np.random.default_rng(0)
    for name, n in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / name / f"{i}.png")
    for name, n in (corrupt or {}).items():
        for i in range(n):
            good = (root / name / "0.png").read_bytes()
            (root / name / f"bad_{i}.png").write_bytes(good[: len(good) // 3])  # a truncated PNG
    return root


def write_csv(folder: Path, rows: list[str]) -> Path:
    path = folder / "list.csv"
    path.write_text("path,label,split\n" + "".join(r + "\n" for r in rows))
    return path


def test_missing_path_and_missing_csv_files_are_found_without_decoding(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_source("image_folder", tmp_path / "absent")
    folder = write_folder(tmp_path / "imgs", {"a": 2, "b": 2})
    table = write_csv(tmp_path, ["imgs/a/0.png,a,train", "imgs/b/0.png,b,train", "imgs/b/9.png,b,train"])
    with pytest.raises(FileNotFoundError, match=r"line 4: image 'imgs/b/9.png' not found"):
        check_source("csv", table)
    with pytest.raises(DatasetError, match="needs data.path"):
        check_source("image_folder", None)
    check_source("image_folder", folder)  # two classes of two: enough
    check_source("digits", None)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file; permissions cannot be tested as root")
def test_unreadable_path_is_refused(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "imgs", {"a": 2, "b": 2})
    folder.chmod(0)
    try:
        with pytest.raises(PermissionError, match="not readable"):
            check_source("image_folder", folder)
    finally:
        folder.chmod(0o755)


def test_one_class_or_too_few_images_per_class_is_refused(tmp_path: Path) -> None:
    one = write_folder(tmp_path / "one", {"cat": 6})
    with pytest.raises(DatasetError, match="a classifier needs two classes at least"):
        check_source("image_folder", one)
    few = write_folder(tmp_path / "few", {"cat": 4, "dog": 1})
    with pytest.raises(DatasetError, match=r"fewer than 2 images .*'dog' \(1\)"):
        check_source("image_folder", few)
    (tmp_path / "few" / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"'empty' \(0\)"):
        check_source("image_folder", few)
    # test rows do not count towards training: one training class is not enough
    table = write_csv(tmp_path / "few", ["cat/0.png,cat,train", "cat/1.png,cat,train", "cat/2.png,cat,val", "dog/0.png,dog,test"])
    with pytest.raises(DatasetError, match="two classes at least"):
        check_source("csv", table)


def test_one_class_folder_never_loads(tmp_path: Path) -> None:
    """The run that trained to val_accuracy 1.0 on one class stops at loading, in any entry point."""
    one = write_folder(tmp_path / "one", {"cat": 6})
    with pytest.raises(DatasetError, match="a classifier needs two classes at least"):
        load_dataset("image_folder", one, image_size=8)


def test_corrupt_images_are_skipped_up_to_the_share(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "imgs", {"a": 50, "b": 49}, corrupt={"b": 1})
    data = load_dataset("image_folder", folder, image_size=8, max_corrupt_fraction=0.01)
    assert len(data.train_y) + len(data.val_y) == 99
    assert len(data.skipped) == 1
    path, reason = data.skipped[0]
    assert path.endswith("bad_0.png") and reason
    clean = load_dataset("image_folder", write_folder(tmp_path / "clean", {"a": 3, "b": 3}), image_size=8)
    assert clean.skipped == ()
    with pytest.raises(DatasetError, match=r"1 of 100 image files cannot be decoded.*bad_0.png"):
        load_dataset("image_folder", folder, image_size=8, max_corrupt_fraction=0.0)


def test_too_many_corrupt_images_stop_loading_naming_files(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "imgs", {"a": 4, "b": 4}, corrupt={"a": 3})
    rows = [f"imgs/{c}/{f.name},{c},train" for c in ("a", "b") for f in sorted((folder / c).iterdir())]
    table = write_csv(tmp_path, rows)
    with pytest.raises(DatasetError, match=r"3 of 11 image files cannot be decoded.*max_corrupt_fraction=0.01.*bad_0.png"):
        load_dataset("csv", table, image_size=8)
    data = load_dataset("csv", table, image_size=8, max_corrupt_fraction=0.5)
    assert sorted(Path(p).name for p, _ in data.skipped) == ["bad_0.png", "bad_1.png", "bad_2.png"]
    assert len(data.train_y) + len(data.val_y) == 8


def test_max_corrupt_fraction_is_a_config_field() -> None:
    from tasks.config import ConfigError, load_config

    assert load_config(None, ["data.max_corrupt_fraction=0.05"]).data.max_corrupt_fraction == 0.05
    with pytest.raises(ConfigError, match="data.max_corrupt_fraction = 2"):
        load_config(None, ["data.max_corrupt_fraction=2"])


@pytest.mark.parametrize("case", ["missing", "one_class", "csv_missing_file"])
def test_bad_data_exits_3_before_prefect(tmp_path: Path, case: str) -> None:
    if case == "missing":
        args = ["--set", "data.kind=image_folder", "--set", f"data.path={tmp_path / 'absent'}"]
    elif case == "one_class":
        args = ["--set", "data.kind=image_folder", "--set", f"data.path={write_folder(tmp_path / 'one', {'cat': 5})}"]
    else:
        write_folder(tmp_path / "imgs", {"a": 2, "b": 2})
        args = ["--set", "data.kind=csv", "--set", f"data.path={write_csv(tmp_path, ['imgs/a/0.png,a,train', 'imgs/a/7.png,a,train'])}"]
    work = tmp_path / "work"
    work.mkdir()
    code, out = invoke(["run", *args, "--set", "registry.enabled=false"], work)
    assert code == ExitCode.DATA == 3, out
    assert "data (" in out and "Traceback" not in out
    assert_nothing_started(work)


def test_a_corrupt_image_stops_the_run_in_preflight(tmp_path: Path) -> None:
    """Issue 22 item 2: found before Prefect starts, with the data code and the file's name."""
    folder = write_folder(tmp_path / "imgs", {"a": 3, "b": 3}, corrupt={"b": 1})
    code, out = invoke(["run", "--set", "data.kind=image_folder", "--set", f"data.path={folder}", "--set", "registry.enabled=false"], tmp_path)
    assert code == ExitCode.DATA, out
    assert "1 of 7 image files cannot be decoded, more than data.max_corrupt_fraction=0.01 allows" in out and "bad_0.png" in out
    assert "01_knowledge" not in out
    assert_nothing_started(tmp_path)


def test_a_tolerated_corrupt_image_is_reported_up_front(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ehnas.preflight import check_data
    from tasks.config import load_config

    folder = write_folder(tmp_path / "imgs", {"a": 3, "b": 3}, corrupt={"b": 1})
    config = load_config(None, ["data.kind=image_folder", f"data.path={folder}", "data.max_corrupt_fraction=0.2"])
    check_data(config)
    err = capsys.readouterr().err
    assert "1 image file(s) cannot be decoded and will be skipped (within data.max_corrupt_fraction=0.2)" in err and "bad_0.png" in err


def test_a_data_failure_inside_the_flow_names_the_loading_not_a_step(tmp_path: Path) -> None:
    from ehnas.commands.pipeline import run_failure
    from flows.pipeline import DataLoadFailed, load_run_data
    from tasks.config import load_config

    folder = write_folder(tmp_path / "imgs", {"a": 3, "b": 3}, corrupt={"b": 1})
    config = load_config(None, ["data.kind=image_folder", f"data.path={folder}", f"runs_root={tmp_path / 'runs'}", "run_name=r"])
    with pytest.raises(DataLoadFailed) as caught:
        load_run_data(config)
    error = run_failure(config, caught.value)
    assert error.exit_code == ExitCode.DATA and "while loading the data, before the first step" in error.message
    assert "bad_0.png" in error.message and "in step" not in error.message
