"""The schema of the feature Examples, checked by ExampleValidator on every run."""
