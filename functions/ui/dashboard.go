package ui

import (
	"net/http"

	"github.com/herd-hpc/herd/frontend/components"
	"github.com/herd-hpc/herd/functions/auth"
	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/store"
)

func (u *UI) dashboard(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	ctx := r.Context()
	counts, total, err := u.store.NodeStateCounts(ctx)
	if err != nil {
		return err
	}
	v := components.DashboardView{Nodes: total}
	for _, s := range components.NodeStates() {
		v.States = append(v.States, components.StateCount{State: s, Count: counts[s]})
	}
	one := store.ListOptions{Limit: 1}
	groups, err := u.store.ListGroups(ctx, one)
	if err != nil {
		return err
	}
	switches, err := u.store.ListDevices(ctx, one, store.DeviceFilter{Kind: model.DeviceSwitch})
	if err != nil {
		return err
	}
	pdus, err := u.store.ListDevices(ctx, one, store.DeviceFilter{Kind: model.DevicePDU})
	if err != nil {
		return err
	}
	conns, err := u.store.ListConnections(ctx, one, store.ConnectionFilter{})
	if err != nil {
		return err
	}
	recent, err := u.store.Audit(ctx, store.AuditQuery{Limit: 10})
	if err != nil {
		return err
	}
	v.Groups, v.Switches, v.PDUs, v.Connections, v.Recent = groups.Total, switches.Total, pdus.Total, conns.Total, recent.Items
	return u.render(w, r, http.StatusOK, components.Dashboard(u.frame(w, r, id, "dashboard", "Dashboard"), v))
}
