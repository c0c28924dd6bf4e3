"""Tests of the benchmarks' helpers (never of their figures)."""
