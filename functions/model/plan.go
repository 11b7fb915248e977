package model

// NodePlan is everything bootenv needs to make a node what herd says it
// should be on this boot: GET /boot/sessions/{id}/plan answers it to the
// node holding the session's boot token.
type NodePlan struct {
	Node     string `json:"node"`
	Session  string `json:"session"`
	Hostname string `json:"hostname"`
	// Image, Branch and Version name what the root must hold: Version is
	// the manifest digest the branch pointed at when the plan was made.
	Image   string `json:"image"`
	Branch  string `json:"branch"`
	Version string `json:"version"`
	Kernel  string `json:"kernel,omitempty"` // the kernel version booted
	// KernelArgs are the admin's kernel arguments (the node's
	// kernel_args), for the fallback boot entry.
	KernelArgs []string `json:"kernel_args,omitempty"`
	// Stateless nodes sync into a RAM root; Layout is then ignored.
	Stateless  bool        `json:"stateless"`
	Layout     *Layout     `json:"layout,omitempty"`
	Sync       SyncPolicy  `json:"sync"`
	Interfaces []Interface `json:"interfaces,omitempty"`
	// Hosts is every node's name and boot address, for /etc/hosts.
	Hosts   []HostEntry    `json:"hosts,omitempty"`
	Plugins []PluginConfig `json:"plugins,omitempty"`
}

// SyncPolicy says how bootenv compares the root with the image.
type SyncPolicy struct {
	// Verify is "unsure" (hash only where size/mtime/mode/owner cannot
	// tell), "never" or "always".
	Verify string `json:"verify"`
	// Preserve lists globs of absolute paths kept though the image lacks
	// them, such as /var/log/** or /etc/ssh/ssh_host_*.
	Preserve []string `json:"preserve,omitempty"`
	// CheckEveryBoot false lets a node whose root is complete for Version
	// skip the comparison.
	CheckEveryBoot bool `json:"check_every_boot"`
}

// HostEntry is one line of /etc/hosts.
type HostEntry struct {
	Name    string `json:"name"`
	Address string `json:"address"`
}

// PluginConfig turns one config plugin on for a node, with its settings.
type PluginConfig struct {
	Name     string            `json:"name"`
	Settings map[string]string `json:"settings,omitempty"`
}
