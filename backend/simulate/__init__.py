"""Simulation: honest and malicious trainer behaviour for the demo, tests and benches."""
