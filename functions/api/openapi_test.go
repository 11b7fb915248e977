package api_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/herd-hpc/herd/functions/api"
	"github.com/herd-hpc/herd/functions/model"
)

type openapiDoc struct {
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Schemas map[string]struct {
			Properties map[string]json.RawMessage `json:"properties"`
		} `json:"schemas"`
	} `json:"components"`
}

func loadOpenAPI(t *testing.T) openapiDoc {
	t.Helper()
	var doc openapiDoc
	if err := json.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatalf("openapi.json is not JSON: %v", err)
	}
	return doc
}

// TestOpenAPIMatchesRoutes keeps the document true: every served route is
// documented and every documented operation is served.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc := loadOpenAPI(t)
	a := api.New(nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	served := map[string]bool{}
	for _, r := range a.Routes {
		method, path, _ := strings.Cut(r, " ")
		served[strings.ToLower(method)+" "+strings.TrimPrefix(path, api.Prefix)] = true
	}
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			if method == "parameters" {
				continue
			}
			// The mux names path parameters like the document does.
			documented[method+" "+path] = true
		}
	}
	for k := range served {
		if !documented[k] {
			t.Errorf("served but not in openapi.json: %s", k)
		}
	}
	for k := range documented {
		if !served[k] {
			t.Errorf("in openapi.json but not served: %s", k)
		}
	}
}

// jsonFields lists the JSON names of a struct's fields, embedded ones
// flattened.
func jsonFields(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			out = append(out, jsonFields(f.Type)...)
			continue
		}
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// TestOpenAPISchemasMatchTypes checks each schema lists exactly the JSON
// fields of the Go type the API sends and accepts.
func TestOpenAPISchemasMatchTypes(t *testing.T) {
	doc := loadOpenAPI(t)
	for name, v := range map[string]any{
		"Node": model.Node{}, "Group": model.Group{}, "Device": model.Device{}, "Connection": model.Connection{},
		"Interface": model.Interface{}, "BMC": model.BMC{}, "Settings": model.Settings{}, "AuditEvent": model.AuditEvent{},
		"User": model.User{}, "Token": model.Token{}, "NewUser": model.NewUser{}, "NewToken": model.NewToken{},
		"LoginRequest": model.LoginRequest{}, "LoginReply": model.LoginReply{}, "AuditFollowReply": model.AuditFollowReply{},
		"CreatedToken": model.CreatedToken{},
		"Image":        model.Image{}, "ImageBranch": model.ImageBranch{}, "ImagePatch": model.ImagePatch{},
		"BranchRequest": model.BranchRequest{}, "BranchPatch": model.BranchPatch{}, "CommitRequest": model.CommitRequest{},
		"CommitReply": model.CommitReply{}, "RollbackRequest": model.RollbackRequest{}, "ImageVersion": model.ImageVersion{},
		"ImageDiff": model.ImageDiff{}, "PathChange": model.PathChange{}, "MissingRequest": model.MissingRequest{},
		"MissingReply": model.MissingReply{}, "GCRequest": model.GCRequest{}, "GCReport": model.GCReport{}, "ImportLease": model.ImportLease{}, "BootenvInfo": model.BootenvInfo{},
		"Layout": model.Layout{}, "LayoutDisk": model.LayoutDisk{}, "DiskSelector": model.DiskSelector{},
		"SimpleLayout": model.SimpleLayout{}, "SimpleFS": model.SimpleFS{}, "AdvancedLayout": model.AdvancedLayout{},
		"PluginSettings": model.PluginSettings{}, "ConsoleChunk": model.ConsoleChunk{},
	} {
		s, ok := doc.Components.Schemas[name]
		if !ok {
			t.Errorf("schema %s missing", name)
			continue
		}
		var props []string
		for p := range s.Properties {
			props = append(props, p)
		}
		sort.Strings(props)
		if want := jsonFields(reflect.TypeOf(v)); !slices.Equal(props, want) {
			t.Errorf("schema %s has %v, the Go type has %v", name, props, want)
		}
	}
}

// TestOnlyLoginAnswersWithoutCredentials walks every route without a token:
// all but POST /login must answer 401.
func TestOnlyLoginAnswersWithoutCredentials(t *testing.T) {
	e := newEnv(t)
	for _, route := range e.api.Routes {
		method, path, _ := strings.Cut(route, " ")
		path = strings.NewReplacer("{name}", "x", "{id}", "x", "{image}", "x", "{branch}", "x", "{digest}", "x", "{lease}", "x").Replace(strings.TrimPrefix(path, api.Prefix))
		status, _, _ := e.call(method, path, "", `{}`)
		if route == "POST "+api.Prefix+"/login" {
			if status == 200 {
				t.Errorf("login without a password succeeded")
			}
			continue
		}
		if status != 401 {
			t.Errorf("%s without credentials: %d, want 401", route, status)
		}
	}
}
