"""Figures measured by benchmarks/accuracy.py (written by it; do not edit).

Command: python benchmarks/accuracy.py --only amplitude --amplitude-cases contaminated
--amplitude-seeds 0 --save out/amp_contaminated_0.json and python benchmarks/accuracy.py
--only amplitude --amplitude-cases contaminated --amplitude-seeds 1 --save
out/amp_contaminated_1.json and python benchmarks/accuracy.py --only amplitude
--amplitude-cases contaminated --amplitude-seeds 2 --save out/amp_contaminated_2.json
and python benchmarks/accuracy.py --only amplitude --amplitude-cases patterned
--amplitude-seeds 0 --save out/amp_patterned_0.json and python benchmarks/accuracy.py
--only amplitude --amplitude-cases patterned --amplitude-seeds 1 --save
out/amp_patterned_1.json and python benchmarks/accuracy.py --only amplitude
--amplitude-cases patterned --amplitude-seeds 2 --save out/amp_patterned_2.json
"""

#: Mean (phase, B) correlation per case and method over AMPLITUDE_SEEDS seeds.
AMPLITUDE = {
    "contaminated": {
        "sitie": (0.25, 0.35),
        "tuned": (0.5, 0.6),
        "none": (0.28, 0.36),
        "threshold": (0.17, 0.14),
        "exclude": (0.68, 0.75),
        "thickness": (0.65, 0.74),
        "true thickness (oracle)": (0.96, 0.94),
    },
    "patterned": {
        "sitie": (-0.05, 0.12),
        "tuned": (0.06, 0.16),
        "threshold": (0.3, -0.09),
        "thickness --island-thickness 10": (0.26, 0.28),
        "true thickness (oracle)": (0.81, 0.73),
    },
}
AMPLITUDE_SEEDS = 3
