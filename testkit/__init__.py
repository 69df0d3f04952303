"""Support shared by the test suite and the benchmarks, and by nothing that ships.

``tests/`` and ``bench/`` both import from here (never from each other): the EIR as a subprocess
(:mod:`testkit.eirproc`), ephemeral PostgreSQL/Redis/Mosquitto servers started from the installed
binaries (:mod:`testkit.services`), freeDiameter acting as an MME (:mod:`testkit.freediameter`) and
pycrate as the reference TCAP/MAP codec (:mod:`testkit.tcap_ref`). Not part of the installed
distribution (``pyproject.toml`` packages only ``eir``, ``protocols`` and ``simulations``).
"""
