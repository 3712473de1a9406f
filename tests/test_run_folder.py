"""RunFolder: confined names, atomic writes, and clear messages for missing or broken files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from errors import RunStateError, UsageError
from runfolder.folder import RunFolder, atomic_write_text, resolve_run_folder
from runfolder.state import DuplicateGroups, Group


def test_folder_names_stay_inside_the_working_folder(tmp_path: Path) -> None:
    assert resolve_run_folder("contact_merge_2026", tmp_path) == (tmp_path / "contact_merge_2026").resolve()
    assert resolve_run_folder("  runs/contact 1  ", tmp_path) == (tmp_path / "runs" / "contact 1").resolve()
    for bad in ("../outside", "/etc", "..", "", "   ", "a/../../b", "x;rm -rf", "."):
        with pytest.raises(UsageError):
            resolve_run_folder(bad, tmp_path)


def test_json_round_trip_and_no_temp_files_left(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "r")
    run.write_json(run.duplicate_groups_path, {"a": "José O'Brien 王"})
    assert run.read_json(run.duplicate_groups_path, "step 2") == {"a": "José O'Brien 王"}
    assert [p.name for p in run.group_dir.iterdir()] == ["duplicate_groups.json"]


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "f.json"
    atomic_write_text(target, "old")

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("runfolder.folder.os.fsync", disk_full)
    with pytest.raises(OSError):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.json"]


def test_missing_and_corrupted_files_name_the_file_and_the_step(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "r")
    with pytest.raises(RunStateError, match=r"duplicate_groups.json does not exist.*step 2"):
        run.read_duplicate_groups()
    run.group_dir.mkdir(parents=True)
    run.duplicate_groups_path.write_text('{"job_id": "x", "groups": [', encoding="utf-8")
    with pytest.raises(RunStateError, match="not valid JSON"):
        run.read_duplicate_groups()
    run.duplicate_groups_path.write_text(json.dumps({"job_id": "x", "groups": []}), encoding="utf-8")
    with pytest.raises(RunStateError, match="damaged"):
        run.read_duplicate_groups()


def test_duplicate_groups_round_trip(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "r")
    a, b = "00000000-0000-0000-0000-00000000000a", "00000000-0000-0000-0000-00000000000b"
    groups = DuplicateGroups("job", "contact", [Group(a, (a, b))], pairs_read=3, capped=True)
    run.write_duplicate_groups(groups)
    back = run.read_duplicate_groups()
    assert back.groups == groups.groups and back.capped and back.pairs_read == 3 and back.entity == "contact"


@pytest.mark.parametrize("records", [["../../etc/passwd"], "abc", [1, 2]])
def test_record_ids_that_are_not_guids_make_the_file_damaged(tmp_path: Path, records: object) -> None:
    run = RunFolder(tmp_path / "r")
    run.write_json(run.duplicate_groups_path, {"job_id": "j", "entity": "contact", "groups": [
        {"group_id": "00000000-0000-0000-0000-00000000000a", "records": records}]})
    with pytest.raises(RunStateError, match="damaged"):
        run.read_duplicate_groups()


def test_a_record_file_must_hold_that_record(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "r")
    rid = "00000000-0000-0000-0000-00000000000a"
    run.write_json(run.record_path(rid), {"contactid": "00000000-0000-0000-0000-00000000000b"})
    with pytest.raises(RunStateError, match="does not hold"):
        run.read_record(rid)


def test_csv_missing_column_is_named(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "r")
    run.write_csv(run.merges_csv, ["a", "b"], [["1", "=2"]], bom=True)
    assert run.merges_csv.read_bytes().startswith(b"\xef\xbb\xbf")
    assert run.read_csv(run.merges_csv, ["a", "b"], "step 3") == [{"a": "1", "b": "=2"}]
    with pytest.raises(RunStateError, match="has no column c"):
        run.read_csv(run.merges_csv, ["a", "c"], "step 3")


def test_replace_dir_swaps_cleanly_and_keeps_old_on_failure(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "r")
    with run.replace_dir(run.prepare_dir) as tmp:
        (tmp / "merges.csv").write_text("v1")
    with pytest.raises(ValueError), run.replace_dir(run.prepare_dir) as tmp:
        (tmp / "merges.csv").write_text("half")
        raise ValueError
    assert (run.prepare_dir / "merges.csv").read_text() == "v1"
    with run.replace_dir(run.prepare_dir) as tmp:
        (tmp / "other.csv").write_text("v2")
    assert sorted(p.name for p in run.prepare_dir.iterdir()) == ["other.csv"]
    assert sorted(p.name for p in run.root.iterdir()) == ["prepare"]


def test_csv_cells_beyond_the_csv_modules_default_limit_read_back(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "r")
    big = "x" * 300_000
    run.write_csv(run.merges_csv, ["a"], [[big]])
    assert run.read_csv(run.merges_csv, ["a"], "step 3") == [{"a": big}]


def test_a_folder_name_too_long_for_the_file_system_is_refused_before_anything_is_made(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="too long for this file system"):
        resolve_run_folder("x" * 300, tmp_path)
    with pytest.raises(UsageError, match="too long"):
        resolve_run_folder("/".join(["y" * 200] * 25), tmp_path)   # each part fits, the whole path does not
    assert list(tmp_path.iterdir()) == []


def test_run_files_get_the_usual_permissions(tmp_path: Path) -> None:
    """tempfile makes 0600 files and 0700 folders; a colleague or a backup job of the user's group must be able
    to read a run folder as any other file the user made (umask 022: 0644 and 0755)."""
    import os
    import stat

    old = os.umask(0o022)
    try:
        from runfolder import files

        files._umask.cache_clear()
        run = RunFolder(tmp_path / "run")
        with run.replace_dir(run.prepare_dir) as tmp:
            files.atomic_write_text(tmp / "merges.csv", "x")
        assert stat.S_IMODE(run.prepare_dir.stat().st_mode) == 0o755
        assert stat.S_IMODE((run.prepare_dir / "merges.csv").stat().st_mode) == 0o644
    finally:
        os.umask(old)
        files._umask.cache_clear()
