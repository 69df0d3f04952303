"""Fuzzing that stays: harnesses for every decoder and state machine a peer reaches (``targets``) and
the runner behind ``make fuzz`` / ``make fuzz-smoke`` (``python -m fuzz``)."""
