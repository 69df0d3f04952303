"""Wire formats and protocol state machines of the EIR, sans-IO.

Nothing here touches sockets, asyncio, clocks, the environment or logging: bytes and commands go in,
events and bytes come out (the h11 / h2 / aioquic shape). ``eir`` and ``simulations`` own all I/O.
"""
