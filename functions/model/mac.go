package model

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
)

// MAC is an Ethernet hardware address in canonical form: six lower-case
// hex pairs joined by colons. Any spelling net.ParseMAC accepts (dashes,
// dots, upper case) is turned into this form when parsed.
type MAC string

// ParseMAC reads an EUI-48 address in any common spelling.
func ParseMAC(s string) (MAC, error) {
	hw, err := net.ParseMAC(strings.TrimSpace(s))
	if err != nil || len(hw) != 6 {
		return "", fmt.Errorf("%q is not a MAC address (want six hex pairs such as 52:54:00:12:34:56)", s)
	}
	return MAC(hw.String()), nil
}

// UnmarshalJSON accepts any spelling ParseMAC accepts and stores the
// canonical form. Text that is no MAC is kept as sent, so that Validate
// reports it with the path of the field it was in.
func (m *MAC) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a MAC address must be a string")
	}
	if s == "" {
		*m = ""
		return nil
	}
	v, err := ParseMAC(s)
	if err != nil {
		*m = MAC(s)
		return nil
	}
	*m = v
	return nil
}
