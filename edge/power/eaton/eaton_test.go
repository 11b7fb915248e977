package eaton_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/herd-hpc/herd/edge/power"
	"github.com/herd-hpc/herd/edge/power/eaton"
	"github.com/herd-hpc/herd/edge/power/eaton/eatonsim"
	"github.com/herd-hpc/herd/functions/model"
)

func client(t *testing.T, card *eatonsim.Card) *eaton.Client {
	t.Helper()
	c, err := eaton.New(power.PDUConfig{Address: card.Address(), Username: "herd", Password: "herd-secret", Fingerprint: card.Fingerprint()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSwitchAndReadOnOneSession(t *testing.T) {
	card := eatonsim.Start(t, eatonsim.Options{Outlets: 4})
	c := client(t, card)
	ctx := context.Background()

	if got, err := c.OutletState(ctx, "3"); err != nil || got != model.PowerStateOff {
		t.Fatalf("outlet 3 = %q, %v; want off", got, err)
	}
	if err := c.Switch(ctx, "3", true); err != nil {
		t.Fatalf("switch on: %v", err)
	}
	if !card.On(3) || card.On(2) {
		t.Fatal("switchOn did not switch outlet 3 alone")
	}
	if got, err := c.OutletState(ctx, "3"); err != nil || got != model.PowerStateOn {
		t.Fatalf("outlet 3 after switchOn = %q, %v", got, err)
	}
	if err := c.Switch(ctx, "3", false); err != nil || card.On(3) {
		t.Fatalf("switch off: %v, outlet on=%t", err, card.On(3))
	}
	if want := []string{"3/switchOn", "3/switchOff"}; !slices.Equal(card.Actions(), want) {
		t.Fatalf("actions %q; want %q", card.Actions(), want)
	}
	if card.Logins() != 1 {
		t.Fatalf("%d logins for five calls; want one session", card.Logins())
	}
	if err := c.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	if card.Logouts() != 1 || card.Sessions() != 0 {
		t.Fatalf("close left %d sessions (%d logouts)", card.Sessions(), card.Logouts())
	}
	// The account is free again for whoever comes next.
	if _, err := client(t, card).OutletState(ctx, "1"); err != nil {
		t.Fatalf("a new client after close: %v", err)
	}
}

func TestConcurrentCallsShareOneLogin(t *testing.T) {
	card := eatonsim.Start(t, eatonsim.Options{Outlets: 8})
	c := client(t, card)
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 32 {
		wg.Go(func() {
			if _, err := c.OutletState(context.Background(), string(rune('1'+i%8))); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent read: %v", err)
	}
	if card.Logins() != 1 || card.Refused() != 0 {
		t.Fatalf("%d logins, %d refused as concurrent; want one login", card.Logins(), card.Refused())
	}
}

func TestConcurrentSessionRefused(t *testing.T) {
	card := eatonsim.Start(t, eatonsim.Options{})
	card.HoldSession()
	c := client(t, card)
	ctx := context.Background()

	_, err := c.OutletState(ctx, "1")
	if !errors.Is(err, eaton.ErrConcurrentSession) || !strings.Contains(err.Error(), card.Address()) {
		t.Fatalf("read while the account's session is held elsewhere = %v; want ErrConcurrentSession naming the card", err)
	}
	if err := c.Switch(ctx, "1", true); !errors.Is(err, eaton.ErrConcurrentSession) || card.On(1) {
		t.Fatalf("switch while the session is held elsewhere = %v (outlet on=%t)", err, card.On(1))
	}
	// Once the other session ends, the same client logs in: a refusal is
	// not remembered.
	card.ReleaseSession()
	if err := c.Switch(ctx, "1", true); err != nil || !card.On(1) {
		t.Fatalf("switch after the other session ended = %v (outlet on=%t)", err, card.On(1))
	}
}

func TestExpiredTokenLogsInAgain(t *testing.T) {
	card := eatonsim.Start(t, eatonsim.Options{On: true})
	c := client(t, card)
	ctx := context.Background()
	if _, err := c.OutletState(ctx, "1"); err != nil {
		t.Fatal(err)
	}
	card.ExpireTokens()
	if err := c.Switch(ctx, "1", false); err != nil {
		t.Fatalf("switch with an expired token: %v", err)
	}
	if card.On(1) || card.Logins() != 2 || card.Refused() != 0 {
		t.Fatalf("after expiry: outlet on=%t, %d logins, %d refused; want off, 2, 0", card.On(1), card.Logins(), card.Refused())
	}
	if want := []string{"1/switchOff"}; !slices.Equal(card.Actions(), want) {
		t.Fatalf("actions %q; want the switch done once", card.Actions())
	}
}

func TestWrongPasswordAndFingerprint(t *testing.T) {
	card := eatonsim.Start(t, eatonsim.Options{})
	other := eatonsim.Start(t, eatonsim.Options{})
	ctx := context.Background()

	c, err := eaton.New(power.PDUConfig{Address: card.Address(), Username: "herd", Password: "wrong-pw", Fingerprint: card.Fingerprint()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.OutletState(ctx, "1")
	if !errors.Is(err, power.ErrRefused) || strings.Contains(err.Error(), "wrong-pw") {
		t.Fatalf("read with a wrong password = %v; want ErrRefused without the password", err)
	}

	c, err = eaton.New(power.PDUConfig{Address: card.Address(), Username: "herd", Password: "herd-secret", Fingerprint: other.Fingerprint()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.OutletState(ctx, "1"); !errors.Is(err, power.ErrFingerprint) {
		t.Fatalf("read with the wrong pin = %v; want ErrFingerprint", err)
	}
	if card.Logins() != 0 {
		t.Fatal("credentials went to a card whose certificate did not match the pin")
	}
}

func TestOutletIDs(t *testing.T) {
	card := eatonsim.Start(t, eatonsim.Options{Outlets: 2})
	c := client(t, card)
	for _, id := range []string{"", "0", "-1", "01", "A1", "1/../2"} {
		if _, err := c.OutletState(context.Background(), id); err == nil {
			t.Fatalf("outlet %q accepted", id)
		}
	}
	if card.Logins() != 0 {
		t.Fatal("logged in for an outlet id that cannot exist")
	}
	if _, err := c.OutletState(context.Background(), "9"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("outlet 9 of 2 = %v; want the card's 404", err)
	}
}
