"""The VeraRetouch-Nano 2 recipe's main numbers, in a torch-free module so the CLI can show them.

`TrainOptions` (train.py) takes its defaults from here; the model card gives the measured cost.
"""

REFERENCE_STEPS = 4000  # stage 1, reference encoder + renderer
PLANNER_STEPS = 5000  # stage 2, planner end to end (the shipped weights; see benchmarks/RESULTS.md)
PLANNER_BATCH = 12
LEARNING_RATE = 1e-3  # peak, after warm-up; the renderer's is lower in stage 2 (train.py)
DIAGNOSIS_WEIGHT = 4.0  # cross-entropy weight of the problem sections' tokens
COLOUR_WEIGHT = 10.0  # weight of the auxiliary colour-statistics loss (train.py)
CLEAN_SHARE = 0.15  # share of auto records whose photo is left clean: the model must learn to leave it alone
# Off by default (Nano 2's data has none): each record's original gets its own white balance,
# IncrementalTemperature and IncrementalTint uniform in +-WB_JITTER, before anything else, so a
# photo's remembered colour cannot tell a cast apart (RESULTS.md, "White-balance jitter").
WB_JITTER = 0.0
# Off by default (Nano 2 was trained without): each planner step shows every photo as a random crop
# (at least this share of the view's area, aspect 3:4 to 4:3) resized back, mirrored half the time,
# so the model cannot recognise a training photo by its exact view (RESULTS.md, "View augmentation").
AUGMENT_VIEWS = False
VIEW_CROP_MIN_AREA = 0.5
