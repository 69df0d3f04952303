"""Socket-level helpers shared by the EIR's servers (``eir``) and the simulated peers
(``simulations``), which must not import each other: no protocol logic, no policy, no config."""
