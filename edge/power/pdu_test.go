package power_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/herd-hpc/herd/edge/power"
	"github.com/herd-hpc/herd/edge/power/eaton"
	"github.com/herd-hpc/herd/edge/power/eaton/eatonsim"
	"github.com/herd-hpc/herd/functions/model"
)

func TestNodeState(t *testing.T) {
	on, off, unknown := model.PowerStateOn, model.PowerStateOff, model.PowerStateUnknown
	for _, tc := range []struct {
		outlets []model.PowerState
		want    model.PowerState
	}{
		{nil, unknown},
		{[]model.PowerState{off}, off},
		{[]model.PowerState{on}, on},
		{[]model.PowerState{off, off}, off},
		{[]model.PowerState{off, on}, on},
		{[]model.PowerState{unknown, on}, on},
		{[]model.PowerState{off, unknown}, unknown},
	} {
		if got := power.NodeState(tc.outlets); got != tc.want {
			t.Errorf("NodeState(%q) = %q; want %q", tc.outlets, got, tc.want)
		}
	}
}

func drivers() power.PDUDrivers {
	return power.PDUDrivers{eaton.Driver: eaton.NewPDU}
}

func outlet(card *eatonsim.Card, pdu, supply, n string) model.OutletTarget {
	return model.OutletTarget{Supply: supply, PDU: pdu, Driver: eaton.Driver, Address: card.Address(), Outlet: n,
		Username: "herd", Password: "herd-secret", Fingerprint: card.Fingerprint()}
}

func TestPDUNodeWithTwoSupplies(t *testing.T) {
	a := eatonsim.Start(t, eatonsim.Options{Outlets: 4})
	b := eatonsim.Start(t, eatonsim.Options{Outlets: 4})
	pdus := power.NewPDUs(drivers(), power.PDUOptions{Timeout: 5 * time.Second})
	ctx := context.Background()
	node := []model.OutletTarget{outlet(a, "pdu-a", "psu1", "1"), outlet(b, "pdu-b", "psu2", "2")}

	do := func(action model.PowerAction) model.PowerState {
		t.Helper()
		got, err := pdus.Do(ctx, node, action, time.Millisecond)
		if err != nil {
			t.Fatalf("%s: %v", action, err)
		}
		return got
	}
	if got := do(model.PowerStatus); got != model.PowerStateOff {
		t.Fatalf("status with both outlets off = %q", got)
	}
	b.SetOn(2, true)
	if got := do(model.PowerStatus); got != model.PowerStateOn {
		t.Fatalf("status with one of two outlets on = %q; want on", got)
	}
	if got := do(model.PowerOff); got != model.PowerStateOff || a.On(1) || b.On(2) {
		t.Fatalf("off = %q; outlets on: %t %t", got, a.On(1), b.On(2))
	}
	if got := do(model.PowerOn); got != model.PowerStateOn || !a.On(1) || !b.On(2) {
		t.Fatalf("on = %q; outlets on: %t %t", got, a.On(1), b.On(2))
	}
	if got := do(model.PowerCycle); got != model.PowerStateOn || !a.On(1) || !b.On(2) {
		t.Fatalf("cycle = %q; outlets on: %t %t", got, a.On(1), b.On(2))
	}
	if want := []string{"1/switchOff", "1/switchOn", "1/switchOff", "1/switchOn"}; !slices.Equal(a.Actions(), want) {
		t.Fatalf("PDU a saw %q; want %q", a.Actions(), want)
	}
	for _, action := range []model.PowerAction{model.PowerReset, model.PowerSoft} {
		if _, err := pdus.Do(ctx, node, action, 0); !errors.Is(err, power.ErrNoPDUAction) {
			t.Fatalf("%s through a PDU = %v; want ErrNoPDUAction", action, err)
		}
	}
	if a.Logins() != 1 || b.Logins() != 1 {
		t.Fatalf("logins %d and %d; want one session per card for all actions", a.Logins(), b.Logins())
	}
	if err := pdus.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	if a.Sessions() != 0 || b.Sessions() != 0 {
		t.Fatal("close left sessions open on the cards")
	}
}

func TestPDUCycleSwitchesAllOffBeforeAnyOn(t *testing.T) {
	card := eatonsim.Start(t, eatonsim.Options{Outlets: 4, On: true})
	pdus := power.NewPDUs(drivers(), power.PDUOptions{})
	t.Cleanup(func() { _ = pdus.Close(context.Background()) })
	node := []model.OutletTarget{outlet(card, "pdu", "psu1", "3"), outlet(card, "pdu", "psu2", "4")}
	if got, err := pdus.Do(context.Background(), node, model.PowerCycle, 20*time.Millisecond); err != nil || got != model.PowerStateOn {
		t.Fatalf("cycle = %q, %v", got, err)
	}
	actions := card.Actions()
	if len(actions) != 4 {
		t.Fatalf("actions %q; want two offs then two ons", actions)
	}
	offs, ons := actions[:2], actions[2:]
	slices.Sort(offs)
	slices.Sort(ons)
	if !slices.Equal(offs, []string{"3/switchOff", "4/switchOff"}) || !slices.Equal(ons, []string{"3/switchOn", "4/switchOn"}) {
		t.Fatalf("actions %q; want both outlets off before either comes on", actions)
	}
	if !card.On(1) || !card.On(2) {
		t.Fatal("outlets feeding other nodes were switched")
	}
}

func TestPDUStatusWithOneCardGone(t *testing.T) {
	a := eatonsim.Start(t, eatonsim.Options{On: true})
	gone := eatonsim.Start(t, eatonsim.Options{})
	node := []model.OutletTarget{outlet(a, "pdu-a", "psu1", "1"), outlet(gone, "pdu-gone", "psu2", "1")}
	gone.Close()
	pdus := power.NewPDUs(drivers(), power.PDUOptions{Timeout: 2 * time.Second})

	if got, err := pdus.Do(context.Background(), node, model.PowerStatus, 0); err != nil || got != model.PowerStateOn {
		t.Fatalf("status with one live supply on = %q, %v; want on", got, err)
	}
	a.SetOn(1, false)
	if got, err := pdus.Do(context.Background(), node, model.PowerStatus, 0); err == nil || got != model.PowerStateUnknown {
		t.Fatalf("status with one supply off and one unreadable = %q, %v; want unknown and an error", got, err)
	}
	if _, err := pdus.Do(context.Background(), node, model.PowerOn, 0); err == nil || !a.On(1) {
		t.Fatalf("on with one PDU gone = %v (live outlet on=%t); want the live outlet on and an error", err, a.On(1))
	}
}
