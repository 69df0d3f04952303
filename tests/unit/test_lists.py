"""CSV list files: validation (line numbers and reasons), what an import replaces, deltas, export."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from eir.lists import ListFileError, export_csv, import_files, import_parsed, parse_csv
from eir.model import Status
from eir.store.base import EntryKind, ListEntry, Pairing, PairingKind
from eir.store.memory import MemoryStore
from eir.store.sqlite import SqliteStore

ROOT = Path(__file__).resolve().parents[2]


def parse(text: str, **kw: object) -> object:
    return parse_csv(io.StringIO(text), **kw)  # type: ignore[arg-type]


async def mem() -> MemoryStore:
    s = MemoryStore()
    await s.open()
    return s


def test_demo_file_parses() -> None:
    p = parse_csv(ROOT / "config" / "lists" / "demo.csv")
    assert p.ok and not p.delta and p.kind == "equipment" and p.rows == len(p.entries) > 0
    kinds = {e.kind for e in p.entries}
    assert {EntryKind.IMEI, EntryKind.IMEISV, EntryKind.RANGE, EntryKind.TAC} <= kinds


def test_every_identity_form() -> None:
    p = parse(
        "imei,status,imsi,reason\n"
        "35209900176148,white,,plain\n"
        "490154203237518,grey,262011234567890,with check digit\n"
        "358091016853550,black,,spare digit from a trace\n"
        "3520990017614823,black,,imeisv\n"
        "86700000,black,,tac\n"
        "35691234000000-356912340009998,grey,,range; 15-digit last\n"
        " 35691235000000 , BLACK ,,spaces and case\n"
        "35691236000000,gray,,american\n"
    )
    assert p.ok, p.report()
    got = [(e.kind, e.key, e.last, e.status, e.imsi, e.reason) for e in p.entries]
    assert got == [
        (EntryKind.IMEI, "35209900176148", None, Status.WHITE, None, "plain"),
        (EntryKind.IMEI, "49015420323751", None, Status.GREY, "262011234567890", "with check digit"),
        (EntryKind.IMEI, "35809101685355", None, Status.BLACK, None, "spare digit from a trace"),
        (EntryKind.IMEISV, "3520990017614823", None, Status.BLACK, None, "imeisv"),
        (EntryKind.TAC, "86700000", None, Status.BLACK, None, "tac"),
        (EntryKind.RANGE, "35691234000000", "35691234000999", Status.GREY, None, "range; 15-digit last"),
        (EntryKind.IMEI, "35691235000000", None, Status.BLACK, None, "spaces and case"),
        (EntryKind.IMEI, "35691236000000", None, Status.GREY, None, "american"),
    ]


def test_bad_rows_are_all_reported_with_line_numbers() -> None:
    text = (
        "# national list, 2026-11\n"
        "imei,status,imsi,reason\n"  # line 2
        "35209900176148,white,,\n"
        "12345,black,,\n"  # 4 too short
        "352099001761482,black,,\n"  # 5 check digit
        "35209900176155,purple,,\n"  # 6 status
        "35209900176163,black,12ab,\n"  # 7 imsi
        "35209900176171-35209900176100,black,,\n"  # 8 range backwards
        "35209900176148,black,,\n"  # 9 conflicting duplicate
        "35209900176148,white,,\n"  # 10 harmless duplicate
        "35209900176189,black,,x,extra\n"  # 11 too many columns
        "\n"
        "3520990017618a,black,,\n"  # 13 letter
        ",black,,\n"  # 14 empty
        "35209900176197,pairing,,\n"
    )  # 15 pairing without IMSI
    p = parse(text)
    assert not p.ok and p.bad_count == 10 and p.duplicates == 1 and len(p.entries) == 1
    lines = {b.line: b.reason for b in p.bad}
    assert sorted(lines) == [4, 5, 6, 7, 8, 9, 11, 13, 14, 15]
    assert "5 digits" in lines[4]
    assert "check digit" in lines[5] and "expected 1" in lines[5]
    assert "purple" in lines[6]
    assert "IMSI" in lines[7]
    assert "before first" in lines[8]
    assert "line 3 says white" in lines[9]
    assert "5 columns" in lines[11]
    assert "needs an imsi" in lines[15]
    assert "line 9:" in p.report()
    assert 12 not in lines  # blank


@pytest.mark.parametrize(
    ("text", "kind", "message"),
    [
        ("", "equipment", "empty file"),
        ("foo,bar\n1,2\n", "equipment", "header must name imei and status"),
        ("imei,reason\n", "equipment", "header must name imei and status"),
        ("imsi,imei\n262011234567890,35209900176148\n", "equipment", "--kind pairing or --kind lock"),
        ("imei,status,status\n", "equipment", "given twice"),
        ("imei,status\n", "pairing", "is an equipment file"),
        ("imsi,reason\n", "lock", "lacks imei"),
    ],
)
def test_unusable_files(text: str, kind: str, message: str) -> None:
    with pytest.raises(ListFileError, match=message):
        parse(text, kind=kind)


def test_unreadable_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(ListFileError, match="cannot read"):
        parse_csv(tmp_path / "nope.csv")
    f = tmp_path / "bin.csv"
    f.write_bytes(b"imei,status\n\xff\xfe\x00garbage\n")
    with pytest.raises(ListFileError, match="not UTF-8"):
        parse_csv(f)


def test_unknown_columns_are_ignored_and_named_and_bom_is_ok(tmp_path: Path) -> None:
    f = tmp_path / "bom.csv"
    f.write_bytes("\ufeffIMEI,Status,date\n35209900176148,black,2026-11-30\n".encode())
    p = parse_csv(f)
    assert p.ok and p.ignored_columns == ["date"] and len(p.entries) == 1


async def test_full_equipment_import_replaces_equipment_and_keeps_pairings() -> None:
    s = await mem()
    await import_parsed(s, parse("imsi,imei\n262011234567890,35209900176148\n", kind="pairing"))
    await import_parsed(s, parse("imsi,imei\n262019999999999,35209900176155\n", kind="lock"))
    await import_parsed(s, parse("imei,status\n35209900176148,black\n"))
    v = await import_parsed(s, parse("imei,status\n35209900176155,grey\n"))
    assert v.entries == 1 and v.pairings == 2
    assert (await s.lookup("35209900176148")).imei is None
    # a full pairing file replaces the pairings only
    v = await import_parsed(
        s, parse("imsi,imei,reason\n262011111111111,35209900176148,new\n", kind="pairing")
    )
    assert v.entries == 1 and v.pairings == 2
    assert sorted((p.kind.value, p.imsi) for p in await s.pairings()) == [
        ("lock", "262019999999999"),
        ("pairing", "262011111111111"),
    ]
    # an equipment file with pairing rows replaces that list too, not the locks
    v = await import_parsed(
        s, parse("imei,status,imsi\n35209900176148,pairing,262012222222222\n35209900176163,white,\n")
    )
    assert sorted((p.kind.value, p.imsi) for p in await s.pairings()) == [
        ("lock", "262019999999999"),
        ("pairing", "262012222222222"),
    ]


async def test_delta_file_with_op_column() -> None:
    s = await mem()
    await import_parsed(
        s,
        parse(
            "imei,status,imsi\n35209900176148,black,\n35209900176155,grey,\n"
            "86700000,black,\n35209900176163,lock,262011234567890\n"
        ),
    )
    p = parse(
        "imei,status,imsi,reason,op\n"
        "35209900176148,,,,remove\n"
        "35209900176155,white,,cleared,add\n"
        "35209900176171,black,,stolen,\n"
        "86700000,,,,REMOVE\n"
        "35209900176163,lock,262011234567890,,remove\n"
    )
    assert p.delta and p.ok, p.report()
    v = await import_parsed(s, p)
    assert v.entries == 2 and v.pairings == 0
    assert (await s.lookup("35209900176148")).imei is None
    assert (await s.lookup("35209900176155")).imei.status is Status.WHITE  # type: ignore[union-attr]
    assert (await s.lookup("86700000123456")).range is None


def test_remove_rows_need_a_delta() -> None:
    p = parse("imei,status,op\n35209900176148,,remove\n", delta=False)
    assert not p.ok and "non-delta" in p.bad[0].reason
    p = parse("imei,status,op\n35209900176148,black,replace\n")
    assert "op must be add or remove" in p.bad[0].reason


async def test_bad_rows_import_nothing_unless_skip_bad() -> None:
    s = await mem()
    p = parse("imei,status\n35209900176148,black\nbad,black\n")
    with pytest.raises(ListFileError, match="1 bad rows, nothing imported"):
        await import_parsed(s, p)
    assert await s.versions() == []
    v = await import_parsed(s, p, skip_bad=True)
    assert v.entries == 1


async def test_import_files_for_import_on_start(tmp_path: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("imei,status\n35209900176148,black\n")
    b.write_text("imei,status,imsi\n86700000,grey,\n35209900176148,pairing,262011234567890\n")
    s = await mem()
    v = await import_files(s, [a, b])
    assert v.entries == 2 and v.pairings == 1 and v.source == "a.csv,b.csv"
    b.write_text("imei,status\nnope,grey\n")
    with pytest.raises(ListFileError, match="line 2"):
        await import_files(s, [a, b])


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
async def test_export_reimports_to_the_same_lists(tmp_path: Path, backend: str) -> None:
    s = await mem() if backend == "memory" else SqliteStore(f"sqlite:///{tmp_path / 'e.db'}", str(tmp_path))
    await s.open()
    p = parse_csv(ROOT / "config" / "lists" / "demo.csv")
    await import_parsed(s, p)
    await import_parsed(
        s, parse('imsi,imei,reason\n262011234567890,35209900176148,"a, quoted"\n', kind="pairing")
    )
    out = io.StringIO()
    n = await export_csv(s.export(), out)
    text = out.getvalue()
    assert text.startswith("imei,status,imsi,reason\n") and n == len(p.entries) + 1
    before = sorted(map(repr, [x async for x in s.export()]))
    await s.import_version([], [], source="wipe")
    await import_parsed(s, parse(text))
    assert sorted(map(repr, [x async for x in s.export()])) == before
    only = io.StringIO()
    assert await export_csv(s.export(), only, kind="pairing") == 1
    await s.close()


def test_entry_rows_iterate_as_list_entries() -> None:
    p = parse("imei,status\n35209900176148,black\n")
    assert list(p.entries) == [ListEntry(kind=EntryKind.IMEI, key="35209900176148", status=Status.BLACK)]
    assert len(p.entries) == 1


def test_pairing_files() -> None:
    p = parse(
        "imsi,imei,reason\n262011234567890,490154203237518,x\n001010000000001,35209900176148,\n"
        "262011234567890,490154203237518,dup\n1,35209900176148,\n",
        kind="lock",
    )
    assert p.bad_count == 1 and p.duplicates == 1 and p.bad[0].line == 5
    assert p.pairings == [
        Pairing(kind=PairingKind.LOCK, imsi="262011234567890", imei="49015420323751", reason="x"),
        Pairing(kind=PairingKind.LOCK, imsi="001010000000001", imei="35209900176148"),
    ]


def test_progress_bar_only_on_a_terminal(tmp_path: Path) -> None:
    from eir.lists import progress_bar

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert progress_bar("x", io.StringIO()) is None
    out = Tty()
    bar = progress_bar("reading big.csv", out)
    assert bar is not None
    f = tmp_path / "big.csv"
    f.write_text("imei,status\n" + "".join(f"{35209900000000 + i},black\n" for i in range(140_000)))
    p = parse_csv(f, progress=bar)
    assert p.ok and len(p.entries) == 140_000
    text = out.getvalue()
    assert "reading big.csv [" in text and "100.0%" in text and text.endswith("\n")
