package power

import (
	"strings"

	"github.com/herd-hpc/herd/functions/model"
)

// ParseState normalises whatever a BMC or PDU reports into a PowerState:
// ipmitool's "Chassis Power is on", Redfish's "On", "Off", "PoweringOn",
// "PoweringOff", a bare "1" or "0". A transition counts as the state it is
// heading to, since that is what the action that caused it asked for.
// Anything else is unknown.
func ParseState(s string) model.PowerState {
	s = strings.ToLower(strings.TrimSpace(s))
	s = strings.TrimPrefix(s, "chassis power is ")
	switch s {
	case "on", "poweringon", "1", "true":
		return model.PowerStateOn
	case "off", "poweringoff", "0", "false":
		return model.PowerStateOff
	}
	return model.PowerStateUnknown
}
