"""Physical constants in SI units (CODATA 2018 exact or recommended values)."""

import math

PLANCK_J_S = 6.62607015e-34
ELEMENTARY_CHARGE_C = 1.602176634e-19
ELECTRON_MASS_KG = 9.1093837015e-31
SPEED_OF_LIGHT_M_S = 299_792_458.0
MU0_H_PER_M = 1.25663706212e-6
#: Magnetic flux quantum h / 2e, in Wb (T m^2).
FLUX_QUANTUM_WB = PLANCK_J_S / (2.0 * ELEMENTARY_CHARGE_C)
NM = 1e-9
TWO_PI = 2.0 * math.pi
