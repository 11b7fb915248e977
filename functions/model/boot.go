package model

import (
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// BootState is where a boot session is: the script went out, the node waits
// for something an admin must provide, bootenv is running, or it ended.
type BootState string

// Boot session states.
const (
	BootScriptSent BootState = "script-sent" // iPXE got kernel and initrds
	BootWaiting    BootState = "waiting"     // iPXE was told to retry; Reason says why
	BootRunning    BootState = "running"     // bootenv reports steps
	BootFailed     BootState = "failed"      // a step failed; Reason is its message
	BootDone       BootState = "done"        // bootenv handed over to the image
)

// BootSession is one network boot of one node, from the iPXE script on. It
// lives in Redis for a day; its events are its timeline.
type BootSession struct {
	ID         string    `json:"id"`
	Node       string    `json:"node"`
	MAC        MAC       `json:"mac"`
	Arch       string    `json:"arch,omitempty"`     // iPXE buildarch: x86_64, i386, arm64, …
	Platform   string    `json:"platform,omitempty"` // iPXE platform: pcbios or efi
	ClientAddr string    `json:"client_addr,omitempty"`
	Image      string    `json:"image,omitempty"`
	Branch     string    `json:"branch,omitempty"`
	State      BootState `json:"state"`
	Step       string    `json:"step,omitempty"`   // the last step reported
	Reason     string    `json:"reason,omitempty"` // why waiting or failed
	Started    time.Time `json:"started"`
	Updated    time.Time `json:"updated"`
	Expires    time.Time `json:"expires"`
	// Artifacts are the object keys this session may fetch with its boot
	// token: kernel, image initrd, bootenv initramfs.
	Artifacts []string `json:"artifacts,omitempty"`
}

// ValidBootSessionID reports whether id has the form of a session id: 32
// lower-case hex digits (128 random bits).
func ValidBootSessionID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for _, c := range []byte(id) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// BootEventState is how a step went.
type BootEventState string

// Boot event states.
const (
	EventStart BootEventState = "start"
	EventOK    BootEventState = "ok"
	EventFail  BootEventState = "fail"
	EventInfo  BootEventState = "info"
)

// StepDone is the step bootenv reports, with state ok, when it hands over
// to the image's init; the session is then done.
const StepDone = "done"

// BootEvent is one entry of a boot session's timeline.
type BootEvent struct {
	ID         string            `json:"id"`   // stream id, set by the store
	Time       time.Time         `json:"time"` // set by herd when the event arrives
	Step       string            `json:"step"` // ipxe, console, plan, disks, image, plugins, bootloader, pivot, done, …
	State      BootEventState    `json:"state"`
	Message    string            `json:"message,omitempty"`
	DurationMS int64             `json:"duration_ms,omitempty"`
	Extras     map[string]string `json:"extras,omitempty"`
}

// validStep accepts 1-64 lower-case letters, digits, '.', '_' or '-',
// starting with a letter or digit.
func validStep(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i, c := range []byte(s) {
		alnum := 'a' <= c && c <= 'z' || '0' <= c && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-') {
			return false
		}
	}
	return true
}

// Validate checks an event a node sends.
func (e *BootEvent) Validate() error {
	var p problems
	if !validStep(e.Step) {
		p.add("step", "%q is not a step name (1-64 lower-case letters, digits, '.', '_' or '-')", e.Step)
	}
	switch e.State {
	case EventStart, EventOK, EventFail, EventInfo:
	case "":
		p.add("state", "is required (start, ok, fail or info)")
	default:
		p.add("state", "%q is not an event state (want start, ok, fail or info)", e.State)
	}
	if len(e.Message) > 4096 {
		p.add("message", "is longer than 4096 bytes")
	} else if !utf8.ValidString(e.Message) {
		p.add("message", "is not valid UTF-8")
	}
	if e.DurationMS < 0 {
		p.add("duration_ms", "is negative")
	}
	if len(e.Extras) > 32 {
		p.add("extras", "has more than 32 entries")
	}
	for k, v := range e.Extras {
		if k == "" || len(k) > 64 {
			p.add("extras", "key %q is empty or longer than 64 bytes", k)
		}
		if len(v) > 1024 {
			p.add("extras."+k, "is longer than 1024 bytes")
		}
	}
	return p.err()
}

// NextBootState is the session state after an event: a failed step fails
// the session, the done step ends it, a note (info) changes nothing, and
// any other start or end of a step means bootenv runs.
func NextBootState(cur BootState, e BootEvent) BootState {
	switch {
	case e.State == EventFail:
		return BootFailed
	case e.State == EventInfo:
		return cur
	case e.Step == StepDone && e.State == EventOK:
		return BootDone
	}
	return BootRunning
}

// BootSessionDetail is a session with its timeline, oldest event first.
type BootSessionDetail struct {
	Session BootSession `json:"session"`
	Events  []BootEvent `json:"events"`
}

// BootFollowReply is one long-poll answer of
// GET /api/v1/boot/sessions/{id}/follow.
type BootFollowReply struct {
	// Session is the session as it is now.
	Session BootSession `json:"session"`
	Items   []BootEvent `json:"items"`
	// After is the stream position to send next time.
	After string `json:"after"`
}

// Discovered is a machine that network-booted with a MAC no node has: what
// it told about itself, for an admin to assign it to a node.
type Discovered struct {
	MAC          MAC       `json:"mac"`
	FirstSeen    time.Time `json:"first_seen"`
	LastSeen     time.Time `json:"last_seen"`
	Count        int64     `json:"count"` // boot script requests so far
	Arch         string    `json:"arch,omitempty"`
	Platform     string    `json:"platform,omitempty"`
	ClientAddr   string    `json:"client_addr,omitempty"`
	VendorClass  string    `json:"vendor_class,omitempty"` // DHCP option 60, when the edge passes it
	UUID         string    `json:"uuid,omitempty"`         // SMBIOS system UUID
	Manufacturer string    `json:"manufacturer,omitempty"`
	Product      string    `json:"product,omitempty"`
	Serial       string    `json:"serial,omitempty"`
	Asset        string    `json:"asset,omitempty"`
}

// MaxDiscoveredText caps every text a machine reports about itself.
const MaxDiscoveredText = 128

// CleanText makes text a client sent fit to store and show: control
// characters and invalid UTF-8 dropped, surrounding space trimmed, cut to
// at most max bytes on a character boundary.
func CleanText(s string, max int) string {
	var b strings.Builder
	for _, r := range strings.TrimSpace(strings.ToValidUTF8(s, "")) {
		if unicode.IsControl(r) {
			continue
		}
		if b.Len()+utf8.RuneLen(r) > max {
			break
		}
		b.WriteRune(r)
	}
	return strings.TrimSpace(b.String())
}

// Clean applies CleanText to every text field.
func (d *Discovered) Clean() {
	for _, f := range []*string{&d.Arch, &d.Platform, &d.ClientAddr, &d.VendorClass, &d.UUID,
		&d.Manufacturer, &d.Product, &d.Serial, &d.Asset} {
		*f = CleanText(*f, MaxDiscoveredText)
	}
}

// DiscoveredPage is one page of GET /api/v1/discovered.
type DiscoveredPage struct {
	Items []Discovered `json:"items"`
	Next  string       `json:"next,omitempty"`
	Total int          `json:"total"`
	// Evicted counts entries dropped, least recently seen first, to keep
	// the list under its cap.
	Evicted int64 `json:"evicted"`
}

// AssignRequest is the body of POST /api/v1/discovered/{mac}/assign: give
// the MAC to an existing node, or create the node with it.
type AssignRequest struct {
	Node   string `json:"node"`
	Create bool   `json:"create,omitempty"`
	Group  string `json:"group,omitempty"` // only with create
}

// Validate checks an assign request on its own.
func (a *AssignRequest) Validate() error {
	var p problems
	if err := CheckName(a.Node); err != nil {
		p.add("node", "%s", err)
	}
	if a.Group != "" {
		if !a.Create {
			p.add("group", "is only used with create: to move an existing node, change the node")
		} else if err := CheckName(a.Group); err != nil {
			p.add("group", "%s", err)
		}
	}
	return p.err()
}

// Reservation is one MAC the edge's DHCP knows: which node it belongs to
// and the address of that interface ("" when it has none).
type Reservation struct {
	MAC     MAC    `json:"mac"`
	Node    string `json:"node"`
	Address string `json:"address"`
}

// Reservations answers GET /boot/reservations.
type Reservations struct {
	Reservations []Reservation `json:"reservations"`
}

// BootInterface returns the name of the interface a MAC should go to on n,
// and whether that interface is new: the boot interface when it has no MAC
// yet; with no boot interface, the first interface without a MAC, which
// becomes the boot interface; else a new eth<N> with the lowest free N.
// boot tells whether the returned interface is (or becomes) the boot one.
func BootInterface(n Node) (name string, isNew, boot bool) {
	hasBoot := false
	for _, i := range n.Interfaces {
		if i.Boot {
			hasBoot = true
			if i.MAC == "" {
				return i.Name, false, true
			}
		}
	}
	if !hasBoot {
		for _, i := range n.Interfaces {
			if i.MAC == "" {
				return i.Name, false, true
			}
		}
	}
	used := map[string]bool{}
	for _, i := range n.Interfaces {
		used[i.Name] = true
	}
	for k := 0; ; k++ {
		if name := fmt.Sprintf("eth%d", k); !used[name] {
			return name, true, !hasBoot
		}
	}
}

// Ended reports whether a boot session will change no more: bootenv
// reported done, or a step failed.
func (s BootSession) Ended() bool {
	return s.State == BootDone || s.State == BootFailed
}

// Took is how long a session took, or has taken by now if it goes on.
func (s BootSession) Took(now time.Time) time.Duration {
	if s.Started.IsZero() {
		return 0
	}
	if s.Ended() {
		return s.Updated.Sub(s.Started)
	}
	return now.Sub(s.Started)
}

// ShortDuration writes a duration as short as it reads well, for tables
// and timelines: 340ms, 4.2s, 45s, 2m05s, 1h02m; "" for zero and less.
func ShortDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return ""
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < 10*time.Second:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Round(time.Second).Seconds()))
	case d < time.Hour:
		d = d.Round(time.Second)
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	d = d.Round(time.Minute)
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}

// ArchLabel shows iPXE's architecture and platform together, joined by sep
// ("x86_64/efi"), or whichever of the two is known.
func ArchLabel(arch, platform, sep string) string {
	switch {
	case arch == "":
		return platform
	case platform == "":
		return arch
	}
	return arch + sep + platform
}
