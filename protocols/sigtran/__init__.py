"""SIGTRAN stack of the EIR, sans-IO: M3UA (RFC 4666) → SCCP (Q.713) → TCAP (Q.773) → MAP (TS 29.002)."""
