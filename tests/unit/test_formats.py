"""External list formats (eir/formats) from files written here with the real column sets
(DIRBS-Core etc/schema/*.csvs and listgen, the GSMA TAC database header, PyHSS, Open5GS
mongoexport), malformed rows included; imported into a real store and checked through the real
checker — notifications with a moved clock — and exported back (a round trip between two EIRs)."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from eir.checker import PolicyChecker
from eir.config import Config, load_config
from eir.formats import detect, detect_header
from eir.formats.export import day_bounds, export_dirbs, export_observations
from eir.formats.records import decode, encode
from eir.lists import (
    ListFileError,
    ParsedList,
    ParsedReference,
    import_parsed,
    import_reference,
    import_text,
    parse_file,
    report_dict,
)
from eir.metrics import register_metrics
from eir.model import CheckRequest, Interface, Status
from eir.store.base import EntryKind, IdentityStore, ListEntry, Pairing, PairingKind
from eir.store.memory import MemoryStore
from eir.store.sqlite import SqliteStore

REGISTRY = register_metrics()

B1, B2, B3 = "35693803564380", "35693803564381", "35693803564382"
N_PAST, N_FUTURE, N_AMNESTY = "35693803564390", "35693803564391", "35693803564392"
IMSI = "410011234567890"
GSMA_HEADER = (
    "TAC|Marketing Name|Internal Model Name|Manufacturer|Bands|Allocation Date|Country Code|Fixed Code|"
    "Manufacturer Code|Radio Interface|Brand Name|Model Name|Operating System|NFC|Bluetooth|WLAN|Device Type"
)


def ts(day: str) -> float:
    return datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()


def write(tmp: Path, name: str, text: str) -> Path:
    p = tmp / name
    p.write_text(text)
    return p


def as_list(p: ParsedList | ParsedReference) -> ParsedList:
    assert isinstance(p, ParsedList)
    return p


def as_ref(p: ParsedList | ParsedReference) -> ParsedReference:
    assert isinstance(p, ParsedReference)
    return p


class Clock:
    def __init__(self, day: str) -> None:
        self.now = ts(day) + 3600

    def __call__(self) -> float:
        return self.now


def cfg(**policy: Any) -> Config:
    return load_config(None, environ={}, overrides={"policy": policy} if policy else None)


class NoEvents:
    def publish(self, topic: str, payload: dict[str, Any]) -> None:
        return None


def checker(store: IdentityStore, clock: Clock | None = None, config: Config | None = None) -> PolicyChecker:
    kw: dict[str, Any] = {"wall": clock} if clock is not None else {}
    return PolicyChecker(config or cfg(), store, NoEvents(), **kw)


async def verdict(c: PolicyChecker, imei: str, imsi: str | None = None) -> tuple[str, str]:
    v = await c.check(CheckRequest(imei=imei, imsi=imsi, interface=Interface.S13))
    return v.status.value, v.rule


# --- detection ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "name", "fmt"),
    [
        ("imei,status,imsi,reason", "", "eir"),
        ("imsi,imei,reason", "", "eir"),
        ("imei,block_date,reasons", "blacklist.csv", "dirbs-blacklist"),
        ("imei,block_date,reasons", "20260101_blacklist_delta_1_2_blocked.csv", "dirbs-blacklist-delta"),
        ("imei,block_date,reasons,change_type", "x.csv", "dirbs-blacklist-delta"),
        ("imei,imsi,msisdn,block_date,reasons,amnesty_granted", "", "dirbs-notifications"),
        ("imei,imsi,msisdn", "", "dirbs-exceptions"),
        ("imei,imsi", "", "dirbs-exceptions"),
        ("imei,reporting_date,status", "", "dirbs-stolen"),
        (
            "approved_imei,make,model,status,model_number,brand_name,device_type,radio_interface,device_id",
            "",
            "dirbs-registration",
        ),
        ("imei", "", "dirbs-barred"),
        ("TAC", "", "dirbs-barred-tac"),
        ("golden_imei", "", "dirbs-golden"),
        (GSMA_HEADER, "", "gsma-tac"),
        ("tac,name,model", "", "pyhss-tac"),
        ('{"_id": {"$oid": "1"}, "pei": "imei-356938035643809", "status": "blacklisted"}', "", "open5gs-eir"),
        ("foo,bar", "", None),
    ],
)
def test_header_gives_the_format_away(header: str, name: str, fmt: str | None) -> None:
    assert detect_header(header, name) == fmt


def test_detect_skips_comments_and_blank_lines(tmp_path: Path) -> None:
    p = write(tmp_path, "x.csv", "# exported 2026-01-01\n\nimei,block_date,reasons\n")
    assert detect(p) == "dirbs-blacklist"
    assert detect(tmp_path / "missing.csv") is None


# --- DIRBS lists ---------------------------------------------------------------------------------


def test_blacklist_rows_normalisation_and_bad_rows(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "blacklist.csv",
        "imei,block_date,reasons\n"
        f"{B1},20260101,LOCAL STOLEN|DUPLICATE\n"
        f"{B2}5,20260102,GSMA NOT FOUND\n"  # 15 digits: keyed on the first 14, no Luhn check
        f"{B3}01,,\n"  # 16 digits (an IMEISV): the first 14
        "35693803ABCDEF,20260101,hex\n"  # skipped: no network IMEI has a hex digit
        "3569380356438*,20260101,star\n"
        "12345,20260101,short\n"
        "not-an-imei!,20260101,bad\n"  # line 8: DIRBS itself rejects it
        f"{B1}9,20260101,dup\n"  # same first 14 as line 2: a duplicate
        f"{B2},2026-13-01,bad month\n"  # line 10
        f"{B2},20260101,x,extra\n",  # line 11: too many columns
    )
    parsed = as_list(parse_file(p))
    assert parsed.format == "dirbs-blacklist" and parsed.slice_tag == "dirbs-blacklist"
    assert [(b.line, b.reason.split(":")[0]) for b in parsed.bad] == [
        (8, "not a DIRBS IMEI (1-16 hex digits, * or #)"),
        (10, "block_date is not a valid date"),
        (11, "4 columns, the header has 3"),
    ]
    assert parsed.rows == 10 and parsed.duplicates == 1
    entries = {e.key: e for e in parsed.entries}
    assert set(entries) == {B1, B2, B3}
    assert all(e.status is Status.BLACK and e.kind is EntryKind.IMEI for e in entries.values())
    assert entries[B1].reason == "dirbs-blacklist;block_date=20260101;reasons=LOCAL STOLEN|DUPLICATE"
    assert entries[B3].reason == "dirbs-blacklist"
    n = parsed.normalised.counts
    assert n["truncated to 14 digits"] == 3
    assert n["skipped: hex digit, * or # in the first 14 (no network IMEI matches)"] == 2
    assert n["skipped: shorter than 14 characters"] == 1
    rep = report_dict(parsed)
    assert rep["bad_rows"] == 3 and rep["errors"][0]["line"] == 8
    assert "line 3: " + B2 + "5" in rep["normalised"]["truncated to 14 digits"]["examples"]
    assert "normalised: 3 truncated to 14 digits" in parsed.summary()


async def test_full_import_replaces_only_its_own_list(tmp_path: Path) -> None:
    store = MemoryStore()
    bl = write(tmp_path, "bl.csv", f"imei,block_date,reasons\n{B1},20260101,a\n{B2},20260101,b\n")
    stolen = write(
        tmp_path, "st.csv", f"imei,reporting_date,status\n{B3},20250505,\n{N_PAST},20250505,pending\n"
    )
    await import_parsed(store, as_list(parse_file(bl)))
    st = as_list(parse_file(stolen))
    assert st.normalised.counts == {"skipped: stolen status 'pending' (only empty or blacklist blocks)": 1}
    await import_parsed(store, st)
    # the next blacklist drops B2 and keeps the stolen list
    bl2 = write(tmp_path, "bl2.csv", f"imei,block_date,reasons\n{B1},20260101,a\n")
    await import_parsed(store, as_list(parse_file(bl2)))
    listed = {x.key: x.reason async for x in store.export() if isinstance(x, ListEntry)}
    assert listed == {
        B1: "dirbs-blacklist;block_date=20260101;reasons=a",
        B3: "dirbs-stolen;reporting_date=20250505",
    }
    versions = await store.versions()
    assert next(v for v in versions if v.active).source == "dirbs-blacklist: bl2.csv"


@pytest.mark.parametrize("by", ["file name", "column"])
async def test_blacklist_delta_blocked_unblocked_changed(tmp_path: Path, by: str) -> None:
    store = MemoryStore()
    await import_parsed(
        store,
        as_list(
            parse_file(
                write(tmp_path, "bl.csv", f"imei,block_date,reasons\n{B1},20260101,a\n{B2},20260101,b\n")
            )
        ),
    )
    if by == "file name":
        files = [
            write(tmp_path, f"20260201_blacklist_delta_1_2_{kind}.csv", f"imei,block_date,reasons\n{rows}")
            for kind, rows in (
                ("blocked", f"{B3},20260201,new\n"),
                ("unblocked", f"{B1},20260101,a\n"),
                ("changed", f"{B2},20260301,b|c\n"),
            )
        ]
    else:
        files = [
            write(
                tmp_path,
                "delta.csv",
                "imei,block_date,reasons,change_type\n"
                f"{B3},20260201,new,blocked\n{B1},20260101,a,unblocked\n{B2},20260301,b|c,changed\n",
            )
        ]
    for f in files:
        parsed = as_list(parse_file(f))
        assert parsed.format == "dirbs-blacklist-delta" and parsed.delta and parsed.slice_tag is None
        await import_parsed(store, parsed)
    listed = {x.key: x.reason async for x in store.export() if isinstance(x, ListEntry)}
    assert listed == {
        B2: "dirbs-blacklist;block_date=20260301;reasons=b|c",
        B3: "dirbs-blacklist;block_date=20260201;reasons=new",
    }


def test_delta_needs_a_change_type(tmp_path: Path) -> None:
    p = write(tmp_path, "d.csv", f"imei,block_date,reasons\n{B1},20260101,a\n")
    with pytest.raises(ListFileError, match="change_type column or a file name"):
        parse_file(p, fmt="dirbs-blacklist-delta")
    bad = write(tmp_path, "e.csv", f"imei,block_date,reasons,change_type\n{B1},20260101,a,maybe\n")
    assert "change_type must be" in as_list(parse_file(bad)).bad[0].reason


def test_wrong_header_for_the_format_names_the_columns(tmp_path: Path) -> None:
    p = write(tmp_path, "x.csv", "imei,status\n35693803564380,black\n")
    with pytest.raises(
        ListFileError, match="needs the columns imei,block_date,reasons; missing block_date, reasons"
    ):
        parse_file(p, fmt="dirbs-blacklist")
    with pytest.raises(ListFileError, match="empty file"):
        parse_file(write(tmp_path, "e.csv", "\n"), fmt="dirbs-golden")
    with pytest.raises(ListFileError, match="unknown list format"):
        parse_file(p, fmt="dirbs-purple")


async def test_notifications_grey_until_the_block_date_then_black(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "notifications.csv",
        "imei,imsi,msisdn,block_date,reasons,amnesty_granted\n"
        f"{N_PAST},{IMSI},923001234567,20260110,Duplicate IMEI detected,False\n"
        f"{N_AMNESTY},{IMSI},923001234567,20260110,Duplicate IMEI detected,True\n"
        f"{N_FUTURE},,,20260120,Not on registration list,\n"
        f"{B1},12,,20260120,bad imsi,\n"  # line 5
        f"{B2},,,,no date,\n",  # line 6
    )
    parsed = as_list(parse_file(p))
    assert [(b.line, b.reason) for b in parsed.bad] == [
        (5, "not an IMSI (5 to 15 digits): '12'"),
        (6, "block_date is not a date YYYYMMDD: ''"),
    ]
    store = MemoryStore()
    await import_parsed(store, parsed, skip_bad=True)
    clock = Clock("2026-01-09")
    c = checker(store, clock)
    assert await verdict(c, N_PAST) == ("grey", "notification")
    assert await verdict(c, N_FUTURE) == ("grey", "notification")
    clock.now = ts("2026-01-10") + 1  # the block date of N_PAST: blocked from that day (UTC)
    assert await verdict(c, N_PAST) == ("black", "notification")
    assert await verdict(c, N_AMNESTY) == ("grey", "notification")  # amnesty granted: never blocked
    assert await verdict(c, N_FUTURE) == ("grey", "notification")
    clock.now = ts("2026-01-25")
    assert await verdict(c, N_FUTURE) == ("black", "notification")
    steps = await c.explain(CheckRequest(imei=N_PAST, interface=Interface.CLI))
    note = next(s for s in steps if s.rule == "notification")
    assert "block date 2026-01-10 reached (today 2026-01-25); reasons Duplicate IMEI detected" in note.detail
    clock.now = ts("2026-01-01")
    steps = await c.explain(CheckRequest(imei=N_PAST, interface=Interface.CLI))
    assert "grey until block date 2026-01-10" in next(s for s in steps if s.rule == "notification").detail
    # rule off: the imported status (grey), whatever the date
    off = checker(store, Clock("2030-01-01"), cfg(notifications={"enabled": False}))
    assert await verdict(off, N_PAST) == ("grey", "notification")


async def test_exceptions_beat_the_blacklist_for_their_imsi_only(tmp_path: Path) -> None:
    store = MemoryStore()
    await import_parsed(
        store, as_list(parse_file(write(tmp_path, "bl.csv", f"imei,block_date,reasons\n{B1},20260101,a\n")))
    )
    exc = as_list(
        parse_file(
            write(
                tmp_path,
                "exceptions.csv",
                f"imei,imsi,msisdn\n{B1},{IMSI},923001234567\n{B1}7,{IMSI},923001234567\n{B2},x,\n",
            )
        )
    )
    assert exc.kind == "pairing" and exc.duplicates == 1
    assert [b.line for b in exc.bad] == [4]
    await import_parsed(store, exc, skip_bad=True)
    c = checker(store)
    assert await verdict(c, B1, IMSI) == ("white", "pairing")
    assert await verdict(c, B1, "410019999999999") == ("black", "imei")
    assert await verdict(c, B1) == ("black", "imei")
    pairs = await store.pairings()
    assert pairs == [
        Pairing(kind=PairingKind.PAIRING, imsi=IMSI, imei=B1, reason="dirbs-exceptions;msisdn=923001234567")
    ]


async def test_barred_barred_tac_golden_and_open5gs(tmp_path: Path) -> None:
    store = MemoryStore()
    for name, text in (
        ("barred.csv", f"IMEI\n{B1}\n12345678901234567\n"),
        ("barred_tac.csv", "TAC\n86700000\n8670000\n"),
        (
            "open5gs.json",
            f'{{"_id": {{"$oid": "a"}}, "pei": "imei-{B3}5", "supi": "imsi-{IMSI}", '
            '"status": "greylisted"}\n'
            '{"pei": "imeisv-3569380356439301", "status": "BLACK"}\n'
            "not json\n"
            '{"pei": "35693803564394", "status": "purple"}\n',
        ),
    ):
        parsed = as_list(parse_file(write(tmp_path, name, text)))
        assert parsed.bad_count == (2 if name.endswith(".json") else 1), (name, parsed.bad)
        await import_parsed(store, parsed, skip_bad=True)
    golden = as_ref(parse_file(write(tmp_path, "golden.csv", f"golden_imei\n{B2}\n35693803-64380\n")))
    assert (golden.table, golden.items, golden.bad_count) == ("golden", [(B2, "")], 1)
    await import_reference(store, golden, skip_bad=True)
    bad = as_list(parse_file(tmp_path / "open5gs.json")).bad
    assert [(b.line, b.reason.split(" (")[0]) for b in bad] == [
        (3, "not JSON"),
        (4, "status must be white, grey or black"),
    ]
    c = checker(store)
    assert await verdict(c, B1) == ("black", "imei")
    assert await verdict(c, "86700000123456") == ("black", "tac")
    assert await verdict(c, B2) == ("white", "golden")
    assert await verdict(c, B3) == ("grey", "imei")
    v = await c.check(CheckRequest(imei="35693803564393", software_version="01", interface=Interface.S13))
    assert (v.status, v.rule) == (Status.BLACK, "imeisv")
    e = (await store.lookup(B3)).imei
    assert e is not None and e.imsi == IMSI and e.reason == "open5gs-eir"


@pytest.mark.parametrize("golden_first", [True, False])
async def test_golden_beats_the_blocking_lists_in_either_import_order(
    tmp_path: Path, golden_first: bool
) -> None:
    """DIRBS never blocks a golden IMEI: the golden table is white above every list entry and rule,
    whether the golden list came before or after the blacklist, notifications, stolen and barred
    lists; a full blocking-list re-import leaves it; emptying the golden list lets the lists decide."""
    store = MemoryStore()
    golden = as_ref(parse_file(write(tmp_path, "golden.csv", f"golden_imei\n{B1}\n{B2}\n{N_PAST}5\n")))
    blocking = [
        ("blacklist.csv", f"imei,block_date,reasons\n{B1},20250101,LOCAL STOLEN\n{B3},20250101,X\n"),
        ("notifications.csv", f"imei,imsi,msisdn,block_date,reasons\n{N_PAST},{IMSI},92300,20200101,dup\n"),
        ("stolen.csv", f"imei,reporting_date,status\n{B2},20250101,\n"),
        ("barred.csv", f"imei\n{B2}\n"),
    ]
    if golden_first:
        await import_reference(store, golden)
    for name, text in blocking:
        await import_parsed(store, as_list(parse_file(write(tmp_path, name, text))))
    if not golden_first:
        await import_reference(store, golden)
    c = checker(store, Clock("2026-06-01"))
    for imei in (B1, B2, N_PAST):
        assert await verdict(c, imei) == ("white", "golden"), imei
        assert await verdict(c, imei, IMSI) == ("white", "golden"), imei
    assert await verdict(c, B3) == ("black", "imei")  # not golden: the blacklist decides
    steps = {s.rule: s for s in await c.explain(CheckRequest(imei=B1, interface=Interface.CLI))}
    assert steps["golden"].outcome == "decided"
    assert steps["golden"].detail == (
        "on the DIRBS golden list: never blocked "
        f"(overrides the black list's {B1} [dirbs-blacklist] block date 20250101, reasons LOCAL STOLEN)"
    )
    # the blacklist re-imported in full: still golden
    await import_parsed(store, as_list(parse_file(tmp_path / "blacklist.csv")))
    assert await verdict(c, B1) == ("white", "golden")
    # policy.golden off: the table is ignored and the lists decide
    off = checker(store, Clock("2026-06-01"), cfg(golden=False))
    assert await verdict(off, B1) == ("black", "imei")
    # an empty golden list unloads the table: the lists decide again
    await import_reference(store, as_ref(parse_file(write(tmp_path, "g0.csv", "golden_imei\n"))))
    assert await verdict(c, B1) == ("black", "imei")
    assert await verdict(c, B2) == ("black", "imei")


async def test_golden_entries_of_earlier_versions_move_to_the_table(tmp_path: Path) -> None:
    """Earlier versions imported the golden list as white list entries; importing it now replaces
    them by the table."""
    store = MemoryStore()
    await store.import_version(
        [ListEntry(kind=EntryKind.IMEI, key=B2, status=Status.WHITE, reason="dirbs-golden")], [], source="old"
    )
    await import_reference(store, as_ref(parse_file(write(tmp_path, "g.csv", f"golden_imei\n{B1}\n"))))
    assert [e async for e in store.export()] == []
    assert await verdict(checker(store), B1) == ("white", "golden")


# --- reference tables and their rules ---------------------------------------------------------------


def gsma_file(tmp: Path) -> Path:
    return write(
        tmp,
        "tac.txt",
        GSMA_HEADER + "\n"
        "35693803|Galaxy X|SM-X100|Samsung Korea|GSM 900,LTE FDD BAND 1|01-Jan-2020|410|0|M1|LTE|"
        "Samsung|Galaxy X|Android|Y|Y|Y|Smartphone\n"
        "86700000|Router|R1|Acme|LTE|02-Feb-2021|156|0|M2|LTE|Acme|R1||N|N|Y|Modem\n"
        "8670000|short|tac|x|x|x|x|x|x|x|x|x|x|x|x|x|x\n"  # line 4
        "35693803|dup|x|x|x|x|x|x|x|x|x|x|x|x|x|x|x\n"
        "35693804|too|few\n",  # line 6
    )


async def test_gsma_tac_table_and_the_tac_not_allocated_rule(tmp_path: Path) -> None:
    parsed = as_ref(parse_file(gsma_file(tmp_path)))
    assert (parsed.format, parsed.table, parsed.rows, parsed.duplicates) == ("gsma-tac", "tac", 5, 1)
    assert [(b.line, b.reason) for b in parsed.bad] == [
        (4, "not a TAC (8 digits): '8670000'"),
        (6, "3 columns, the header has 17"),
    ]
    device = decode("tac", dict(parsed.items)["35693803"])
    assert device["brand_name"] == "Samsung" and device["device_type"] == "Smartphone"
    assert device["allocation_date"] == "01-Jan-2020" and "operating_system" in device
    with pytest.raises(ListFileError, match="2 bad rows, nothing imported"):
        await import_reference(MemoryStore(), parsed)

    store = MemoryStore()
    await import_parsed(
        store, as_list(parse_file(write(tmp_path, "bl.csv", "imei,block_date,reasons\n35000000000001,,\n")))
    )
    c = checker(store)
    unallocated = "35000000000002"
    assert await verdict(c, unallocated) == ("white", "default")  # no table: the rule is silent
    table = await import_reference(store, parsed, skip_bad=True)
    assert (table.rows, table.source) == (2, "gsma-tac: tac.txt")
    assert await verdict(c, unallocated) == ("grey", "tac_not_allocated")  # the new version dropped the cache
    assert await verdict(c, "35000000000001") == ("black", "imei")  # a listed IMEI keeps its list verdict
    assert await verdict(c, B1) == ("white", "default")
    black = checker(store, config=cfg(tac_not_allocated={"verdict": "black"}))
    assert await verdict(black, unallocated) == ("black", "tac_not_allocated")
    off = checker(store, config=cfg(tac_not_allocated={"enabled": False}))
    assert await verdict(off, unallocated) == ("white", "default")

    steps = {s.rule: s for s in await c.explain(CheckRequest(imei=B1, interface=Interface.CLI))}
    assert steps["device"].detail == "TAC 35693803: Samsung Galaxy X (Smartphone, Android, LTE)"
    assert steps["tac_alloc"].outcome == "yes"
    steps = {s.rule: s for s in await c.explain(CheckRequest(imei=unallocated, interface=Interface.CLI))}
    assert steps["device"].outcome == "unknown" and steps["tac_alloc"].outcome == "no"
    assert steps["tac_not_allocated"].outcome == "decided"


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
async def test_registration_list_and_pyhss_tac(tmp_path: Path, backend: str) -> None:
    """SQLite answers registered IMEIs from an in-memory set with the record left out
    (``REGISTERED``): the explanation still shows the record, read for it."""
    reg = write(
        tmp_path,
        "registration.csv",
        "approved_imei,make,model,status,model_number,brand_name,device_type,radio_interface,device_id\n"
        f"{B1},Samsung,Galaxy X,whitelist,SM-X100,Samsung,Smartphone,LTE,d1\n"
        f"{B2}7,Nokia,3310,,N3310,Nokia,Feature phone,GSM,d2\n"
        f"{B3},Acme,R1,pending,R1,Acme,Modem,LTE,d3\n"
        "x,Acme,R1,,R1,Acme,Modem,LTE,d4\n",
    )
    parsed = as_ref(parse_file(reg))
    assert parsed.table == "registration" and [k for k, _ in parsed.items] == [B1, B2]
    assert [b.line for b in parsed.bad] == [5]
    assert parsed.normalised.counts["truncated to 14 digits"] == 1
    store: IdentityStore = MemoryStore()
    if backend == "sqlite":
        store = SqliteStore(f"sqlite:///{tmp_path / 'reg.db'}", str(tmp_path))
        await store.open()
        await store.import_version([], [], source="empty")
    await import_reference(store, parsed, skip_bad=True)
    c = checker(store)
    assert await verdict(c, B1) == ("white", "default")
    assert await verdict(c, B3) == ("grey", "not_registered")
    assert await verdict(checker(store, config=cfg(not_registered={"verdict": "black"})), B3) == (
        "black",
        "not_registered",
    )
    steps = {s.rule: s for s in await c.explain(CheckRequest(imei=B2, interface=Interface.CLI))}
    assert (
        steps["device"].detail == "Nokia 3310 (Feature phone, GSM)" and steps["registered"].outcome == "yes"
    )

    # PyHSS's TAC CSV fills the same TAC table; with both tables the stricter verdict decides
    pyhss = as_ref(
        parse_file(write(tmp_path, "tac.csv", "tac,name,model\n35693803,Samsung,Galaxy X\n123,bad,row\n"))
    )
    assert pyhss.format == "pyhss-tac" and [b.line for b in pyhss.bad] == [3]
    await import_reference(store, pyhss, skip_bad=True)
    strict = checker(store, config=cfg(tac_not_allocated={"verdict": "black"}))
    assert await verdict(strict, "35000000000009") == ("black", "tac_not_allocated")
    assert await verdict(strict, B3) == ("grey", "not_registered")
    steps = {s.rule: s for s in await strict.explain(CheckRequest(imei=B1, interface=Interface.CLI))}
    assert steps["device"].detail == "TAC 35693803: Samsung Galaxy X"
    assert steps["registered"].detail == "Samsung Galaxy X (Smartphone, LTE)"
    await store.close()


# --- information sharing out ---------------------------------------------------------------------------


async def test_export_round_trip_between_two_eirs(tmp_path: Path) -> None:
    a, b = MemoryStore(), SqliteStore(f"sqlite:///{tmp_path / 'b.db'}", str(tmp_path))
    await b.open()
    try:
        await import_parsed(
            a, as_list(parse_file(write(tmp_path, "bl.csv", f"imei,block_date,reasons\n{B1},20260101,x|y\n")))
        )
        await import_parsed(
            a,
            as_list(
                parse_file(
                    write(
                        tmp_path,
                        "n.csv",
                        "imei,imsi,msisdn,block_date,reasons,amnesty_granted\n"
                        f"{N_PAST},{IMSI},923001234567,20260110,dup,False\n{N_AMNESTY},,,20260110,dup,True\n",
                    )
                )
            ),
        )
        await import_parsed(
            a, as_list(parse_file(write(tmp_path, "e.csv", f"imei,imsi,msisdn\n{B1},{IMSI},9230\n")))
        )
        await a.import_version(
            [ListEntry(kind=EntryKind.IMEI, key=B2, status=Status.BLACK, reason="ours")],
            [],
            source="own",
            delta=True,
        )
        files = {}
        for fmt in ("dirbs-blacklist", "dirbs-notifications", "dirbs-exceptions"):
            out = io.StringIO()
            n = await export_dirbs(fmt, a.export(), out)
            files[fmt] = write(tmp_path, f"{fmt}.csv", out.getvalue())
            assert n == {"dirbs-blacklist": 2, "dirbs-notifications": 2, "dirbs-exceptions": 1}[fmt]
        assert files["dirbs-blacklist"].read_text().splitlines() == [
            "imei,block_date,reasons",
            f"{B1},20260101,x|y",
            f"{B2},,ours",
        ]
        for fmt, f in files.items():
            parsed = as_list(parse_file(f))
            assert parsed.format == fmt and parsed.ok
            await import_parsed(b, parsed)
        clock = Clock("2026-02-01")
        for imei, imsi in ((B1, None), (B1, IMSI), (N_PAST, None), (N_AMNESTY, None), (B2, None)):
            assert await verdict(checker(a, clock), imei, imsi) == await verdict(
                checker(b, clock), imei, imsi
            )
        assert await verdict(checker(b, clock), N_PAST) == ("black", "notification")
        e = (await b.lookup(N_PAST)).imei
        assert e is not None and e.imsi == IMSI and "msisdn=923001234567" in (e.reason or "")
    finally:
        await b.close()


def test_observations_as_a_dirbs_operator_dump() -> None:
    rows = [
        (B2, "i", IMSI, ts("2026-01-02") + 10),
        (B1, "i", IMSI, ts("2026-01-01") + 50),
        (B1, "o", "mme.example", ts("2026-01-01") + 60),  # an origin, not a subscriber: left out
        (B1, "i", "410019999999999", ts("2026-01-03") + 1),
    ]
    out = io.StringIO()
    since, until = day_bounds("2026-01-01", "20260102", ts("2026-06-01"))
    assert (since, until) == (ts("2026-01-01"), ts("2026-01-03"))
    assert export_observations(rows, out, until=until) == 2
    assert out.getvalue().splitlines() == [
        "date,imei,imsi,msisdn,rat",
        f"20260101,{B1},{IMSI},,",
        f"20260102,{B2},{IMSI},,",
    ]
    with pytest.raises(ValueError, match="before --since"):
        day_bounds("20260105", "20260101", 0)


# DIRBS-Core etc/schema/OperatorImportSchema_v2.csvs: what its operator data import validates
DIRBS_OPERATOR_ROW = re.compile(
    r"^20[0-9]{6},[0-9A-Fa-f*#]{0,16},[0-9]{0,15},[0-9]{0,15},"
    r"((00[1-7]|10[1-5])(\|(00[1-7]|10[1-5]))*)?$"
)


def test_observations_rat_from_the_interface() -> None:
    """The sighting's kind says the interface: S13 → 006 (E-UTRAN), MAP → 002 (GERAN), N5g and
    an unknown interface → empty; a pair seen on two interfaces the same day: both, |-joined."""
    day = ts("2026-01-01")
    rows = [
        (B1, "e", IMSI, day + 1),  # S13
        (B2, "g", IMSI, day + 2),  # MAP
        (B3, "n", IMSI, day + 3),  # N5g-eir
        (B3, "i", "410019999999999", day + 4),  # kind before interfaces were kept
        (B1, "g", IMSI, day + 5),  # the same pair over MAP too
        (B1, "e", IMSI, day + 86400 + 5),  # and over S13 the next day
    ]
    out = io.StringIO()
    assert export_observations(rows, out) == 5
    lines = out.getvalue().splitlines()
    assert lines == [
        "date,imei,imsi,msisdn,rat",
        f"20260101,{B1},{IMSI},,002|006",
        f"20260101,{B2},{IMSI},,002",
        f"20260101,{B3},{IMSI},,",
        f"20260101,{B3},410019999999999,,",
        f"20260102,{B1},{IMSI},,006",
    ]
    assert all(DIRBS_OPERATOR_ROW.match(line) for line in lines[1:])


def test_observations_msisdn_from_map_and_n5g_rows() -> None:
    """A MAP or N5g-eir row's value carries the request's MSISDN after a space (eir/sightings.py):
    the dump splits it out; an S13 row's value is the User-Name whole, space or not."""
    day = ts("2026-01-01")
    rows = [
        (B1, "g", f"{IMSI} 923001234567", day + 1),
        (B1, "e", IMSI, day + 2),  # the same pair over S13: no MSISDN there, the MAP one stays
        (B2, "n", f"{IMSI} 4915112345678", day + 3),
        (B3, "e", "odd user name", day + 4),
    ]
    out = io.StringIO()
    assert export_observations(rows, out) == 3
    lines = out.getvalue().splitlines()
    assert lines[1:] == [
        f"20260101,{B1},{IMSI},923001234567,002|006",
        f"20260101,{B2},{IMSI},4915112345678,",
        f"20260101,{B3},odd user name,,006",
    ]
    assert all(DIRBS_OPERATOR_ROW.match(line) for line in lines[1:3])


def test_records_round_trip_and_refuse_unknown_fields() -> None:
    rec = encode("registration", {"make": "Nokia", "model": "3310", "device_id": "d1"})
    assert decode("registration", rec) == {"make": "Nokia", "model": "3310", "device_id": "d1"}
    assert decode("tac", None) == {}
    with pytest.raises(ValueError, match="no field colour"):
        encode("tac", {"colour": "red"})


async def test_import_text_for_the_admin_api() -> None:
    store = MemoryStore()
    bad = await import_text(store, f"imei,block_date,reasons\n{B1},20260101,a\nzz,,\n", name="bl.csv")
    assert (bad["format"], bad["version"], bad["imported"]) == ("dirbs-blacklist", None, False)
    assert bad["errors"] == [
        {"line": 3, "reason": "not a DIRBS IMEI (1-16 hex digits, * or #): 'zz'", "text": "zz,,"}
    ]
    dry = await import_text(store, f"imei,block_date,reasons\n{B1},20260101,a\n", dry_run=True)
    assert dry["imported"] is False and await store.active_version() is None
    ok = await import_text(store, f"imei,block_date,reasons\n{B1},20260101,a\n")
    assert ok["imported"] and ok["version"] == await store.active_version()
    tac = await import_text(store, "tac,name,model\n35693803,Samsung,Galaxy X\n", fmt="pyhss-tac")
    assert (tac["table"], tac["version"]) == ("tac", ok["version"])
    assert (await store.lookup(B1)).device is not None
    with pytest.raises(ListFileError):
        await import_text(store, "", fmt="gsma-tac")


async def test_import_on_start_takes_any_format(tmp_path: Path) -> None:
    from eir.lists import import_files

    own = write(tmp_path, "own.csv", f"imei,status\n{B2},white\n")
    bl = write(tmp_path, "bl.csv", f"imei,block_date,reasons\n{B1},20260101,a\n")
    tac = write(tmp_path, "tac.csv", "tac,name,model\n35693803,Samsung,Galaxy X\n")
    store = MemoryStore()
    await import_files(store, [tac, bl, own])
    c = checker(store)
    assert await verdict(c, B1) == ("black", "imei")
    assert await verdict(c, B2) == ("white", "imei")
    assert await verdict(c, "49015420323751") == ("grey", "tac_not_allocated")
    bad = write(tmp_path, "bad.csv", "imei,block_date,reasons\nzz,20260101,a\n")
    empty = MemoryStore()
    with pytest.raises(ListFileError, match="1 bad rows, nothing imported"):
        await import_files(empty, [own, bad])
    assert await empty.versions() == []


def test_observations_in_daily_files(tmp_path: Path) -> None:
    from eir.formats.export import write_daily

    rows = [
        (B1, "i", IMSI, ts("2026-01-01") + 50),
        (B2, "i", IMSI, ts("2026-01-02") + 10),
        (B1, "o", "mme.example", ts("2026-01-02") + 60),
        (B3, "i", IMSI, ts("2026-01-05") + 1),  # after --until
    ]
    files = write_daily(rows, tmp_path / "out", since=ts("2026-01-01"), until=ts("2026-01-03"))
    assert files == [("20260101_observations.csv", 1), ("20260102_observations.csv", 1)]
    assert (tmp_path / "out" / "20260102_observations.csv").read_text().splitlines() == [
        "date,imei,imsi,msisdn,rat",
        f"20260102,{B2},{IMSI},,",
    ]


def test_kind_pairing_keeps_our_own_format(tmp_path: Path) -> None:
    p = write(tmp_path, "pairs.csv", f"imei,imsi\n{B1},{IMSI}\n")
    assert as_list(parse_file(p)).format == "dirbs-exceptions"
    ours = as_list(parse_file(p, kind="lock"))
    assert (ours.format, ours.kind, ours.pairings[0].kind) == ("eir", "lock", PairingKind.LOCK)
