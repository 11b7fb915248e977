package model

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseMAC(t *testing.T) {
	for in, want := range map[string]string{
		"52:54:00:AB:CD:EF":  "52:54:00:ab:cd:ef",
		"52-54-00-ab-cd-ef":  "52:54:00:ab:cd:ef",
		"5254.00ab.cdef":     "52:54:00:ab:cd:ef",
		" 52:54:00:ab:cd:ef": "52:54:00:ab:cd:ef",
	} {
		got, err := ParseMAC(in)
		if err != nil || string(got) != want {
			t.Errorf("ParseMAC(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "52:54:00", "zz:54:00:ab:cd:ef", "02:00:5e:10:00:00:00:01", "52:54:00:ab:cd:ef:"} {
		if _, err := ParseMAC(bad); err == nil {
			t.Errorf("ParseMAC(%q) accepted", bad)
		}
	}
}

func TestNodeValidate(t *testing.T) {
	yes := true
	good := Node{
		Name: "node001", Group: "compute",
		Interfaces:    []Interface{{Name: "eth0", MAC: "52:54:00:00:00:01", Address: "10.0.0.1/16", Boot: true}, {Name: "ib0", Address: "fd00::1"}},
		BMC:           BMC{Address: "bmc-node001.cluster", Username: "root", CredentialRef: "bmc/default"},
		PowerSupplies: []string{"psu1", "psu2"}, Tags: []string{"rack=1", "gpu"},
		Settings: Settings{Image: "Rocky 9 / GPU ✓", Stateless: &yes, PowerMethod: PowerRedfish,
			KernelArgs: "console=tty0 console=ttyS0,115200n8 nomodeset intel_iommu=on ip=::::n1:eth0:dhcp"},
	}
	if err := good.Validate(); err != nil {
		t.Fatalf("good node refused: %v", err)
	}
	cases := map[string]struct {
		edit  func(*Node)
		field string
	}{
		"empty name":       {func(n *Node) { n.Name = "" }, "name"},
		"name with space":  {func(n *Node) { n.Name = "node 1" }, "name"},
		"name with range":  {func(n *Node) { n.Name = "node[1-2]" }, "name"},
		"long name":        {func(n *Node) { n.Name = strings.Repeat("n", 64) }, "name"},
		"dup interface":    {func(n *Node) { n.Interfaces[1].Name = "eth0" }, "interfaces[1].name"},
		"dup mac":          {func(n *Node) { n.Interfaces[1].MAC = "52:54:00:00:00:01" }, "interfaces[1].mac"},
		"bad address":      {func(n *Node) { n.Interfaces[0].Address = "10.0.0.256" }, "interfaces[0].address"},
		"bad prefix":       {func(n *Node) { n.Interfaces[0].Address = "10.0.0.1/33" }, "interfaces[0].address"},
		"two boot":         {func(n *Node) { n.Interfaces[1].Boot = true }, "interfaces"},
		"bad bmc":          {func(n *Node) { n.BMC.Address = "bmc node" }, "bmc.address"},
		"dup psu":          {func(n *Node) { n.PowerSupplies = []string{"psu1", "psu1"} }, "power_supplies[1]"},
		"tag with comma":   {func(n *Node) { n.Tags = []string{"a,b"} }, "tags[0]"},
		"power method":     {func(n *Node) { n.PowerMethod = "wol" }, "power_method"},
		"image control ch": {func(n *Node) { n.Image = "a\x00b" }, "image"},
		"state":            {func(n *Node) { n.State = "flying" }, "state"},
		"kernel arg quote": {func(n *Node) { n.KernelArgs = `console=ttyS0 foo="a b"` }, "kernel_args"},
		"kernel arg ipxe":  {func(n *Node) { n.KernelArgs = "console=${x}" }, "kernel_args"},
		"kernel arg herd":  {func(n *Node) { n.KernelArgs = "quiet herd.server=http://evil" }, "kernel_args"},
		"kernel arg init":  {func(n *Node) { n.KernelArgs = "initrd=x" }, "kernel_args"},
		"kernel arg long":  {func(n *Node) { n.KernelArgs = strings.Repeat("a ", 600) }, "kernel_args"},
	}
	for name, c := range cases {
		n := good
		n.Interfaces = append([]Interface(nil), good.Interfaces...)
		c.edit(&n)
		err := n.Validate()
		ve, ok := err.(*ValidationError)
		if !ok {
			t.Errorf("%s: accepted (%v)", name, err)
			continue
		}
		found := false
		for _, p := range ve.Problems {
			found = found || p.Field == c.field
		}
		if !found {
			t.Errorf("%s: problems %v do not name %s", name, ve.Problems, c.field)
		}
	}
}

func TestDeviceAndConnectionValidate(t *testing.T) {
	if err := (&Device{Name: "pdu1", Kind: DevicePDU, Outlets: []string{"A1", "A2"}}).Validate(); err != nil {
		t.Error(err)
	}
	if err := (&Device{Name: "sw1", Kind: DeviceSwitch, Ports: []string{"Gi1/0/1"}}).Validate(); err != nil {
		t.Error(err)
	}
	for _, d := range []Device{{Name: "x"}, {Name: "x", Kind: "router"}, {Name: "x", Kind: DeviceSwitch, Outlets: []string{"1"}},
		{Name: "x", Kind: DevicePDU, Outlets: []string{"A1", "A1"}}} {
		if d.Validate() == nil {
			t.Errorf("device %+v accepted", d)
		}
	}
	if err := (&Connection{Kind: ConnNetwork, Node: "n1", End: "eth0", Device: "sw1", Port: "Ethernet1/49"}).Validate(); err != nil {
		t.Error(err)
	}
	if (&Connection{Kind: "fibre", Node: "n1", End: "eth0", Device: "sw1", Port: "1"}).Validate() == nil {
		t.Error("bad kind accepted")
	}
}

func TestResolve(t *testing.T) {
	no, yes := false, true
	g := &Group{Settings: Settings{Image: "base", Branch: "live", Stateless: &yes, PowerMethod: PowerIPMI}}
	got := Resolve(Settings{Image: "own", Stateless: &no}, g)
	if got.Image != "own" || got.Branch != "live" || *got.Stateless || got.PowerMethod != PowerIPMI {
		t.Errorf("resolve: %+v", got)
	}
	if got := Resolve(Settings{Image: "x"}, nil); got.Image != "x" {
		t.Errorf("resolve without group: %+v", got)
	}
}

// FuzzNodeJSON feeds arbitrary request bodies through decoding and
// validation: nothing may panic, and a node that validates must survive a
// JSON round trip unchanged and still validate.
func FuzzNodeJSON(f *testing.F) {
	f.Add([]byte(`{"name":"node001","interfaces":[{"name":"eth0","mac":"52:54:00:00:00:01","address":"10.0.0.1/24"}]}`))
	f.Add([]byte(`{"name":"n","bmc":{"address":"[::1]:623"},"tags":["a"],"stateless":true}`))
	f.Add([]byte(`{"name":"n","interfaces":[{"mac":"zz"}]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var n Node
		if json.Unmarshal(raw, &n) != nil {
			return
		}
		if n.Validate() != nil {
			return
		}
		out, err := json.Marshal(n)
		if err != nil {
			t.Fatal(err)
		}
		var back Node
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("round trip: %v", err)
		}
		if err := back.Validate(); err != nil {
			t.Fatalf("valid node invalid after round trip: %v", err)
		}
	})
}
