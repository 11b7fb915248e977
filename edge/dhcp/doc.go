// Package dhcp is the edge's DHCP service: it gives known nodes their
// reserved address and boot options, unknown MACs a short discovery lease
// and only what reaches discovery, and in proxy mode only boot options to
// PXE firmware while the site's own server hands out addresses.
//
// The parts stand apart: ParseRequest reads a packet into a Request;
// Decide, a pure function, chooses the Reply from the request, the
// reservation Table, the discovery Pool and the Policy; Reply.Marshal
// builds the packet; Server owns the sockets and applies decisions; and
// Reservations keeps the table from functions in memory, refreshed in the
// background, so no answer ever waits on the network.
//
// One edge serves one subnet (DESIGN.md: one edge per segment): a relayed
// request is answered from that subnet and pool, and giaddr only says
// where the reply goes. In proxy mode the edge listens on 67 and on the
// PXE boot-server port 4011 and never hands out an address.
//
// Files: request.go (ParseRequest, MAC), decide.go (Decide, Policy,
// Reply), reply.go (Reply.Marshal), pool.go (the discovery Pool), table.go
// (Table), reservations.go (Reservations, fetching /boot/reservations),
// server.go (Server, MACFor, Stats).
package dhcp
