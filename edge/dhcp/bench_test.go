package dhcp

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// benchTable reserves n nodes, node00001… at 10.0.x.y/16, as a boot storm
// of a 5,000-node rack would meet it.
func benchTable(b *testing.B, n int) (*Table, []MAC) {
	b.Helper()
	rs := make([]Reservation, n)
	macs := make([]MAC, n)
	for i := range rs {
		m := MAC{0x52, 0x54, 0, byte(i >> 16), byte(i >> 8), byte(i)}
		macs[i] = m
		rs[i] = Reservation{MAC: m, Node: fmt.Sprintf("node%05d", i+1), Addr: netip.AddrFrom4([4]byte{10, 0, byte(2 + i/250), byte(1 + i%250)}), Bits: 16}
	}
	t, errs := NewTable(rs)
	if len(errs) > 0 {
		b.Fatal(errs)
	}
	return t, macs
}

func reportLeases(b *testing.B, start time.Time) {
	if s := time.Since(start).Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, "leases/s")
	}
}

// BenchmarkDecide is the pure decision for a known MAC among 5,000
// reservations: one DISCOVER and one REQUEST per lease.
func BenchmarkDecide(b *testing.B) {
	tbl, macs := benchTable(b, 5000)
	pol := testPolicy()
	pool, _ := NewPool(ip("10.0.200.1"), ip("10.0.220.255"))
	via := testVia()
	now := testNowT()
	m := macs[2500]
	res, _ := tbl.Lookup(m)
	discover := &Request{Type: dhcpv4.MessageTypeDiscover, MAC: m, Peer: netip.MustParseAddrPort("0.0.0.0:68"),
		VendorClass: "PXEClient:Arch:00007:UNDI:003016", Arch: ArchEFIBC, HasArch: true}
	request := *discover
	request.Type, request.RequestedAddr, request.ServerID = dhcpv4.MessageTypeRequest, res.Addr, via.Server
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		d := Decide(Input{Req: discover, Table: tbl, Pool: pool, Policy: &pol, Via: via, Now: now})
		if d.Reply == nil {
			b.Fatal(d.Reason)
		}
		d = Decide(Input{Req: &request, Table: tbl, Pool: pool, Policy: &pol, Via: via, Now: now})
		if d.Reply == nil || d.Reply.Type != dhcpv4.MessageTypeAck {
			b.Fatal(d.Reason)
		}
	}
	reportLeases(b, start)
}

// BenchmarkDORA is a full DISCOVER→OFFER→REQUEST→ACK over loopback, the
// client acting as a relay agent, against 5,000 reservations: one client
// at a time, and 64 clients in flight (the dnsmasq anchor's setting).
func BenchmarkDORA(b *testing.B) {
	tbl, macs := benchTable(b, 5000)
	for _, bc := range []struct {
		name     string
		unknown  bool
		inFlight int
	}{
		{"known/serial", false, 0},
		{"known/64-in-flight", false, 64},
		{"unknown/64-in-flight", true, 64},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := loopbackConfig()
			cfg.PoolStart, cfg.PoolEnd = ip("10.0.128.0"), ip("10.0.255.254")
			srv := startServer(b, cfg, StaticTable{tbl}, nil)
			to := dhcpAddr(b, srv)
			var next atomic.Uint64
			dora := func(c *net.UDPConn, buf []byte) error {
				n := next.Add(1)
				m := macs[n%uint64(len(macs))]
				if bc.unknown {
					m[0] = 0x02
				}
				xid := uint32(n)
				offer, err := roundTrip(c, to, buf, handPacket(dhcpv4.MessageTypeDiscover, xid, m, ip("127.0.0.1"), netip.Addr{}), xid)
				if err != nil {
					return err
				}
				yi := netip.AddrFrom4([4]byte(offer[16:20]))
				_, err = roundTrip(c, to, buf, handPacket(dhcpv4.MessageTypeRequest, xid, m, ip("127.0.0.1"), netip.Addr{},
					optAddr(50, yi), optAddr(54, ip("10.0.0.1"))), xid)
				return err
			}
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			if bc.inFlight == 0 {
				c := benchConn(b)
				buf := make([]byte, 1500)
				for i := 0; i < b.N; i++ {
					if err := dora(c, buf); err != nil {
						b.Fatal(err)
					}
				}
			} else {
				b.SetParallelism(max(1, bc.inFlight/runtime.GOMAXPROCS(0)))
				b.RunParallel(func(pb *testing.PB) {
					c := benchConn(b)
					buf := make([]byte, 1500)
					for pb.Next() {
						if err := dora(c, buf); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			reportLeases(b, start)
			b.StopTimer()
			if st := srv.Stats(); st.Leases < uint64(b.N) || st.SendErrors > 0 {
				b.Errorf("stats %+v for %d leases", st, b.N)
			}
		})
	}
}

func benchConn(b *testing.B) *net.UDPConn {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

// roundTrip sends one packet and waits for the reply with the same xid,
// resending after a second (a client would, too).
func roundTrip(c *net.UDPConn, to netip.AddrPort, buf, pkt []byte, xid uint32) ([]byte, error) {
	for try := 0; try < 3; try++ {
		if _, err := c.WriteToUDPAddrPort(pkt, to); err != nil {
			return nil, err
		}
		c.SetReadDeadline(time.Now().Add(time.Second))
		for {
			n, _, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				break
			}
			if n >= 240 && binary.BigEndian.Uint32(buf[4:8]) == xid {
				return buf[:n], nil
			}
		}
	}
	return nil, fmt.Errorf("no reply to xid %d", xid)
}
