package bench

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Goals from issue 3: at least five times dnsmasq's leases/s on the same
// storm, no failures, p99 under 100 ms.
const (
	goalFactor = 5.0
	goalP99ms  = 100.0
)

func pass(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

func spreadText(d time.Duration) string {
	if d == 0 {
		return "at once"
	}
	return "over " + d.String()
}

func latency(count int, p50, p99 float64) string {
	if count == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f / %.1f", p50, p99)
}

// writeTable prints the runs side by side, then the goals.
func writeTable(w io.Writer, runs []Run, o options) {
	fmt.Fprintf(w, "\nBoot storm: herd vs dnsmasq, the same simulated rack over loopback (one relay agent, %d nodes in flight)\n", o.inflight)
	find := func(server, scenario string) *Run {
		for i := range runs {
			if runs[i].Server == server && runs[i].Scenario == scenario {
				return &runs[i]
			}
		}
		return nil
	}

	var dhcpRows []*Run
	for _, sc := range []string{"dhcp-first", "dhcp-reboot"} {
		for _, srv := range []string{"herd", "dnsmasq"} {
			if r := find(srv, sc); r != nil {
				dhcpRows = append(dhcpRows, r)
			}
		}
	}
	if len(dhcpRows) > 0 {
		fmt.Fprintf(w, "\nDHCP storm: %d nodes at once, DISCOVER-OFFER-REQUEST-ACK only\n", dhcpRows[0].Nodes)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "server\tboot\tduration s\tleases\tleases/s\tlease p50 / p99 ms\tDHCP retries\tfailures\t")
		for _, r := range dhcpRows {
			s := r.Summary
			fmt.Fprintf(tw, "%s\t%s\t%.2f\t%d\t%.0f\t%s\t%d\t%d\t\n", r.Server, strings.TrimPrefix(r.Scenario, "dhcp-"),
				s.Duration, s.Leases, s.LeasesPerS, latency(s.Lease.Count, s.Lease.P50, s.Lease.P99), s.DHCPRetries, s.Failures())
		}
		tw.Flush()
	}

	var bootRows []*Run
	for i := range runs {
		if runs[i].Scenario == "boot" {
			bootRows = append(bootRows, &runs[i])
		}
	}
	if len(bootRows) > 0 {
		fmt.Fprintln(w, "\nBoot storms: herd goes DHCP, TFTP, iPXE's DHCP, boot script, artifacts, events; dnsmasq (no boot script) DHCP and TFTP")
		fmt.Fprintln(w, "Latencies from each node's first DISCOVER, p50 / p99 in ms.")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "server\tnodes\tarrivals\tduration s\tleases\tleases/s\tlease\tTFTP done\tscript\tall done\tTFTP retr/tmo\tDHCP retries\tfailures\t")
		for _, r := range bootRows {
			s := r.Summary
			fmt.Fprintf(tw, "%s\t%d\t%s\t%.2f\t%d\t%.0f\t%s\t%s\t%s\t%s\t%d/%d\t%d\t%d\t\n", r.Server, r.Nodes, spreadText(r.Spread),
				s.Duration, s.Leases, s.LeasesPerS, latency(s.Lease.Count, s.Lease.P50, s.Lease.P99),
				latency(s.TFTP.Count, s.TFTP.P50, s.TFTP.P99), latency(s.Script.Count, s.Script.P50, s.Script.P99),
				latency(s.Finished.Count, s.Finished.P50, s.Finished.P99), s.Retransmits, s.Timeouts, s.DHCPRetries, s.Failures())
		}
		tw.Flush()
	}

	fmt.Fprintln(w, "\nGoals (issue 3)")
	for _, sc := range []string{"dhcp-first", "dhcp-reboot"} {
		h, d := find("herd", sc), find("dnsmasq", sc)
		if h == nil || d == nil || d.Summary.LeasesPerS == 0 {
			continue
		}
		f := h.Summary.LeasesPerS / d.Summary.LeasesPerS
		fmt.Fprintf(w, "  %s leases/s ≥ %.0f× dnsmasq (%s): %.0f vs %.0f = %.1f×  %s\n", "herd", goalFactor,
			strings.TrimPrefix(sc, "dhcp-"), h.Summary.LeasesPerS, d.Summary.LeasesPerS, f, pass(f >= goalFactor))
	}
	failures := 0
	for _, r := range runs {
		failures += r.Summary.Failures()
	}
	fmt.Fprintf(w, "  no failures in any storm: %d  %s\n", failures, pass(failures == 0))
	for _, r := range runs {
		if r.Server != "herd" {
			continue
		}
		s := r.Summary
		fmt.Fprintf(w, "  herd p99 < %.0f ms, %s %d %s: DISCOVER→ACK %.1f ms %s", goalP99ms, r.Scenario, r.Nodes, spreadText(r.Spread),
			s.Lease.P99, pass(s.Lease.Count > 0 && s.Lease.P99 < goalP99ms))
		if s.Script.Count > 0 {
			fmt.Fprintf(w, "; DISCOVER→script %.1f ms %s", s.Script.P99, pass(s.Script.P99 < goalP99ms))
		}
		fmt.Fprintln(w)
	}
}
