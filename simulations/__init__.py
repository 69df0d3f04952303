"""Simulated network elements (MME, MSC/SGSN) and load generation: clients built on protocols/."""
