// Package power is the edge's power driver: it switches nodes on, off,
// cycles, resets and soft-stops them through their BMCs (IPMI or Redfish,
// via bmclib) or through the PDU outlets that feed their power supplies,
// and runs the power tasks functions hand out.
//
// The parts:
//
//   - BMC (bmc.go) runs one action on one BMC through bmclib's ipmitool
//     provider (the ipmitool binary, cipher suite 3) or its Redfish
//     (gofish) provider, within a per-BMC timeout, and normalises what
//     comes back with ParseState (state.go).
//   - TLSConfig (tls.go) pins a device's self-signed certificate by its
//     SHA-256 fingerprint; bmclib takes the pinned http.Client for Redfish
//     as it is.
//   - PDU (pdu.go) is the interface a PDU vendor's driver implements
//     (three methods; edge/power/eaton is the Eaton G4 one), PDUDrivers
//     maps driver names to constructors, and PDUs turns outlet switching
//     into node power: on when any supply's outlet is on, off switches all,
//     cycle is all off, a wait, all on. It keeps one login session per PDU
//     account.
//   - Worker (worker.go) claims tasks from a Queue, runs them with bounded
//     parallelism, and reports each result with its lease in small
//     batches. A task claimed again after an edge stopped mid-way is run
//     again only if its action is idempotent; otherwise it is reported as
//     Interrupted with the node's current state, so nothing runs twice.
//
// Simulators for tests live beside it: ipmisim (real ipmi_sim processes),
// redfishsim (an HTTPS Redfish service for many BMCs) and eaton/eatonsim
// (the Eaton card's REST API).
package power
