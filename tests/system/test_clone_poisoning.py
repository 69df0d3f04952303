"""Clone-rule poisoning over the wire (issue 10 item 1): a real ``eir serve`` and two simulated MMEs,
one trusted (``policy.clone.trusted_origins``), one not; a per-origin budget of new sightings."""

from __future__ import annotations

import re
from typing import Any

from simulations.mme import SimulatedMme

IMSIS = [f"26201000000{i:04d}" for i in range(30)]


def _metric(text: str, name: str, **labels: str) -> float:
    lab = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    m = re.search(rf"^{name}{{{lab}}} (\S+)$" if labels else rf"^{name} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


async def test_an_untrusted_mme_cannot_grey_an_imei_and_budgets_hold(eir_factory: Any) -> None:
    eir = eir_factory(
        {"policy": {"clone": {"trusted_origins": ["mme-ok*.lab"], "max_new_per_origin": 0.1, "max_imsis": 3}}}
    )
    host, port = eir.diameter
    evil = await SimulatedMme.connect(host, port, origin_host="mme-evil.lab", origin_realm="lab")
    ok = await SimulatedMme.connect(host, port, origin_host="mme-ok1.lab", origin_realm="lab")
    try:
        # the untrusted MME names one IMEI with ten IMSIs: answered white every time, nothing recorded
        got = {(await evil.check("35209900176148", imsi=imsi)).verdict for imsi in IMSIS[:10]}
        assert got == {"white"}
        # the trusted one: a budget of a new sighting every 10 s, so of 20 new IMSIs at once the
        # first is recorded and the rest counted, and the IMEI is not suspected on their strength
        got = {(await ok.check("35209900176155", imsi=imsi)).verdict for imsi in IMSIS[10:30]}
        assert got == {"white"}
    finally:
        await evil.close()
        await ok.close()
    text = eir.metrics_text()
    assert _metric(text, "eir_sightings_refused_total", reason="untrusted") == 10
    refused = _metric(text, "eir_sightings_refused_total", reason="peer_budget")
    assert 17 <= refused <= 19  # one recorded, and one more per 10 s the checks took
    assert _metric(text, "eir_clone_suspicions_total", reason="imsis") == 0
