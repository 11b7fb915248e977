package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"slices"

	"github.com/herd-hpc/herd/edge/pki"
)

// DefaultPKIDir is where herd pki init writes the cluster PKI.
const DefaultPKIDir = "/etc/herd/pki"

func (a *app) pkiCommand() *command {
	return &command{
		name: "pki", summary: "make the cluster's certificates",
		subs: []*command{
			{
				name: "init", maxArgs: 0, summary: "create the cluster CA, the edge's certificate and the nodes' certificate",
				help: `Creates a cluster CA (ECDSA P-256, 10 years), the edge's server
certificate and one client certificate every node carries in bootenv's
initramfs. The edge certificate names this machine's host name and
addresses and every --edge-host. An existing CA is kept unless --force:
replacing it locks out every node until bootenv is rebuilt.`,
				flags: func(fs *flag.FlagSet) action {
					dir := fs.String("dir", DefaultPKIDir, "write the PKI into `DIR`")
					force := fs.Bool("force", false, "replace an existing CA")
					var hosts listFlag
					fs.Var(&hosts, "edge-host", "a `NAME` or address nodes and admins reach the edge by (repeatable)")
					return func(ctx context.Context, _ []string) error { return a.pkiInit(*dir, hosts, *force) }
				},
			},
		},
	}
}

// edgeHosts is what the edge certificate names: the given hosts, then this
// machine's host name and its addresses (link-local ones left out).
func edgeHosts(given []string, hostname string, addrs []net.Addr) []string {
	out := slices.Clone(given)
	add := func(h string) {
		if h != "" && !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	add(hostname)
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.IsLinkLocalUnicast() {
			continue
		}
		add(ipn.IP.String())
	}
	return out
}

func (a *app) pkiInit(dir string, given []string, force bool) error {
	const cmd = "pki init"
	host, _ := os.Hostname()
	addrs, _ := net.InterfaceAddrs()
	hosts := edgeHosts(given, host, addrs)
	err := pki.Init(dir, pki.InitOptions{EdgeHosts: hosts, Force: force})
	if errors.Is(err, pki.ErrExists) {
		return fmt.Errorf("%s: %s already holds a cluster CA; --force replaces it (and every node needs a rebuilt bootenv)", cmd, dir)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	fmt.Fprintf(a.stdout, "wrote the cluster CA, the edge certificate (for %v) and the node certificate to %s\n", hosts, dir)
	return nil
}
