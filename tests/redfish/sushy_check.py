"""Drives the node's Redfish service with sushy (OpenStack Ironic's
client), unmodified: list systems, read thermal and power, reset.

usage: sushy_check.py URL USER PASSWORD RESET_TYPE (none: no reset)
Prints one JSON object with what it saw; exits non-zero on any error.
"""
import json
import sys
import warnings

import sushy
from sushy import auth

warnings.simplefilter("ignore")
url, user, password, reset = sys.argv[1:5]
root = sushy.Sushy(url, auth=auth.SessionAuth(user, password), verify=False)
ids = list(root.get_system_collection().members_identities)
node = root.get_system(ids[0])
allowed = sorted(v.value for v in node.get_allowed_reset_system_values())
refused = None
if reset != "none":
    try:
        node.reset_system(sushy.ResetType.POWER_CYCLE)
    except sushy.exceptions.InvalidParameterValueError as e:
        refused = type(e).__name__
    node.reset_system(sushy.ResetType(reset))
chassis = root.get_chassis("/redfish/v1/Chassis/1")
thermal = chassis.thermal
power = chassis.power
print(json.dumps({
    "systems": ids,
    "manufacturer": node.manufacturer,
    "model": node.model,
    "power_state": node.power_state.value,
    "allowed": allowed,
    "power_cycle": refused,
    "temperatures": [[t.name, t.reading_celsius] for t in thermal.temperatures],
    "fans": [[f.name, f.reading, f.reading_units.value] for f in thermal.fans],
    "supplies": [[p.name, p.line_input_voltage, p.last_power_output_watts] for p in power.power_supplies],
}))
