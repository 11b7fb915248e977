package power_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/herd-hpc/herd/edge/power"
	"github.com/herd-hpc/herd/edge/power/ipmisim"
	"github.com/herd-hpc/herd/edge/power/redfishsim"
	"github.com/herd-hpc/herd/functions/model"
)

func ipmiTarget(b *ipmisim.BMC) model.BMCTarget {
	return model.BMCTarget{Protocol: model.PowerIPMI, Address: b.Address, Username: b.Username, Password: b.Password}
}

func TestIPMIActions(t *testing.T) {
	bmcs := ipmisim.Start(t, 4, ipmisim.Options{})
	drv := power.NewBMC(power.BMCOptions{Timeout: 20 * time.Second})
	ctx := context.Background()

	t.Run("status on off", func(t *testing.T) {
		t.Parallel()
		b := bmcs[0]
		for _, step := range []struct {
			action model.PowerAction
			want   model.PowerState
		}{
			{model.PowerStatus, model.PowerStateOff},
			{model.PowerOn, model.PowerStateOn},
			{model.PowerStatus, model.PowerStateOn},
			{model.PowerOff, model.PowerStateOff},
		} {
			got, err := drv.Do(ctx, ipmiTarget(b), step.action)
			if err != nil || got != step.want {
				t.Fatalf("%s = %q, %v; want %q", step.action, got, err, step.want)
			}
			if on, _ := b.On(); on != (step.want == model.PowerStateOn) {
				t.Fatalf("after %s the simulator's chassis is on=%t", step.action, on)
			}
		}
	})
	t.Run("cycle of a node that is on", func(t *testing.T) {
		t.Parallel()
		b := bmcs[1]
		if err := b.SetOn(true); err != nil {
			t.Fatal(err)
		}
		if _, err := drv.Do(ctx, ipmiTarget(b), model.PowerCycle); err != nil {
			t.Fatalf("cycle: %v", err)
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := b.WaitOn(wctx, true); err != nil {
			t.Fatal(err)
		}
		cmds := b.Commands()
		off, on := slices.Index(cmds, "set power 0"), slices.Index(cmds, "set power 1")
		if off < 0 || on < off {
			t.Fatalf("the BMC saw %q; want power 0 then power 1", cmds)
		}
	})
	t.Run("cycle of a node that is off powers it on", func(t *testing.T) {
		t.Parallel()
		b := bmcs[2]
		got, err := drv.Do(ctx, ipmiTarget(b), model.PowerCycle)
		if err != nil || got != model.PowerStateOn {
			t.Fatalf("cycle = %q, %v; want on", got, err)
		}
		if slices.Contains(b.Commands(), "set power 0") {
			t.Fatalf("cycled a node that was off: %q", b.Commands())
		}
	})
	t.Run("reset and soft", func(t *testing.T) {
		t.Parallel()
		b := bmcs[3]
		if err := b.SetOn(true); err != nil {
			t.Fatal(err)
		}
		if got, err := drv.Do(ctx, ipmiTarget(b), model.PowerReset); err != nil || got != model.PowerStateOn {
			t.Fatalf("reset = %q, %v; want on", got, err)
		}
		if !slices.Contains(b.Commands(), "set reset 1") {
			t.Fatalf("reset did not reach the chassis: %q", b.Commands())
		}
		if got, err := drv.Do(ctx, ipmiTarget(b), model.PowerSoft); err != nil || got != model.PowerStateOff {
			t.Fatalf("soft = %q, %v; want off (the simulated OS shuts down at once)", got, err)
		}
		if !slices.Contains(b.Commands(), "set shutdown 1") {
			t.Fatalf("soft did not reach the chassis as an ACPI shutdown: %q", b.Commands())
		}
	})
}

func TestIPMIWrongPassword(t *testing.T) {
	b := ipmisim.Start(t, 1, ipmisim.Options{})[0]
	target := ipmiTarget(b)
	target.Password = "not-the-password"
	_, err := power.NewBMC(power.BMCOptions{Timeout: 20 * time.Second}).Do(context.Background(), target, model.PowerStatus)
	if !errors.Is(err, power.ErrRefused) || !strings.Contains(err.Error(), "wrong username or password") || !strings.Contains(err.Error(), b.Address) {
		t.Fatalf("status with a wrong password = %v; want ErrRefused naming the BMC", err)
	}
	if strings.Contains(err.Error(), "not-the-password") {
		t.Fatalf("the error shows the password: %v", err)
	}
}

func TestIPMIUnreachableTimesOut(t *testing.T) {
	if _, err := ipmisim.UnusedAddress(); err != nil {
		t.Fatal(err)
	}
	addr, _ := ipmisim.UnusedAddress()
	target := model.BMCTarget{Protocol: model.PowerIPMI, Address: addr, Username: "admin", Password: "x"}
	_, err := power.NewBMC(power.BMCOptions{Timeout: time.Second}).Do(context.Background(), target, model.PowerStatus)
	if !errors.Is(err, power.ErrTimeout) || !strings.Contains(err.Error(), addr) {
		t.Fatalf("status of a BMC that never answers = %v; want ErrTimeout naming it", err)
	}
}

func TestIPMISlowBMC(t *testing.T) {
	b := ipmisim.Start(t, 1, ipmisim.Options{Delay: 1500 * time.Millisecond, On: true})[0]
	got, err := power.NewBMC(power.BMCOptions{Timeout: 20 * time.Second}).Do(context.Background(), ipmiTarget(b), model.PowerStatus)
	if err != nil || got != model.PowerStateOn {
		t.Fatalf("status of a slow BMC = %q, %v; want on", got, err)
	}
	_, err = power.NewBMC(power.BMCOptions{Timeout: 500 * time.Millisecond}).Do(context.Background(), ipmiTarget(b), model.PowerStatus)
	if !errors.Is(err, power.ErrTimeout) {
		t.Fatalf("status of a BMC slower than the timeout = %v; want ErrTimeout", err)
	}
}

func redfishTarget(s *redfishsim.Server, i int) model.BMCTarget {
	return model.BMCTarget{Protocol: model.PowerRedfish, Address: s.Address(i), Username: "admin", Password: "herd-secret", Fingerprint: s.Fingerprint()}
}

func TestRedfishActions(t *testing.T) {
	sim := redfishsim.Start(t, redfishsim.Options{BMCs: 2})
	drv := power.NewBMC(power.BMCOptions{Timeout: 10 * time.Second})
	ctx := context.Background()
	target := redfishTarget(sim, 0)
	for _, step := range []struct {
		action    model.PowerAction
		want      model.PowerState
		wantReset string
	}{
		{model.PowerStatus, model.PowerStateOff, ""},
		{model.PowerOn, model.PowerStateOn, "On"},
		{model.PowerCycle, model.PowerStateOn, "ForceRestart"},
		{model.PowerReset, model.PowerStateOn, "PowerCycle"},
		{model.PowerSoft, model.PowerStateOff, "GracefulShutdown"},
		{model.PowerCycle, model.PowerStateOn, "On"},
		{model.PowerOff, model.PowerStateOff, "ForceOff"},
	} {
		before := len(sim.Resets(0))
		got, err := drv.Do(ctx, target, step.action)
		if err != nil || got != step.want {
			t.Fatalf("%s = %q, %v; want %q", step.action, got, err, step.want)
		}
		resets := sim.Resets(0)[before:]
		if step.wantReset == "" && len(resets) != 0 || step.wantReset != "" && !slices.Equal(resets, []string{step.wantReset}) {
			t.Fatalf("%s sent resets %q; want %q", step.action, resets, step.wantReset)
		}
	}
	if n := sim.Sessions(0); n != 0 {
		t.Fatalf("%d Redfish sessions left open; every call should log out", n)
	}
	if len(sim.Resets(1)) != 0 || sim.On(1) {
		t.Fatal("another BMC on the same simulator was touched")
	}
}

func TestRedfishFingerprintPinning(t *testing.T) {
	sim := redfishsim.Start(t, redfishsim.Options{On: true})
	other := redfishsim.Start(t, redfishsim.Options{})
	drv := power.NewBMC(power.BMCOptions{Timeout: 10 * time.Second})
	ctx := context.Background()

	target := redfishTarget(sim, 0)
	if got, err := drv.Do(ctx, target, model.PowerStatus); err != nil || got != model.PowerStateOn {
		t.Fatalf("status with the right pin = %q, %v", got, err)
	}

	target.Fingerprint = other.Fingerprint()
	_, err := drv.Do(ctx, target, model.PowerOff)
	if !errors.Is(err, power.ErrFingerprint) {
		t.Fatalf("off with the wrong pin = %v; want ErrFingerprint", err)
	}
	if !sim.On(0) || sim.Sessions(0) != 0 {
		t.Fatal("a BMC whose certificate did not match the pin was logged in to or switched")
	}

	// Without a pin the system roots decide, and nobody's roots trust a
	// BMC's self-signed certificate.
	target.Fingerprint = ""
	if _, err := drv.Do(ctx, target, model.PowerStatus); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("status of a self-signed BMC without a pin = %v; want a certificate error", err)
	}
}

func TestRedfishWrongPassword(t *testing.T) {
	sim := redfishsim.Start(t, redfishsim.Options{})
	target := redfishTarget(sim, 0)
	target.Password = "not-the-password"
	_, err := power.NewBMC(power.BMCOptions{Timeout: 10 * time.Second}).Do(context.Background(), target, model.PowerStatus)
	if !errors.Is(err, power.ErrRefused) {
		t.Fatalf("status with a wrong password = %v; want ErrRefused", err)
	}
}
