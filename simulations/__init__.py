"""Simulated network elements (MME, MSC/SGSN), load generation and trace replay; clients built on protocols/."""
