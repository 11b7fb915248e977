package sim

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

func testRack() Rack {
	return Rack{Nodes: 5000, MACPrefix: DefaultMACPrefix(), NamePrefix: "sim",
		Subnet: netip.MustParsePrefix("10.77.0.0/16"), FirstAddr: netip.MustParseAddr("10.77.1.0")}
}

func TestRack(t *testing.T) {
	r := testRack()
	if err := r.Check(); err != nil {
		t.Fatal(err)
	}
	n := r.Node(4999)
	if n.Name != "sim5000" || n.MAC.String() != "02:68:64:00:13:88" || n.Addr.String() != "10.77.20.135" {
		t.Errorf("last node %+v", n)
	}
	if first := r.Node(0); first.Name != "sim0001" || first.Addr.String() != "10.77.1.0" {
		t.Errorf("first node %+v", first)
	}
	for _, i := range []int{0, 255, 256, 4999} {
		if got, ok := r.Index(r.Node(i).MAC); !ok || got != i {
			t.Errorf("Index(Node(%d).MAC) = %d, %v", i, got, ok)
		}
	}
	for _, mac := range []string{"02:68:64:00:00:00", "02:68:64:00:13:89", "52:54:00:00:00:01"} {
		hw, _ := net.ParseMAC(mac)
		if _, ok := r.Index(hw); ok {
			t.Errorf("%s taken for one of the rack's", mac)
		}
	}
	m := r.Node(6).Model(Registration{Group: "compute", Image: "rocky9"})
	if m.Name != "sim0007" || m.Group != "compute" || m.Image != "rocky9" || len(m.Interfaces) != 1 ||
		m.Interfaces[0].MAC != "02:68:64:00:00:07" || m.Interfaces[0].Address != "10.77.1.6" || !m.Interfaces[0].Boot {
		t.Errorf("model %+v", m)
	}
	if err := m.Validate(); err != nil {
		t.Errorf("herd refuses the node: %v", err)
	}

	bad := map[string]Rack{
		"no nodes":          {MACPrefix: DefaultMACPrefix()},
		"multicast prefix":  {Nodes: 1, MACPrefix: [3]byte{1, 0, 0}},
		"addr outside":      {Nodes: 1, Subnet: netip.MustParsePrefix("10.77.0.0/16"), FirstAddr: netip.MustParseAddr("10.78.0.1")},
		"does not fit":      {Nodes: 300, Subnet: netip.MustParsePrefix("10.77.0.0/24"), FirstAddr: netip.MustParseAddr("10.77.0.10")},
		"ends on broadcast": {Nodes: 246, Subnet: netip.MustParsePrefix("10.77.0.0/24"), FirstAddr: netip.MustParseAddr("10.77.0.10")},
	}
	for name, r := range bad {
		if err := r.Check(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if p, err := ParseMACPrefix("52-54-00"); err != nil || p != [3]byte{0x52, 0x54, 0} {
		t.Errorf("ParseMACPrefix = %v, %v", p, err)
	}
	if _, err := ParseMACPrefix("52:54"); err == nil {
		t.Error("short prefix accepted")
	}
}

func TestDiscoverAndRequest(t *testing.T) {
	bios, _ := FirmwareByName("bios")
	efi, _ := FirmwareByName("efi")
	mac := testRack().Node(6).MAC
	relay := netip.MustParseAddr("10.77.0.1")
	tests := []struct {
		name  string
		asker Asker
	}{
		{"relayed PXE BIOS", Asker{MAC: mac, XID: NodeXID(7, 6, 0), Relay: relay, Stage: StagePXE, Firmware: bios}},
		{"broadcast iPXE EFI", Asker{MAC: mac, XID: NodeXID(7, 6, 1), Stage: StageIPXE, Firmware: efi, Since: 3 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := tt.asker
			// Through the wire format, as the server sees it.
			d, err := dhcpv4.FromBytes(a.Discover().ToBytes())
			if err != nil {
				t.Fatal(err)
			}
			if d.MessageType() != dhcpv4.MessageTypeDiscover || d.TransactionID != a.XID || d.ClientHWAddr.String() != mac.String() {
				t.Errorf("discover %s", d.Summary())
			}
			if a.Relay.IsValid() {
				if !d.GatewayIPAddr.Equal(net.IP(relay.AsSlice())) || d.HopCount != 1 || d.IsBroadcast() {
					t.Errorf("relayed discover: giaddr %s hops %d broadcast %v", d.GatewayIPAddr, d.HopCount, d.IsBroadcast())
				}
			} else if !d.GatewayIPAddr.IsUnspecified() || !d.IsBroadcast() {
				t.Errorf("broadcast discover: giaddr %s broadcast %v", d.GatewayIPAddr, d.IsBroadcast())
			}
			if archs := d.ClientArch(); len(archs) != 1 || archs[0] != a.Firmware.Arch {
				t.Errorf("arch %v", archs)
			}
			if vc := d.ClassIdentifier(); !strings.HasPrefix(vc, "PXEClient:Arch:") || !strings.Contains(vc, a.Firmware.UNDI) {
				t.Errorf("vendor class %q", vc)
			}
			uc := d.Options.Get(dhcpv4.OptionUserClassInformation)
			if (string(uc) == "iPXE") != (a.Stage == StageIPXE) {
				t.Errorf("%s stage sends user class %q", a.Stage, uc)
			}
			if a.Since > 0 && d.NumSeconds != 3 {
				t.Errorf("secs %d", d.NumSeconds)
			}

			offer := reply(d, dhcpv4.MessageTypeOffer, "10.77.1.6")
			if err := a.CheckOffer(offer); err != nil {
				t.Fatal(err)
			}
			r, err := dhcpv4.FromBytes(a.Request(offer).ToBytes())
			if err != nil {
				t.Fatal(err)
			}
			if r.MessageType() != dhcpv4.MessageTypeRequest || r.TransactionID != a.XID ||
				r.RequestedIPAddress().String() != "10.77.1.6" || r.ServerIdentifier().String() != "10.77.0.254" {
				t.Errorf("request %s", r.Summary())
			}
			ack := reply(r, dhcpv4.MessageTypeAck, "10.77.1.6")
			ack.BootFileName = "undionly.kpxe"
			lease, err := a.CheckAck(offer, ack)
			if err != nil {
				t.Fatal(err)
			}
			want := Lease{Addr: netip.MustParseAddr("10.77.1.6"), Server: netip.MustParseAddr("10.77.0.254"),
				NextServer: netip.MustParseAddr("10.77.0.254"), BootFile: "undionly.kpxe", LeaseTime: time.Hour}
			if lease.Addr != want.Addr || lease.Server != want.Server || lease.NextServer != want.NextServer ||
				lease.BootFile != want.BootFile || lease.LeaseTime != want.LeaseTime || len(lease.Mask) != 4 {
				t.Errorf("lease %+v", lease)
			}
		})
	}
}

// reply is what a server answers to req.
func reply(req *dhcpv4.DHCPv4, t dhcpv4.MessageType, addr string) *dhcpv4.DHCPv4 {
	d, _ := dhcpv4.NewReplyFromRequest(req,
		dhcpv4.WithMessageType(t),
		dhcpv4.WithYourIP(net.ParseIP(addr)),
		dhcpv4.WithServerIP(net.ParseIP("10.77.0.254")),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.ParseIP("10.77.0.254"))),
		dhcpv4.WithNetmask(net.CIDRMask(16, 32)),
		dhcpv4.WithLeaseTime(3600),
	)
	return d
}

func TestCheckReplies(t *testing.T) {
	bios, _ := FirmwareByName("bios")
	a := Asker{MAC: testRack().Node(0).MAC, XID: NodeXID(1, 0, 0), Relay: netip.MustParseAddr("10.77.0.1"), Firmware: bios}
	good := func() *dhcpv4.DHCPv4 { return reply(a.Discover(), dhcpv4.MessageTypeOffer, "10.77.1.0") }
	offers := map[string]func(*dhcpv4.DHCPv4){
		"wrong xid":      func(d *dhcpv4.DHCPv4) { d.TransactionID = NodeXID(1, 0, 1) },
		"wrong chaddr":   func(d *dhcpv4.DHCPv4) { d.ClientHWAddr = testRack().Node(1).MAC },
		"a request":      func(d *dhcpv4.DHCPv4) { d.OpCode = dhcpv4.OpcodeBootRequest },
		"an ack":         func(d *dhcpv4.DHCPv4) { d.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeAck)) },
		"no address":     func(d *dhcpv4.DHCPv4) { d.YourIPAddr = net.IPv4zero },
		"no server id":   func(d *dhcpv4.DHCPv4) { d.Options.Del(dhcpv4.OptionServerIdentifier) },
		"acceptable one": nil,
	}
	for name, spoil := range offers {
		d := good()
		if spoil != nil {
			spoil(d)
		}
		err := a.CheckOffer(d)
		if (err == nil) != (spoil == nil) || (err != nil && KindOf(err) != KindDHCPReply) {
			t.Errorf("%s: %v", name, err)
		}
	}
	offer := good()
	nak := reply(a.Request(offer), dhcpv4.MessageTypeNak, "0.0.0.0")
	nak.UpdateOption(dhcpv4.OptMessage("no leases left"))
	if _, err := a.CheckAck(offer, nak); KindOf(err) != KindDHCPNak || !strings.Contains(err.Error(), "no leases left") {
		t.Errorf("nak: %v", err)
	}
	other := reply(a.Request(offer), dhcpv4.MessageTypeAck, "10.77.9.9")
	if _, err := a.CheckAck(offer, other); KindOf(err) != KindDHCPReply {
		t.Errorf("ack for another address: %v", err)
	}
}

func TestNodeXIDUnique(t *testing.T) {
	seen := map[dhcpv4.TransactionID]bool{}
	for i := range 5000 {
		for n := range 4 {
			x := NodeXID(0xdeadbeef, i, n)
			if seen[x] {
				t.Fatalf("xid %s of node %d conversation %d repeats", x, i, n)
			}
			seen[x] = true
		}
	}
}

func TestFirmware(t *testing.T) {
	bios, err := FirmwareByName("bios")
	if err != nil || bios.VendorClass() != "PXEClient:Arch:00000:UNDI:002001" || bios.Arch != iana.INTEL_X86PC {
		t.Errorf("bios %+v %q", bios, bios.VendorClass())
	}
	efi, err := FirmwareByName("efi")
	if err != nil || efi.VendorClass() != "PXEClient:Arch:00007:UNDI:003016" || efi.BuildArch != "x86_64" {
		t.Errorf("efi %+v %q", efi, efi.VendorClass())
	}
	if _, err := FirmwareByName("arm"); err == nil {
		t.Error("unknown firmware accepted")
	}
}
