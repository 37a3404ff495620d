"""Figures measured by benchmarks/accuracy.py (written by it; do not edit).

Command: python benchmarks/accuracy.py --only amplitude --amplitude-cases contaminated
--amplitude-seeds 2 --amplitude-variants 'thickness --thickness-floor 2
--thickness-start exclude --thickness-joint' --save out/amp_contaminated_joint_2.json
"""

#: Mean (phase, B) correlation per case and method over AMPLITUDE_SEEDS seeds.
AMPLITUDE = {
    "contaminated": {
        "sitie": (0.37, 0.38),
        "tuned": (0.43, 0.58),
        "thickness --thickness-floor 2 --thickness-start exclude --thickness-joint": (0.67, 0.82),
    }
}
AMPLITUDE_SEEDS = 1
