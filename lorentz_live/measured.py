"""Figures measured by benchmarks/accuracy.py (written by it; do not edit).

Command: python benchmarks/accuracy.py --only amplitude --amplitude-cases contaminated
--amplitude-seeds 0 --amplitude-variants thickness --thickness-floor 2 --thickness-start
exclude --save out/amp_contaminated_2pass_0.json
"""

#: Mean (phase, B) correlation per case and method over AMPLITUDE_SEEDS seeds.
AMPLITUDE = {
    "contaminated": {
        "sitie": (0.19, 0.32),
        "tuned": (0.48, 0.59),
        "thickness --thickness-floor 2 --thickness-start exclude": (0.75, 0.8),
    }
}
AMPLITUDE_SEEDS = 1
