package boot

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	imgstore "github.com/herd-hpc/herd/functions/image/store"

	"github.com/herd-hpc/herd/functions/image/kernel"
	"github.com/herd-hpc/herd/functions/image/manifest"
	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/problem"
	"github.com/herd-hpc/herd/functions/store"
)

// PlanInput is everything a node plan is decided from, gathered by the
// plan endpoint; BuildPlan turns it into the plan without any I/O.
type PlanInput struct {
	Session model.BootSession
	// Node carries its effective settings (Effective).
	Node model.Node
	// Image and Branch are what the node boots, the branch resolved (never
	// LiveBranch); Version the manifest digest it points at.
	Image, Branch, Version string
	Kernel                 string
	// Layout is the node's disk layout; nil for a stateless node.
	Layout  *model.Layout
	Hosts   []model.HostEntry
	Plugins []model.PluginSettings
}

// BuildPlan decides a node's plan: the sync policy from the sync settings
// over the defaults, and the enabled plugins in the order bootenv runs
// them.
func BuildPlan(in PlanInput) (model.NodePlan, error) {
	eff := in.Node.Settings
	if in.Node.Effective != nil {
		eff = *in.Node.Effective
	}
	plan := model.NodePlan{
		Node: in.Node.Name, Session: in.Session.ID, Hostname: in.Node.Name,
		Image: in.Image, Branch: in.Branch, Version: in.Version, Kernel: in.Kernel,
		KernelArgs: strings.Fields(eff.KernelArgs),
		Stateless:  eff.Stateless != nil && *eff.Stateless,
		Interfaces: in.Node.Interfaces, Hosts: in.Hosts,
		Sync: model.DefaultSyncPolicy(),
	}
	if !plan.Stateless {
		plan.Layout = in.Layout
	}
	order := model.Plugins()
	for _, p := range in.Plugins {
		// The node's (or its group's) settings win over the cluster's.
		if own := eff.Plugins[p.Name]; own != nil {
			merged := model.MergePlugins(map[string]map[string]string{p.Name: p.Settings}, map[string]map[string]string{p.Name: own})[p.Name]
			if v, ok := merged["enabled"]; ok {
				p.Enabled, _ = strconv.ParseBool(v)
				delete(merged, "enabled")
			}
			p.Settings = merged
		}
		if p.Name == model.PluginSync {
			pol, err := model.SyncPolicyFrom(p.Settings)
			if err != nil {
				return plan, fmt.Errorf("sync settings: %w", err)
			}
			plan.Sync = pol
			continue
		}
		if p.Enabled && slices.Contains(order, p.Name) {
			plan.Plugins = append(plan.Plugins, model.PluginConfig{Name: p.Name, Settings: p.Settings})
		}
	}
	// The node's or its group's own sync settings win over the cluster's.
	if eff.CheckEveryBoot != nil {
		plan.Sync.CheckEveryBoot = *eff.CheckEveryBoot
	}
	if eff.SyncVerify != "" {
		plan.Sync.Verify = eff.SyncVerify
	}
	slices.SortStableFunc(plan.Plugins, func(a, b model.PluginConfig) int {
		return slices.Index(order, a.Name) - slices.Index(order, b.Name)
	})
	return plan, nil
}

// images is the image store over the same Redis and object store as the
// boot files; nil when the boot files do not come from the object store
// (tests with fixed artifacts).
func (h *Handler) images() (*imgstore.Store, *ObjectArtifacts) {
	oa, ok := h.art.(ObjectArtifacts)
	if !ok || oa.Objects == nil {
		return nil, nil
	}
	rdb, prefix := h.store.Redis()
	return imgstore.New(oa.Objects, rdb, prefix), &oa
}

func noImages() error {
	return problem.New(http.StatusServiceUnavailable, "unavailable", "No image store",
		"this boot function serves no images (it runs without an object store)")
}

// planRefusal is a plan herd cannot make for a reason the admin must fix:
// it answers 409 and goes on the session's timeline as a failed plan step.
func (h *Handler) planRefusal(ctx context.Context, id, detail string) error {
	ev := model.BootEvent{Step: "plan", State: model.EventFail, Message: model.CleanText(detail, 4096)}
	if _, _, err := h.store.AddBootEvent(ctx, id, ev); err != nil {
		h.log.Warn("boot event not recorded", "session", id, "err", err)
	} else if err := h.archiveConsole(ctx, id); err != nil {
		// The session failed here, not through an event the node posted.
		h.log.Warn("console not archived", "session", id, "err", err)
	}
	return problem.New(http.StatusConflict, "no-plan", "No plan for this node", detail)
}

// plan answers the session's node plan (model.NodePlan) to the node
// holding its boot token, and remembers the version it names so the node
// may read that manifest.
func (h *Handler) plan(w http.ResponseWriter, r *http.Request) {
	id, ok := h.sessionID(w, r)
	if !ok {
		return
	}
	plan, err := h.makePlan(r.Context(), id, bearer(r))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	reply(w, http.StatusOK, plan)
}

func (h *Handler) makePlan(ctx context.Context, id, token string) (model.NodePlan, error) {
	if err := h.sessionFor(ctx, id, token); err != nil {
		return model.NodePlan{}, err
	}
	imgs, _ := h.images()
	if imgs == nil {
		return model.NodePlan{}, noImages()
	}
	sess, err := h.store.BootSession(ctx, id)
	if err != nil {
		return model.NodePlan{}, err
	}
	node, err := h.store.GetNode(ctx, sess.Node)
	if store.IsKind(err, store.KindNotFound) {
		return model.NodePlan{}, h.planRefusal(ctx, id, fmt.Sprintf("node %s was deleted after it booted", sess.Node))
	}
	if err != nil {
		return model.NodePlan{}, err
	}
	eff := *node.Effective
	in := PlanInput{Session: sess, Node: node, Image: sess.Image, Branch: sess.Branch}
	if in.Image == "" {
		in.Image, in.Branch = eff.Image, eff.Branch
	}
	if in.Image == "" {
		return model.NodePlan{}, h.planRefusal(ctx, id, fmt.Sprintf("node %s has no image: set one on the node or its group", node.Name))
	}
	if in.Branch == "" || in.Branch == LiveBranch {
		live, err := imgs.Live(ctx, in.Image)
		if errors.Is(err, imgstore.ErrNotFound) {
			return model.NodePlan{}, h.planRefusal(ctx, id, fmt.Sprintf("node %s's image %q does not exist", node.Name, in.Image))
		}
		if err != nil {
			return model.NodePlan{}, err
		}
		in.Branch = live
	}
	d, err := imgs.Branch(ctx, in.Image, in.Branch)
	if errors.Is(err, imgstore.ErrNotFound) {
		return model.NodePlan{}, h.planRefusal(ctx, id, fmt.Sprintf("node %s's image %q has no branch %q", node.Name, in.Image, in.Branch))
	}
	if err != nil {
		return model.NodePlan{}, err
	}
	in.Version = d.String()
	// The kernel booted is the one the node's settings pick, else the
	// image's newest, as the boot script chose it.
	in.Kernel = eff.Kernel
	if in.Kernel == "" {
		if in.Kernel, err = defaultKernel(ctx, imgs, d); err != nil {
			return model.NodePlan{}, err
		}
	}
	if eff.Stateless == nil || !*eff.Stateless {
		if eff.DiskLayout == "" {
			return model.NodePlan{}, h.planRefusal(ctx, id, fmt.Sprintf("node %s has no disk layout and is not stateless: set disk_layout or stateless on the node or its group", node.Name))
		}
		l, err := h.store.GetLayout(ctx, eff.DiskLayout)
		if store.IsKind(err, store.KindNotFound) {
			return model.NodePlan{}, h.planRefusal(ctx, id, fmt.Sprintf("node %s's layout %q does not exist", node.Name, eff.DiskLayout))
		}
		if err != nil {
			return model.NodePlan{}, err
		}
		in.Layout = &l
	}
	if in.Hosts, err = h.store.Hosts(ctx); err != nil {
		return model.NodePlan{}, err
	}
	if in.Plugins, err = h.store.ListPlugins(ctx); err != nil {
		return model.NodePlan{}, err
	}
	plan, err := BuildPlan(in)
	if err != nil {
		return plan, h.planRefusal(ctx, id, err.Error())
	}
	if err := h.store.SetPlanVersion(ctx, id, plan.Version, sess.Expires); err != nil {
		return plan, err
	}
	return plan, nil
}

// defaultKernel is the kernel version Publish puts under the branch's
// "kernel" key: the first kernel.Find finds in the version. "" when the
// version has none (a stateless image booted with another kernel).
func defaultKernel(ctx context.Context, imgs *imgstore.Store, d manifest.Digest) (string, error) {
	m, err := imgs.Manifest(ctx, d)
	if err != nil {
		return "", fmt.Errorf("read version %s for its kernel: %w", d, err)
	}
	if ks := kernel.Find(m); len(ks) > 0 {
		return ks[0].Version, nil
	}
	return "", nil
}
