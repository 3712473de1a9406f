"""The store: atomic transactions, and the lookup index kept right through every kind of write."""

from __future__ import annotations

import pytest

from dataverse_emulator.store import Ref, Store


def test_lookup_index_follows_inserts_updates_deletes_and_rollbacks() -> None:
    s = Store()
    a, b = Ref("account", "a"), Ref("account", "b")
    c1 = s.insert("contact", {"parentcustomerid": a})
    assert s.referencing_ids("contact", "parentcustomerid", a) == [c1]      # index built here
    c2 = s.insert("contact", {"parentcustomerid": a})
    assert s.referencing_ids("contact", "parentcustomerid", a) == sorted([c1, c2])
    s.update("contact", c1, {"parentcustomerid": b})
    assert s.referencing_ids("contact", "parentcustomerid", a) == [c2]
    assert s.referencing_ids("contact", "parentcustomerid", b) == [c1]
    with pytest.raises(RuntimeError), s.transaction():
        s.update("contact", c2, {"parentcustomerid": b})
        s.delete("contact", c1)
        c3 = s.insert("contact", {"parentcustomerid": b})
        assert set(s.referencing_ids("contact", "parentcustomerid", b)) == {c2, c3}
        raise RuntimeError("undo")
    assert s.referencing_ids("contact", "parentcustomerid", a) == [c2]
    assert s.referencing_ids("contact", "parentcustomerid", b) == [c1]
    assert [r["contactid"] for r in s.referencing("contact", "parentcustomerid", "account", "b")] == [c1]
