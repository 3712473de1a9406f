"""Issue 11, end to end through main.py against the emulator: a spreadsheet edit of merges.csv can never merge
the wrong records or lose data. Each finding of the issue, reproduced the way a user meets it: the file as a
spreadsheet saves it, several .env files, step 3 rerun after a partial step 4, the marketing-list workaround
followed by a refused merge, an expired access token, and output piped into `head`."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import spreadsheet as xl

from dataverse_emulator import EmulatorHandle
from dataverse_emulator.store import Ref
from main import main
from runfolder.journal import read_journal, replay

ROOT = Path(__file__).resolve().parent.parent
VIEW = "Active Contacts for Duplicate Checking"


@dataclass
class Org:
    dv: EmulatorHandle
    work: Path
    env_file: str
    groups: dict[str, list[str]]     # name -> ids, oldest (the target with oldest_record) first

    def cli(self, *argv: str, env_file: str | None = None, stdin: str = "") -> tuple[int, str]:
        out = io.StringIO()
        args = ["--env-file", env_file or self.env_file, *argv] if argv else []
        code = main(args, stdin=io.StringIO(stdin), stdout=out, work_dir=self.work)
        return code, out.getvalue()

    def step(self, command: str, *extra: str, env_file: str | None = None) -> tuple[int, str]:
        return self.cli(command, "--entity", "contact", "--folder", "run", *extra, env_file=env_file)

    def merged_into(self, sub: str) -> str | None:
        row = self.dv.store.get("contact", sub)
        return row["masterid"].id if row and row.get("masterid") else None

    @property
    def merges_csv(self) -> Path:
        return self.work / "run" / "prepare" / "merges.csv"

    @property
    def attempts(self) -> int:
        return sum(self.dv.store.counters.merge_attempts.values())


def contact(dv: EmulatorHandle, group: str, n: int, **cols: object) -> str:
    return dv.store.insert("contact", {"firstname": f"{group}{n}", "lastname": "Müller", "createdon":
                                       f"20{10 + n}-01-01T00:00:00Z", "emailaddress1": f"{group}@dup.example",
                                       "telephone1": f"+44 20 7946 {hash((group, n)) % 10000:04d}", **cols})


def seed(dv: EmulatorHandle) -> dict[str, list[str]]:
    """Four groups: a chain of three with non-ASCII values (the subordinates bring a phone, an address and a
    job title), and three pairs."""
    groups = {"chain": [contact(dv, "chain", 0),
                        contact(dv, "chain", 1, address1_city="München", address1_postalcode="80331",
                                jobtitle="Директор"),
                        contact(dv, "chain", 2, address1_city="Gdańsk", address1_postalcode="80-001",
                                description="Zoë's \"note\", with a comma")]}
    for name in ("pairb", "pairc", "paird"):
        groups[name] = [contact(dv, name, 0), contact(dv, name, 1, jobtitle=f"{name} lead")]
    return groups


def prepared(make_emulator: Callable[..., EmulatorHandle], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
             organization: str = "test", token: str = "t", **emulator: object) -> Org:
    dv = make_emulator("empty", job_seconds=0.1, organization=organization, **emulator)
    monkeypatch.setenv("ACCESS_TOKEN", token)
    env_file = f"{organization}.env"
    (tmp_path / env_file).write_text(f"ENVIRONMENT_URI={dv.url}\nAUTH_MODE=access_token\n", encoding="utf-8")
    org = Org(dv, tmp_path, env_file, seed(dv))
    code, out = org.cli("detect", "--entity", "contact", "--view", VIEW, "--wait")
    assert code == 0, out
    job = out.split("detection job ")[1].split()[0]
    assert org.step("group", "--job-id", job)[0] == 0
    code, out = org.step("prepare")
    assert code == 0, out
    return org


@pytest.fixture
def org(make_emulator: Callable[..., EmulatorHandle], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Org:
    return prepared(make_emulator, tmp_path, monkeypatch)


def reconfigure(org: Org, *, faults: dict[str, object] | None = None, **options: object) -> None:
    """Change the running emulator's org (its options are read per request)."""
    current = org.dv.app.options
    org.dv.app.options = replace(current, faults=replace(current.faults, **(faults or {})), **options)


def merge(org: Org, *extra: str, env_file: str | None = None) -> tuple[int, str]:
    return org.step("merge", "--no-parenting-check", "--yes", *extra, env_file=env_file)


def test_a_one_column_sort_merges_nothing_and_names_the_rows(org: Org) -> None:
    xl.edit(org.merges_csv, xl.sort_one_column("subordinate_id", descending=True))
    code, out = merge(org)
    assert code == 2 and "rows differ, so nothing is merged" in out and "  row " in out, out
    assert org.attempts == 0


def test_swapped_ids_or_an_edited_value_merge_nothing(org: Org) -> None:
    xl.edit(org.merges_csv, xl.swap_cells(4, "target_id", "subordinate_id"))
    code, out = merge(org)
    assert code == 2 and "swapped" in out and org.attempts == 0
    org.step("prepare")
    table = xl.open_table(org.merges_csv)
    row = next(n for n, r in enumerate(table) if "München" in r[xl.column(table, "update_content")])
    cell = table[row][xl.column(table, "update_content")].replace("München", "Munich")
    xl.edit(org.merges_csv, xl.set_cell(row, "update_content", cell))
    code, out = merge(org)
    assert code == 2 and "rerun step 3 to change them" in out and org.attempts == 0


def test_a_deleted_row_holds_back_the_rest_of_its_chain_and_step_3_plans_the_rest_without_it(org: Org) -> None:
    target, first, second = org.groups["chain"]
    table = xl.open_table(org.merges_csv)
    row = next(n for n, r in enumerate(table) if first in r)
    xl.edit(org.merges_csv, xl.delete_rows(row))
    code, out = merge(org)
    assert code == 0, out
    assert org.merged_into(first) is None and org.merged_into(second) is None      # held back, not merged
    kept = org.dv.store.get("contact", target)
    assert kept.get("jobtitle") is None and kept.get("address1_city") is None   # nothing planned on top of it
    assert "left out of merges.csv" in out
    assert all(org.merged_into(ids[1]) == ids[0] for name, ids in org.groups.items() if name != "chain")
    code, out = org.step("prepare", "--replan")                                     # step 4 has begun: replan
    assert code == 0 and "stay out of their groups" in out, out
    assert merge(org)[0] == 0
    assert org.merged_into(second) == target and org.merged_into(first) is None    # the deleted row stays out
    assert org.dv.store.get("contact", target)["address1_city"] == "Gdańsk"


@pytest.mark.parametrize("save", [
    {"encoding": "utf-8", "bom": False, "sep": ";"},
    {"encoding": "utf-8", "bom": True, "trailing_empty_rows": 2, "quote_all": True},
    {"encoding": "utf-8", "bom": False, "line_end": "\n"},
])
def test_files_as_spreadsheets_save_them_merge_exactly_the_plan(org: Org, save: dict) -> None:
    xl.edit(org.merges_csv, xl.reformat_dates("target_modifiedon", "subordinate_modifiedon"), **save)
    code, out = merge(org)
    assert code == 0, out
    target, first, second = org.groups["chain"]
    assert org.merged_into(first) == target and org.merged_into(second) == target
    survivor = org.dv.store.get("contact", target)
    assert survivor["address1_city"] == "München" and survivor["address2_city"] == "Gdańsk"
    assert survivor["jobtitle"] == "Директор"


@pytest.mark.parametrize("damage", ["cp1252", "mojibake"])
def test_a_file_that_went_through_another_encoding_merges_nothing(org: Org, damage: str) -> None:
    if damage == "cp1252":
        xl.edit(org.merges_csv, lambda t: t, encoding="cp1252", bom=False)     # Excel's "CSV (Comma delimited)"
    else:
        org.merges_csv.write_bytes(org.merges_csv.read_bytes().removeprefix(b"\xef\xbb\xbf"))
        xl.as_ansi_then_utf8(org.merges_csv)                                      # opened as ANSI, saved as UTF-8
    code, out = merge(org)
    assert code == 2 and "CSV UTF-8" in out and "row " in out, out
    assert org.attempts == 0


def test_several_env_files_a_command_must_choose_and_a_folder_keeps_its_environment(
        org: Org, make_emulator: Callable[..., EmulatorHandle]) -> None:
    prod = make_emulator("empty", organization="prod")
    (org.work / "prod.env").write_text(f"ENVIRONMENT_URI={prod.url}\nAUTH_MODE=access_token\n", encoding="utf-8")
    out = io.StringIO()
    code = main(["merge", "--entity", "contact", "--folder", "run", "--yes"], stdin=io.StringIO(""), stdout=out,
                work_dir=org.work)
    said = out.getvalue()
    assert code == 2 and "prod.env" in said and "test.env" in said and "--env-file" in said
    code, text = merge(org, env_file="prod.env")
    assert code == 2 and "was prepared against" in text and "--env-file" in text
    assert sum(prod.store.counters.merge_attempts.values()) == 0 and org.attempts == 0
    code, text = org.cli(stdin="\n0\n")                                            # the menu names both
    assert code == 0 and "test.env" in text and "prod.env" in text and "Environment:" in text
    assert text.index("Environment: prod.env") < text.index("Choose an option")  # Enter took the first


def test_step_3_after_a_partial_step_4_replans_only_what_is_left(org: Org) -> None:
    assert merge(org, "--max", "2")[0] == 0
    done = {sub: org.merged_into(sub) for ids in org.groups.values() for sub in ids if org.merged_into(sub)}
    assert len(done) == 2
    code, out = org.step("prepare", "--target", "newest_record")
    assert code == 1 and "--replan" in out                                         # no silent replacement
    code, out = org.step("prepare", "--target", "newest_record", "--replan")
    assert code == 0 and "Planned what is left" in out, out
    code, out = merge(org)
    assert code == 0, out
    for ids in org.groups.values():
        targets = {org.merged_into(i) for i in ids} - {None}
        assert len(targets) == 1                                                   # one survivor per group
        (survivor,) = targets
        assert org.dv.store.get("contact", survivor)["statecode"] == 0            # never merged away after
        assert sum(1 for i in ids if org.merged_into(i) is None) == 1
    for sub, target in done.items():
        assert org.merged_into(sub) == target                                     # never re-targeted
    assert max(org.dv.store.counters.merge_success.values()) == 1


def test_a_failed_merge_puts_back_the_lists_the_workaround_moved(
        make_emulator: Callable[..., EmulatorHandle], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    org = prepared(make_emulator, tmp_path, monkeypatch)
    target, sub = org.groups["pairb"]
    # the subordinate is in two marketing lists, the Marketing plugin is installed, and the signed-in user
    # lacks a privilege on the subordinate: the workaround moves its lists, then the Merge is refused
    lists = [org.dv.store.insert("list", {"listname": f"L{i}", "type": False, "createdfromcode": 2}) for i in (1, 2)]
    for lid in lists:
        org.dv.store.insert("listmember", {"listid": Ref("list", lid), "entityid": Ref("contact", sub)})
    reconfigure(org, faults={"marketing_plugin": True, "deny_merge": frozenset({sub})})
    assert org.step("prepare")[0] == 0
    code, out = merge(org, "--marketing-workaround")
    assert code == 1 and "put back for 1 subordinates" in out, out
    members = {(m["listid"].id, m["entityid"].id) for m in org.dv.store.rows("listmember")}
    assert members == {(lid, sub) for lid in lists}                       # in its lists again; target not added
    events = [e["event"] for e in read_journal(org.work / "run" / "update" / "journal.jsonl")]
    assert events.count("list_restore") == 8     # 4 moves undone (sub back in 2 lists, target out of 2), intent + done
    assert org.merged_into(sub) is None


def test_an_expired_access_token_stops_the_run_at_once(
        make_emulator: Callable[..., EmulatorHandle], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    org = prepared(make_emulator, tmp_path, monkeypatch)
    reconfigure(org, require_token="a-new-token")      # the token in ACCESS_TOKEN is refused from now on
    before = len(org.dv.store.counters.requests)
    code, out = merge(org)
    assert code == 1 and "ACCESS_TOKEN" in out and "Traceback" not in out, out
    refused = [r for r in org.dv.store.counters.requests[before:] if r.status == 401]
    assert len(refused) == 1 and org.attempts == 0                      # asked once, nothing sent after
    monkeypatch.setenv("ACCESS_TOKEN", "a-new-token")                   # a new token: the rerun finishes
    assert merge(org)[0] == 0 and max(org.dv.store.counters.merge_success.values()) == 1


def test_a_token_expiring_mid_run_stops_sending_and_a_rerun_finishes(
        make_emulator: Callable[..., EmulatorHandle], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    org = prepared(make_emulator, tmp_path, monkeypatch, merge_ms=300)
    reconfigure(org, faults={"token_ttl": 0.8})        # the token expires while the merges run
    code, out = merge(org, "--workers", "1")
    assert code == 1 and "Stopped early" in out and "ACCESS_TOKEN" in out, out
    history = replay(read_journal(org.work / "run" / "update" / "journal.jsonl"))
    assert not any(h.pending for h in history.values())                 # every send is settled
    refused_merges = [r for r in org.dv.store.counters.requests if r.status == 401 and r.path.endswith("Merge")]
    assert len(refused_merges) <= 1                                     # one Merge refused, never resent
    monkeypatch.setenv("ACCESS_TOKEN", "fresh")
    reconfigure(org, faults={"token_ttl": 3600.0})
    assert merge(org)[0] == 0
    assert max(org.dv.store.counters.merge_success.values()) == 1
    assert sum(org.dv.store.counters.merge_success.values()) == 5


def test_output_piped_into_head_ends_quietly_and_the_journal_stays_whole(
        make_emulator: Callable[..., EmulatorHandle], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    org = prepared(make_emulator, tmp_path, monkeypatch, merge_ms=200)
    env = {**os.environ, "ACCESS_TOKEN": "t", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "--env-file", org.env_file, "merge",
                             "--entity", "contact", "--folder", "run", "--no-parenting-check", "--yes",
                             "--workers", "1"], cwd=org.work, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()                 # `| head -1`: read one line, then close the pipe
    proc.stdout.close()
    code = proc.wait(timeout=60)
    err = proc.stderr.read().decode()
    assert code == 141 and "Traceback" not in err and "BrokenPipe" not in err, err
    history = replay(read_journal(org.work / "run" / "update" / "journal.jsonl"))
    assert not any(h.pending for h in history.values())                # no merge cut off mid-flight
    assert merge(org)[0] == 0                                          # the rerun finishes the rest
    assert sum(org.dv.store.counters.merge_success.values()) == 5
    assert max(org.dv.store.counters.merge_success.values()) == 1
    assert json.loads((org.work / "run" / "update" / "merge_actions_made.json").read_text())["counts"]["merged"] == 5
