"""The TFX pipeline definition and its runners (local and Kubeflow)."""
