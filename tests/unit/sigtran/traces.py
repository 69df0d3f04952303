"""Real checkIMEI parameters from operator captures, as published by RestComm jSS7 (LGPL-2.1).

The 7 rows of ``jss7_map_checkimei_param_hexdumps.txt`` (the team's shared trace folder; origin
commits and paths below, tshark notes in its SOURCES.md), copied here so that the tests do not
depend on a file outside the repository. jSS7's authors label them "Real Trace" or "Huawei trace";
the expected values are the ones jSS7's own tests assert.

Origin: github.com/RestComm/jss7, ``map/map-impl/src/test/java/org/{restcomm,mobicents}/protocols/
ss7/map/service/mobility/imei/CheckImeiRequestTest.java`` (arguments) and
``CheckImeiResponseTest.java`` (the result), commits 81a54df1 (HEAD), 8b5c936a (Huawei, 2018) and
a2b15cea (2012).
"""

from __future__ import annotations

__all__ = ["TRACE_ARGS", "TRACE_RESULT_V2"]

TRACE_ARGS: list[tuple[str, int, str, str, str | None, str | None, str | None]] = [
    # label, ACN version, parameter hex, imei, imsi, msisdn, vendor
    ("checkimei_arg_v2_real", 2, "040853081910863555f0", "358091016853550", None, None, None),
    (
        "checkimei_arg_v2_huawei_imsi",
        2,
        "040853467640949819f0000827340403305867f3",
        "356467044989910",
        "724340300385763",
        None,
        "huawei",
    ),
    (
        "checkimei_arg_v2_huawei_imsi_msisdn",
        2,
        "040753147440326353010814008184881556f70206290352542818000000",
        "35414704233635",
        "410018488851657",
        "3025458281",
        "huawei",
    ),
    (
        "checkimei_arg_v3_huawei_imsi",
        3,
        "3018040868963430694344f0800814008175683115f0030206800000",
        "866943039634440",
        "410018578613510",
        None,
        "huawei",
    ),
    (
        "checkimei_arg_v3_huawei_imsi_msisdn",
        3,
        "3020040853922480353976f0800814008160388449f98106290390168216030206800000",
        "352942085393670",
        "410018068348949",
        "3009612861",
        "huawei",
    ),
    (
        "checkimei_arg_v2_real_2012_wrapped",
        2,
        "040a040853977540319395f0",
        "357957041339590",
        None,
        None,
        None,
    ),
]

TRACE_RESULT_V2 = "0a0100"
"""checkimei_res_v2_real: a bare EquipmentStatus whiteListed."""
