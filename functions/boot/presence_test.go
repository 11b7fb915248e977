package boot_test

import (
	"context"
	"strings"
	"testing"

	"github.com/herd-hpc/herd/functions/boot"
	"github.com/herd-hpc/herd/functions/model"
)

// TestArtifactPresenceIsRemembered checks the storm shortcut: a boot file
// found once is taken to be there for store.ArtifactMemo without asking
// the object store, while a missing one is asked about every time (so a
// freshly published image boots on the very next retry).
func TestArtifactPresenceIsRemembered(t *testing.T) {
	e := newEnv(t, boot.Config{})
	e.node(model.Node{Name: "n1", Settings: model.Settings{Image: "rocky9"},
		Interfaces: []model.Interface{{Name: "eth0", MAC: model.MAC(macN(1)), Boot: true}}})

	script := func() string {
		t.Helper()
		status, _, body := e.get("/boot/ipxe?mac=" + macN(1) + "&arch=x86_64&platform=pcbios")
		if status != 200 {
			t.Fatalf("status %d: %s", status, body)
		}
		return string(body)
	}
	if s := script(); !strings.Contains(s, "missing") {
		t.Fatalf("no image published yet, script:\n%s", s)
	}
	e.image("rocky9", boot.LiveBranch)
	if s := script(); !strings.Contains(s, "\nkernel ") {
		t.Fatalf("image just published, script:\n%s", s)
	}
	// Removed behind herd's back: the memo still says it is there.
	if err := e.obj.Delete(context.Background(), boot.ImageKey("rocky9", boot.LiveBranch, "kernel")); err != nil {
		t.Fatal(err)
	}
	if s := script(); !strings.Contains(s, "\nkernel ") {
		t.Fatalf("memo not used, script:\n%s", s)
	}
}
