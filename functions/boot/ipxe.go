package boot

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/herd-hpc/herd/functions/auth"
	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/store"
)

// ScriptRequest is what iPXE tells in the query of GET /boot/ipxe.
type ScriptRequest struct {
	MAC      model.MAC
	Arch     string // buildarch
	Platform string // pcbios or efi
	// Session is a waiting session to continue; herd put it in the retry
	// URL it gave the node.
	Session string
	// SMBIOS data, cleaned and capped (model.CleanText).
	UUID, Manufacturer, Product, Serial, Asset string
}

// ParseScriptRequest reads the query of GET /boot/ipxe. hasMAC is false
// when the query names no MAC at all: iPXE's first request, to be answered
// with ChainScript. Unknown parameters are ignored: iPXE versions differ
// in how they re-encode what the chain URL expands to.
func ParseScriptRequest(q url.Values) (req ScriptRequest, hasMAC bool, err error) {
	raw, hasMAC := q["mac"]
	if !hasMAC {
		return req, false, nil
	}
	if len(raw) != 1 || raw[0] == "" {
		return req, true, errors.New("iPXE sent no MAC address (mac= is empty)")
	}
	if req.MAC, err = model.ParseMAC(raw[0]); err != nil {
		return req, true, fmt.Errorf("mac: %q is not a MAC address", model.CleanText(raw[0], 64))
	}
	req.Arch, req.Platform = q.Get("arch"), q.Get("platform")
	for _, f := range []struct{ name, v string }{{"arch", req.Arch}, {"platform", req.Platform}} {
		if f.v != "" && !validWord(f.v) {
			return req, true, fmt.Errorf("%s: %q is not an iPXE %s (1-16 lower-case letters, digits or '_')", f.name, model.CleanText(f.v, 32), f.name)
		}
	}
	if s := q.Get("session"); model.ValidBootSessionID(s) {
		req.Session = s
	}
	req.UUID = model.CleanText(q.Get("uuid"), model.MaxDiscoveredText)
	req.Manufacturer = model.CleanText(q.Get("manufacturer"), model.MaxDiscoveredText)
	req.Product = model.CleanText(q.Get("product"), model.MaxDiscoveredText)
	req.Serial = model.CleanText(q.Get("serial"), model.MaxDiscoveredText)
	req.Asset = model.CleanText(q.Get("asset"), model.MaxDiscoveredText)
	return req, true, nil
}

// validWord accepts what iPXE's buildarch and platform settings hold.
func validWord(s string) bool {
	if len(s) > 16 {
		return false
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// retryURL is where a waiting node asks again: its MAC, arch, platform and
// session, so the retry continues the same session.
func retryURL(server string, req ScriptRequest, session string) string {
	v := url.Values{"mac": {string(req.MAC)}, "session": {session}}
	if req.Arch != "" {
		v.Set("arch", req.Arch)
	}
	if req.Platform != "" {
		v.Set("platform", req.Platform)
	}
	return server + "/boot/ipxe?" + v.Encode()
}

// script writes an iPXE script.
func script(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// isIPXE tells whether the client is iPXE, which runs only 2xx answers.
func isIPXE(r *http.Request) bool { return strings.Contains(r.UserAgent(), "iPXE") }

// badRequest answers a request herd cannot use with a script that says why
// and starts over: 200 for iPXE, so it shows on the console, else 400.
func (h *Handler) badRequest(w http.ResponseWriter, r *http.Request, msg, chainTo string) {
	h.log.Info("boot script request refused", "query", r.URL.RawQuery, "client", h.auth.ClientHost(r), "reason", msg)
	status := http.StatusBadRequest
	if isIPXE(r) {
		status = http.StatusOK
	}
	script(w, status, ErrorScript(msg, chainTo, h.cfg.UnknownRetry))
}

// unavailable answers when herd cannot decide; iPXE gives up on a 503 and
// the firmware boots from its next device.
func (h *Handler) unavailable(w http.ResponseWriter, r *http.Request, err error) {
	h.log.Error("boot script failed", "query", r.URL.RawQuery, "err", err)
	script(w, http.StatusServiceUnavailable, []byte("#!ipxe\necho herd: the boot service is unavailable; try again shortly\nexit 1\n"))
}

func (h *Handler) ipxe(w http.ResponseWriter, r *http.Request) {
	server, err := h.serverURL(r)
	if err != nil {
		// No URL to give back: iPXE resolves a path against the script's.
		h.badRequest(w, r, err.Error(), "/boot/ipxe")
		return
	}
	req, hasMAC, err := ParseScriptRequest(r.URL.Query())
	switch {
	case !hasMAC:
		script(w, http.StatusOK, ChainScript(server))
		return
	case err != nil:
		h.badRequest(w, r, err.Error(), server+"/boot/ipxe")
		return
	}
	ctx := r.Context()
	node, err := h.store.NodeByMAC(ctx, req.MAC)
	switch {
	case store.IsKind(err, store.KindNotFound):
		h.unknown(w, r, server, req)
	case err != nil:
		h.unavailable(w, r, err)
	default:
		h.known(w, r, server, req, node)
	}
}

// unknown records a machine no node owns and tells it to ask again.
func (h *Handler) unknown(w http.ResponseWriter, r *http.Request, server string, req ScriptRequest) {
	d := model.Discovered{
		MAC: req.MAC, Arch: req.Arch, Platform: req.Platform, ClientAddr: h.auth.ClientHost(r),
		UUID: req.UUID, Manufacturer: req.Manufacturer, Product: req.Product, Serial: req.Serial, Asset: req.Asset,
	}
	if h.auth.FromEdge(r) {
		d.VendorClass = r.Header.Get(HeaderVendorClass)
	}
	got, err := h.store.Discover(r.Context(), d, h.cfg.DiscoveryCap)
	if err != nil {
		h.unavailable(w, r, err)
		return
	}
	if got.Count == 1 {
		h.log.Info("new machine discovered", "mac", got.MAC, "client", got.ClientAddr, "product", got.Product, "serial", got.Serial)
	}
	script(w, http.StatusOK, UnknownScript(server, req.MAC, h.cfg.UnknownRetry))
}

// known opens (or continues) the node's boot session and sends the script
// that boots it, or the one that makes it wait for what is missing.
func (h *Handler) known(w http.ResponseWriter, r *http.Request, server string, req ScriptRequest, node model.Node) {
	ctx := r.Context()
	eff := node.Settings
	if node.Effective != nil {
		eff = *node.Effective
	}
	image, branch := eff.Image, eff.Branch
	if branch == "" {
		branch = LiveBranch
	}
	sess := model.BootSession{Node: node.Name, MAC: req.MAC, Arch: req.Arch, Platform: req.Platform,
		ClientAddr: h.auth.ClientHost(r), Image: image, Branch: branch}
	reason, kernel, initrd, bootenv, err := h.artifactsFor(ctx, node, image, branch)
	if err != nil {
		h.unavailable(w, r, err)
		return
	}
	if reason != "" {
		sess.State, sess.Reason = model.BootWaiting, reason
		ev := model.BootEvent{Step: "ipxe", State: model.EventInfo, Message: "waiting: " + reason}
		id, err := h.openSession(ctx, req.Session, sess, "", ev)
		if err != nil {
			h.unavailable(w, r, err)
			return
		}
		h.log.Info("node waits", "node", node.Name, "mac", req.MAC, "session", id, "reason", reason)
		script(w, http.StatusOK, WaitScript(node.Name, reason, retryURL(server, req, id), h.cfg.WaitRetry))
		return
	}
	token := auth.NewSecret("hbt_")
	sess.State = model.BootScriptSent
	sess.Artifacts = []string{kernel, initrd, bootenv}
	ev := model.BootEvent{Step: "ipxe", State: model.EventOK,
		Message: fmt.Sprintf("boot script sent: image %s branch %s", image, branch),
		Extras:  map[string]string{"arch": req.Arch, "platform": req.Platform, "client_addr": sess.ClientAddr}}
	id, err := h.openSession(ctx, req.Session, sess, hashToken(token), ev)
	if err != nil {
		h.unavailable(w, r, err)
		return
	}
	h.log.Info("boot script sent", "node", node.Name, "mac", req.MAC, "session", id)
	script(w, http.StatusOK, Boot{
		Server: server, Node: node.Name, MAC: req.MAC, Image: image, Branch: branch, Platform: req.Platform,
		Session: id, Token: token, Kernel: kernel, Initrd: initrd, Bootenv: bootenv,
		Args: strings.Fields(eff.KernelArgs),
	}.Render())
}

// artifactsFor finds the node's boot files. reason, when not empty, says
// what is missing; err is for failures to look.
func (h *Handler) artifactsFor(ctx context.Context, node model.Node, image, branch string) (reason, kernel, initrd, bootenv string, err error) {
	if image == "" {
		where := "the node"
		if node.Group != "" {
			where = "the node or its group " + node.Group
		}
		return fmt.Sprintf("node %s has no image: set one on %s", node.Name, where), "", "", "", nil
	}
	// Both checks at once: each is a round trip to the object store.
	var (
		wg         sync.WaitGroup
		bootenvErr error
		missing    *MissingError
	)
	wg.Go(func() { bootenv, bootenvErr = h.art.Bootenv(ctx) })
	eff := node.Settings
	if node.Effective != nil {
		eff = *node.Effective
	}
	kernel, initrd, err = h.art.Image(ctx, image, branch, eff.Kernel)
	wg.Wait()
	for _, e := range []error{err, bootenvErr} {
		if e != nil && !errors.As(e, &missing) {
			return "", "", "", "", e
		}
	}
	for _, e := range []error{err, bootenvErr} {
		if errors.As(e, &missing) {
			return missing.Error(), "", "", "", nil
		}
	}
	return "", kernel, initrd, bootenv, nil
}

// openSession continues the waiting session resume names when it still
// waits for this node, else opens a new one. It returns the session id.
func (h *Handler) openSession(ctx context.Context, resume string, sess model.BootSession, tokenHash string, ev model.BootEvent) (string, error) {
	if resume != "" {
		sess.ID = resume
		ok, err := h.store.ResumeBootSession(ctx, sess, tokenHash, h.cfg.TokenTTL, ev)
		if err != nil || ok {
			return resume, err
		}
	}
	sess.ID = newID()
	sess.Expires = time.Now().Add(h.cfg.SessionTTL)
	return sess.ID, h.store.OpenBootSession(ctx, sess, tokenHash, h.cfg.TokenTTL, ev)
}
