"""Figures measured by benchmarks/accuracy.py (written by it; do not edit).

Command: python benchmarks/accuracy.py --only amplitude --amplitude-cases contaminated
--amplitude-seeds 0 --save out/amplitude_contaminated_0.json and python
benchmarks/accuracy.py --only amplitude --amplitude-cases contaminated --amplitude-seeds
1 --save out/amplitude_contaminated_1.json and python benchmarks/accuracy.py --only
amplitude --amplitude-cases contaminated --amplitude-seeds 2 --save
out/amplitude_contaminated_2.json and python benchmarks/accuracy.py --only amplitude
--amplitude-cases patterned --amplitude-seeds 0 --save out/amplitude_patterned_0.json
and python benchmarks/accuracy.py --only amplitude --amplitude-cases patterned
--amplitude-seeds 1 --save out/amplitude_patterned_1.json and python
benchmarks/accuracy.py --only amplitude --amplitude-cases patterned --amplitude-seeds 2
--save out/amplitude_patterned_2.json
"""

#: Mean (phase, B) correlation per case and method over AMPLITUDE_SEEDS seeds.
AMPLITUDE = {
    "contaminated": {
        "sitie": (0.25, 0.35),
        "tuned": (0.5, 0.6),
        "none": (0.3, 0.37),
        "threshold": (0.15, 0.13),
        "exclude": (0.67, 0.76),
        "thickness": (0.64, 0.73),
        "thickness --thickness-floor 2": (0.67, 0.75),
        "thickness --thickness-floor 2 --thickness-start exclude": (0.71, 0.78),
        "thickness --thickness-floor 2 --thickness-start exclude --thickness-joint": (0.73, 0.83),
        "true thickness (oracle)": (0.91, 0.94),
    },
    "patterned": {
        "sitie": (-0.05, 0.12),
        "tuned": (0.06, 0.16),
        "threshold": (0.3, -0.09),
        "thickness --island-thickness 10": (0.31, 0.29),
        "thickness --island-thickness 10 --phase-model magnetisation": (0.85, 0.76),
        "true thickness (oracle)": (0.8, 0.74),
    },
}
AMPLITUDE_SEEDS = 3
