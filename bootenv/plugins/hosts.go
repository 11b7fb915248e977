package plugins

import (
	"context"
	"fmt"
	"strings"

	"github.com/herd-hpc/herd/functions/model"
)

// Hostname writes /etc/hostname and the "127.0.1.1 name" line of
// /etc/hosts (Debian's convention for a host without a fixed address in
// /etc/hosts). Settings: domain (appended for the fully qualified name).
type Hostname struct{}

// Name is "hostname".
func (Hostname) Name() string { return "hostname" }

// Apply writes the node's name.
func (Hostname) Apply(_ context.Context, root string, plan model.NodePlan, settings map[string]string) ([]string, error) {
	name := plan.Hostname
	if name == "" {
		name = plan.Node
	}
	if name == "" {
		return nil, fmt.Errorf("hostname: the plan names no host")
	}
	r := NewRoot(root)
	if _, err := r.WriteFile("/etc/hostname", []byte(name+"\n"), 0o644); err != nil {
		return nil, err
	}
	hosts, err := readOptional(r, "/etc/hosts")
	if err != nil {
		return nil, err
	}
	if _, err := r.WriteFile("/etc/hosts", []byte(HostnameLine(hosts, name, settings["domain"])), 0o644); err != nil {
		return nil, err
	}
	return r.Changed(), nil
}

// HostnameLine returns hosts with its 127.0.1.1 line naming host (and
// host.domain first when a domain is set); the line is added after the
// localhost line, or first, when missing.
func HostnameLine(hosts, host, domain string) string {
	line := "127.0.1.1\t" + host
	if domain = strings.Trim(domain, ". "); domain != "" {
		line = "127.0.1.1\t" + host + "." + domain + "\t" + host
	}
	lines := strings.Split(strings.TrimSuffix(hosts, "\n"), "\n")
	if hosts == "" {
		lines = nil
	}
	at := -1
	for i, l := range lines {
		f := strings.Fields(l)
		if len(f) > 0 && f[0] == "127.0.1.1" {
			lines[i] = line
			return strings.Join(lines, "\n") + "\n"
		}
		if len(f) > 0 && f[0] == "127.0.0.1" && at < 0 {
			at = i
		}
	}
	lines = append(lines[:at+1], append([]string{line}, lines[at+1:]...)...)
	return strings.Join(lines, "\n") + "\n"
}

// Hosts writes every node of the cluster (plan.Hosts) into /etc/hosts,
// between herd's markers, leaving the rest of the file as the image has
// it. Settings: domain (each name also gets name.domain).
type Hosts struct{}

// Name is "hosts".
func (Hosts) Name() string { return "hosts" }

// Apply writes the hosts block.
func (Hosts) Apply(_ context.Context, root string, plan model.NodePlan, settings map[string]string) ([]string, error) {
	r := NewRoot(root)
	hosts, err := readOptional(r, "/etc/hosts")
	if err != nil {
		return nil, err
	}
	block := HostsBlock(plan.Hosts, settings["domain"])
	if _, err := r.WriteFile("/etc/hosts", []byte(ReplaceBlock(hosts, block)), 0o644); err != nil {
		return nil, err
	}
	return r.Changed(), nil
}

// HostsBlock renders the hosts lines in the order given (herd sends them
// sorted), skipping entries without an address.
func HostsBlock(hosts []model.HostEntry, domain string) string {
	domain = strings.Trim(domain, ". ")
	var b strings.Builder
	for _, h := range hosts {
		if h.Address == "" || h.Name == "" {
			continue
		}
		if domain != "" {
			fmt.Fprintf(&b, "%s\t%s.%s\t%s\n", h.Address, h.Name, domain, h.Name)
		} else {
			fmt.Fprintf(&b, "%s\t%s\n", h.Address, h.Name)
		}
	}
	return b.String()
}

// readOptional reads p, or "" when it does not exist.
func readOptional(r *Root, p string) (string, error) {
	if !r.Exists(p) {
		return "", nil
	}
	b, err := r.ReadFile(p)
	return string(b), err
}
