"""The VeraRetouch-Nano 2 recipe's main numbers, in a torch-free module so the CLI can show them.

`TrainOptions` (train.py) takes its defaults from here; the model card gives the measured cost.
"""

REFERENCE_STEPS = 4000  # stage 1, reference encoder + renderer
PLANNER_STEPS = 5000  # stage 2, planner end to end (the shipped weights; see benchmarks/RESULTS.md)
PLANNER_BATCH = 12
DIAGNOSIS_WEIGHT = 4.0  # cross-entropy weight of the problem sections' tokens
