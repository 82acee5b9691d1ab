"""Custom TFX components: each has a small component.py (its spec) and an executor.py."""
