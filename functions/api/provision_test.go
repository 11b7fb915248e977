package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/problem"
	"github.com/herd-hpc/herd/functions/store"
)

const layoutJSON = `{"name":"nvme","mode":"simple","disks":[{"name":"disk0","select":{"type":"nvme","size":"960GB ± 5%"}}],
"simple":{"filesystems":[{"mount":"/","type":"ext4","size":"40GB"},{"type":"swap","size":"8GB"},{"mount":"/scratch","type":"xfs","size":"rest"}]}}`

func TestLayoutsAPI(t *testing.T) {
	e := newEnv(t)
	var l model.Layout
	h := e.must("POST", "/layouts", e.admin, layoutJSON, http.StatusCreated, &l)
	if h.Get("ETag") != `"1"` || h.Get("Location") != "/api/v1/layouts/nvme" || l.Disks[0].Select.Size.Tolerance != 5 {
		t.Fatalf("create: %v %+v", h, l)
	}
	// Read-only users read, but do not write.
	e.must("GET", "/layouts/nvme", e.readonly, nil, http.StatusOK, nil)
	e.must("PUT", "/layouts/nvme", e.readonly, layoutJSON, http.StatusForbidden, nil)
	var bad problem.Problem
	e.must("POST", "/layouts", e.admin, strings.Replace(layoutJSON, `"mount":"/",`, "", 1), http.StatusUnprocessableEntity, &bad)
	if len(bad.Errors) == 0 {
		t.Fatalf("invalid layout: %+v", bad)
	}
	e.must("PATCH", "/layouts/nvme", e.admin, `{"simple":{"mirror":true}}`, http.StatusUnprocessableEntity, nil)
	e.must("PUT", "/layouts/nvme", e.admin, layoutJSON, http.StatusPreconditionFailed, nil, "If-Match", `"9"`)

	e.must("POST", "/groups", e.admin, `{"name":"compute","disk_layout":"nvme"}`, http.StatusCreated, nil)
	var p problem.Problem
	e.must("DELETE", "/layouts/nvme", e.admin, nil, http.StatusConflict, &p)
	if !strings.Contains(p.Detail, "group/compute") {
		t.Fatalf("delete in use: %+v", p)
	}
	var page model.Page[model.Layout]
	e.must("GET", "/layouts", e.admin, nil, http.StatusOK, &page)
	if page.Total != 1 || page.Items[0].Name != "nvme" {
		t.Fatalf("list: %+v", page)
	}
}

func TestPluginsAPI(t *testing.T) {
	e := newEnv(t)
	var page model.Page[model.PluginSettings]
	e.must("GET", "/plugins", e.readonly, nil, http.StatusOK, &page)
	if page.Total != 7 || page.Items[0].Name != "hostname" {
		t.Fatalf("list: %+v", page)
	}
	var p model.PluginSettings
	h := e.must("GET", "/plugins/systemd", e.admin, nil, http.StatusOK, &p)
	if h.Get("ETag") != `"0"` || p.Enabled {
		t.Fatalf("default: %v %+v", h, p)
	}
	e.must("PUT", "/plugins/systemd", e.readonly, `{"enabled":true}`, http.StatusForbidden, nil)
	e.must("PUT", "/plugins/systemd", e.admin, `{"enabled":true,"settings":{"enable":"slurmd.service munge.service"}}`, http.StatusOK, &p)
	if p.Revision != 1 || p.Name != "systemd" {
		t.Fatalf("put: %+v", p)
	}
	e.must("PUT", "/plugins/systemd", e.admin, `{"enabled":false}`, http.StatusPreconditionFailed, nil, "If-Match", `"7"`)
	e.must("PUT", "/plugins/systemd", e.admin, `{"name":"hosts","enabled":false}`, http.StatusBadRequest, nil)
	e.must("PUT", "/plugins/nfs", e.admin, `{"enabled":true}`, http.StatusNotFound, nil)
	e.must("GET", "/plugins/nfs", e.admin, nil, http.StatusNotFound, nil)
}

func TestConsoleAPI(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.st.CreateNode(ctx, store.Actor{User: "t"}, model.Node{Name: "node001"}); err != nil {
		t.Fatal(err)
	}
	id := strings.Repeat("0a", 16)
	sess := model.BootSession{ID: id, Node: "node001", State: model.BootRunning, Expires: time.Now().Add(time.Hour)}
	if err := e.st.OpenBootSession(ctx, sess, "", 0, model.BootEvent{Step: "ipxe", State: model.EventOK}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.AppendConsole(ctx, id, 1, []byte("hello\x1b[0m\n")); err != nil {
		t.Fatal(err)
	}
	var c model.ConsoleChunk
	e.must("GET", "/boot/sessions/"+id+"/console?wait=0s", e.readonly, nil, http.StatusOK, &c)
	if string(c.Data) != "hello\x1b[0m\n" || c.Next != "1.10" || c.Ended {
		t.Fatalf("console: %+v", c)
	}
	e.must("GET", "/boot/sessions/"+id+"/console?after=nonsense", e.admin, nil, http.StatusBadRequest, nil)
	e.must("GET", "/boot/sessions/"+id+"/console?wait=2h", e.admin, nil, http.StatusBadRequest, nil)
	// A session that ended without an archive (no object store here) has
	// its live stream read to the end, then says so.
	if _, _, err := e.st.AddBootEvent(ctx, id, model.BootEvent{Step: model.StepDone, State: model.EventOK}); err != nil {
		t.Fatal(err)
	}
	e.must("GET", "/boot/sessions/"+id+"/console?after=1.10", e.admin, nil, http.StatusOK, &c)
	if len(c.Data) != 0 || !c.Ended {
		t.Fatalf("after the end: %+v", c)
	}
}
