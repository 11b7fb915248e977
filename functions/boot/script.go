package boot

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/herd-hpc/herd/functions/model"
)

// The scripts iPXE runs. Rendering is pure: tests compare it with golden
// files. Every value that does not come from herd itself is passed through
// consoleText before it lands in a script, so no client or admin text can
// add a command, a setting expansion or a comment to a script.

// chainQuery is what the first, bare /boot/ipxe answer asks iPXE to send:
// netX is the interface iPXE last opened, the one it booted through.
// Text settings are URI-encoded by iPXE (uristring); the MAC, the UUID,
// buildarch and platform need no encoding.
const chainQuery = "mac=${netX/mac}&arch=${buildarch}&platform=${platform}&uuid=${uuid}" +
	"&manufacturer=${manufacturer:uristring}&product=${product:uristring}" +
	"&serial=${serial:uristring}&asset=${asset:uristring}"

// ChainURL is the URL of the boot script with everything iPXE knows about
// the machine in its query, as iPXE expands it.
func ChainURL(server string) string { return server + "/boot/ipxe?" + chainQuery }

// ChainScript answers a bare GET /boot/ipxe: ask again, telling who we are.
func ChainScript(server string) []byte {
	return []byte("#!ipxe\nchain " + ChainURL(server) + "\n")
}

// UnknownScript tells a machine nobody assigned yet to wait and ask again.
func UnknownScript(server string, mac model.MAC, retry time.Duration) []byte {
	var b strings.Builder
	secs := seconds(retry)
	b.WriteString("#!ipxe\n")
	fmt.Fprintf(&b, "echo %s\n", consoleText(fmt.Sprintf("herd: this machine (MAC %s) is not assigned yet; asking again in %d s", mac, secs)))
	fmt.Fprintf(&b, "sleep %d\n", secs)
	fmt.Fprintf(&b, "chain %s\n", ChainURL(server))
	return []byte(b.String())
}

// WaitScript tells a known node why it cannot boot yet, waits and asks
// again through retryURL (which names its session, so the retry continues
// it).
func WaitScript(node, reason, retryURL string, retry time.Duration) []byte {
	var b strings.Builder
	secs := seconds(retry)
	b.WriteString("#!ipxe\n")
	fmt.Fprintf(&b, "echo %s\n", consoleText("herd: "+node+" cannot boot yet: "+reason))
	fmt.Fprintf(&b, "echo %s\n", consoleText(fmt.Sprintf("herd: asking again in %d s", secs)))
	fmt.Fprintf(&b, "sleep %d\n", secs)
	fmt.Fprintf(&b, "chain %s\n", retryURL)
	return []byte(b.String())
}

// ErrorScript explains a request herd could not make sense of and, after a
// while, starts over at chainTo (the bare boot script URL).
func ErrorScript(msg, chainTo string, retry time.Duration) []byte {
	var b strings.Builder
	secs := seconds(retry)
	b.WriteString("#!ipxe\n")
	fmt.Fprintf(&b, "echo %s\n", consoleText("herd: "+msg))
	fmt.Fprintf(&b, "echo %s\n", consoleText(fmt.Sprintf("herd: asking again in %d s", secs)))
	fmt.Fprintf(&b, "sleep %d\n", secs)
	fmt.Fprintf(&b, "chain %s\n", chainTo)
	return []byte(b.String())
}

// Boot is everything the script that boots a known node says.
type Boot struct {
	Server   string // base URL nodes reach herd at, without a trailing slash
	Node     string
	MAC      model.MAC
	Image    string
	Branch   string
	Platform string // "efi" adds initrd= names to the command line
	Session  string
	Token    string
	// Object keys of the kernel, the image's initrd and bootenv's
	// initramfs.
	Kernel, Initrd, Bootenv string
	// Args are the admin's kernel arguments (kernel_args, validated by
	// the model), after herd's own.
	Args []string
}

// Names iPXE gives the initrds; under EFI the kernel finds them by these
// names (initrd=NAME on its command line).
const (
	initrdName  = "initrd"
	bootenvName = "bootenv"
)

// ArtifactURL is where the session fetches the object under key.
func ArtifactURL(server, key, session, token string) string {
	return server + "/boot/artifacts/" + keyPath(key) + "?session=" + url.QueryEscape(session) + "&token=" + url.QueryEscape(token)
}

// keyPath escapes each segment of an object key for a URL path. Keys made
// by KeySegment hold only unreserved characters and '%', so this escapes
// just '%'; iPXE decodes and re-encodes paths, and '%' survives both.
func keyPath(key string) string {
	segs := strings.Split(key, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// Render writes the script: kernel with herd's command line, the image's
// initrd, then bootenv's initramfs (later archives win, so bootenv's /init
// is the one that runs), and boot.
func (b Boot) Render() []byte {
	var s strings.Builder
	s.WriteString("#!ipxe\n")
	fmt.Fprintf(&s, "echo %s\n", consoleText(fmt.Sprintf("herd: booting %s (MAC %s): image %s branch %s, session %s",
		b.Node, b.MAC, b.Image, b.Branch, b.Session)))
	args := []string{
		"herd.session=" + b.Session,
		"herd.server=" + b.Server,
		"herd.token=" + b.Token,
	}
	if b.MAC != "" {
		// pxelinux's convention, which bootenv reads to find the NIC the
		// machine booted from among several with a link.
		args = append(args, "BOOTIF=01-"+strings.ReplaceAll(strings.ToLower(string(b.MAC)), ":", "-"))
	}
	if b.Platform == "efi" {
		// The EFI stub loads initrds by name only when told (FIELD-NOTES).
		args = append(args, "initrd="+initrdName, "initrd="+bootenvName)
	}
	args = append(args, b.Args...)
	fmt.Fprintf(&s, "kernel --name kernel %s %s\n", ArtifactURL(b.Server, b.Kernel, b.Session, b.Token), strings.Join(args, " "))
	fmt.Fprintf(&s, "initrd --name %s %s\n", initrdName, ArtifactURL(b.Server, b.Initrd, b.Session, b.Token))
	fmt.Fprintf(&s, "initrd --name %s %s\n", bootenvName, ArtifactURL(b.Server, b.Bootenv, b.Session, b.Token))
	s.WriteString("boot\n")
	return []byte(s.String())
}

func seconds(d time.Duration) int {
	return max(1, int(d/time.Second))
}

// consoleText makes text safe to print with iPXE's echo: printable ASCII
// only, and none of the characters iPXE's command line gives meaning to
// ('$' starts a setting expansion, '#' a comment, '|' and '&' join
// commands, a lone ';' separates them). Those become '?', and double
// quotes single ones.
func consoleText(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r < 0x20 || r > 0x7e:
			b.WriteByte('?')
		case r == '"':
			b.WriteByte('\'')
		case r == '$' || r == '#' || r == '|' || r == '&' || r == '\\' || r == '`':
			b.WriteByte('?')
		default:
			b.WriteRune(r)
		}
	}
	fields := strings.Fields(b.String())
	for i, f := range fields {
		if f == ";" { // a lone ';' would end the echo command
			fields[i] = "?"
		}
	}
	return strings.Join(fields, " ")
}
