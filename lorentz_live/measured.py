"""Figures measured by benchmarks/accuracy.py (written by it; do not edit).

Command: python benchmarks/accuracy.py --only amplitude --amplitude-cases contaminated
--amplitude-seeds 1 --amplitude-variants thickness --thickness-floor 2 --thickness-start
exclude --save out/amp_contaminated_2pass_1.json
"""

#: Mean (phase, B) correlation per case and method over AMPLITUDE_SEEDS seeds.
AMPLITUDE = {
    "contaminated": {
        "sitie": (0.19, 0.36),
        "tuned": (0.58, 0.62),
        "thickness --thickness-floor 2 --thickness-start exclude": (0.81, 0.86),
    }
}
AMPLITUDE_SEEDS = 1
