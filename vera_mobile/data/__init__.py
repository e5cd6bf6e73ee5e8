"""Training and evaluation data: the offline photo collection (`photos`) and its manifest.

The inverse-degradation synthesizer that turns these photos into records lives in
`vera_mobile.training.synthesis`; named styles in `vera_mobile.develop.styles`.
"""
