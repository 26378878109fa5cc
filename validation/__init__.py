"""Validation runs of bayeslmm (simulation-based calibration, coverage); see docs/validation.md."""
