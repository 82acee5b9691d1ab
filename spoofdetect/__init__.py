"""Spoofed-speech detection: features, models and metrics, free of TFX."""
