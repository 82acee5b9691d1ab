"""FeatureExtractor: a custom ExampleGen that turns audio folders into log-Mel Examples."""
