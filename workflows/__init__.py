"""The onboarding lifecycle, deterministic; all I/O happens in activities."""
