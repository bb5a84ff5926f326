"""Units and sign conventions, stated once.

Units live in names: ``p_kw`` (active power, kW), ``q_kvar`` (reactive power, kvar), ``e_kwh`` (energy,
kWh), ``v_pu`` (voltage magnitude, per unit of the bus's nominal voltage), ``vn_kv`` (nominal line-to-line
voltage, kV), ``i_a`` (current, A), ``angle_deg`` (degrees).

Sign conventions:

* Loads and EV chargers use the **load convention**: ``p_kw > 0`` consumes power from the grid.
* Generators and batteries use the **generator convention**: ``p_kw > 0`` injects power into the grid;
  a charging battery has ``p_kw < 0``.
* Branch flows ``p_from_kw`` are positive when power flows from the ``from`` side into the branch.
* Grid import at the external grid (the substation) is positive when the network draws power from the
  upstream grid.
"""

from __future__ import annotations

from typing import Final

KW_PER_MW: Final = 1_000.0
W_PER_KW: Final = 1_000.0
V_PER_KV: Final = 1_000.0
MINUTES_PER_HOUR: Final = 60.0
