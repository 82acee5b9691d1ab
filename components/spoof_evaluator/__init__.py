"""The SpoofEvaluator component: EER and t-DCF on the eval split, and the blessing."""
