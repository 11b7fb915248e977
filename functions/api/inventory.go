package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/herd-hpc/herd/functions/auth"
	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/noderange"
	"github.com/herd-hpc/herd/functions/problem"
	"github.com/herd-hpc/herd/functions/store"
)

// resource is one kind of named inventory object served with the same
// verbs: list, create, read, replace, merge-patch and delete.
type resource[T any] struct {
	kind    string // "node"
	path    string // "nodes"
	name    func(*T) *string
	rev     func(*T) int64
	get     func(context.Context, string) (T, error)
	create  func(context.Context, store.Actor, T) (T, error)
	replace func(context.Context, store.Actor, T, int64) (T, error)
	del     func(context.Context, store.Actor, string, int64) error
	list    func(*http.Request, store.ListOptions) (any, error)
}

// readOnly are fields a client may send back unchanged but never sets.
func readOnly() []string { return []string{"revision", "created", "updated", "effective", "state"} }

func register[T any](a *API, res resource[T]) {
	base := Prefix + "/" + res.path
	item := base + "/{name}"
	a.handle("GET "+base, func(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
		opts, err := listOptions(r)
		if err != nil {
			return err
		}
		page, err := res.list(r, opts)
		if err != nil {
			return err
		}
		return reply(w, http.StatusOK, page)
	})
	a.handle("POST "+base, func(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
		var v T
		if err := decode(r, &v); err != nil {
			return err
		}
		out, err := res.create(r.Context(), id.Actor(), v)
		if err != nil {
			return err
		}
		w.Header().Set("ETag", etag(res.rev(&out)))
		w.Header().Set("Location", base+"/"+*res.name(&out))
		return reply(w, http.StatusCreated, out)
	})
	a.handle("GET "+item, func(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
		v, err := res.get(r.Context(), r.PathValue("name"))
		if err != nil {
			return err
		}
		w.Header().Set("ETag", etag(res.rev(&v)))
		return reply(w, http.StatusOK, v)
	})
	a.handle("PUT "+item, func(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
		rev, err := ifMatch(r)
		if err != nil {
			return err
		}
		var v T
		if err := decode(r, &v); err != nil {
			return err
		}
		if err := sameName(res.kind, res.name(&v), r.PathValue("name")); err != nil {
			return err
		}
		out, err := res.replace(r.Context(), id.Actor(), v, rev)
		if err != nil {
			return err
		}
		w.Header().Set("ETag", etag(res.rev(&out)))
		return reply(w, http.StatusOK, out)
	})
	a.handle("PATCH "+item, func(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
		rev, err := ifMatch(r)
		if err != nil {
			return err
		}
		var patch map[string]json.RawMessage
		if err := decode(r, &patch); err != nil {
			return err
		}
		name := r.PathValue("name")
		// Without If-Match the patch applies to whatever is current: a
		// concurrent change makes us read again and re-apply it.
		for attempt := 0; ; attempt++ {
			cur, err := res.get(r.Context(), name)
			if err != nil {
				return err
			}
			want := rev
			if want == 0 {
				want = res.rev(&cur)
			}
			next, err := mergePatch(cur, patch)
			if err != nil {
				return err
			}
			if err := sameName(res.kind, res.name(&next), name); err != nil {
				return err
			}
			out, err := res.replace(r.Context(), id.Actor(), next, want)
			if rev == 0 && store.IsKind(err, store.KindPrecondition) && attempt < 5 {
				continue
			}
			if err != nil {
				return err
			}
			w.Header().Set("ETag", etag(res.rev(&out)))
			return reply(w, http.StatusOK, out)
		}
	})
	a.handle("DELETE "+item, func(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
		rev, err := ifMatch(r)
		if err != nil {
			return err
		}
		if err := res.del(r.Context(), id.Actor(), r.PathValue("name"), rev); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}

func sameName(kind string, body *string, path string) error {
	if *body == "" {
		*body = path
		return nil
	}
	if *body != path {
		p := problem.New(http.StatusBadRequest, "rename", "Names cannot change",
			fmt.Sprintf("the body names %s %q but the URL names %q; create a new %s and delete the old one to rename", kind, *body, path, kind))
		p.Errors = []model.FieldProblem{{Field: "name", Message: "does not match the URL"}}
		return p
	}
	return nil
}

// mergePatch applies an RFC 7396 JSON merge patch to cur and decodes the
// result strictly into a new value.
func mergePatch[T any](cur T, patch map[string]json.RawMessage) (T, error) {
	var doc map[string]any
	raw, _ := json.Marshal(cur)
	_ = json.Unmarshal(raw, &doc)
	for _, f := range readOnly() {
		delete(doc, f)
	}
	var p map[string]any
	praw, _ := json.Marshal(patch)
	_ = json.Unmarshal(praw, &p)
	merged := mergeValue(doc, p)
	out, _ := json.Marshal(merged)
	var next T
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&next); err != nil {
		return next, badJSON(err)
	}
	return next, nil
}

func mergeValue(target any, patch any) any {
	pm, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	tm, ok := target.(map[string]any)
	if !ok {
		tm = map[string]any{}
	}
	for k, v := range pm {
		if v == nil {
			delete(tm, k)
			continue
		}
		tm[k] = mergeValue(tm[k], v)
	}
	return tm
}

func nodes(a *API) {
	register(a, resource[model.Node]{
		kind: "node", path: "nodes",
		name:    func(n *model.Node) *string { return &n.Name },
		rev:     func(n *model.Node) int64 { return n.Revision },
		get:     a.store.GetNode,
		create:  a.store.CreateNode,
		replace: a.store.ReplaceNode,
		del:     a.store.DeleteNode,
		list: func(r *http.Request, opts store.ListOptions) (any, error) {
			q := r.URL.Query()
			if rng := q.Get("range"); rng != "" {
				names, err := a.expand(r.Context(), rng)
				if err != nil {
					return nil, err
				}
				opts.Names = names
			}
			return a.store.ListNodes(r.Context(), opts, store.NodeFilter{
				Group: q.Get("group"), Tag: q.Get("tag"), State: model.NodeState(q.Get("state")), Query: q.Get("q"),
			})
		},
	})
}

// expand turns a noderange into node names, resolving @group from the
// store. A malformed range is a 400 naming the position of the mistake.
func (a *API) expand(ctx context.Context, rng string) ([]string, error) {
	names, err := noderange.Expand(rng, func(g string) ([]string, error) { return a.store.GroupMembers(ctx, g) })
	if err != nil {
		if store.IsKind(err, store.KindNotFound) {
			return nil, err
		}
		p := problem.New(http.StatusBadRequest, "bad-noderange", "Bad noderange", err.Error())
		p.Errors = []model.FieldProblem{{Field: "range", Message: err.Error()}}
		return nil, p
	}
	if names == nil {
		names = []string{}
	}
	return names, nil
}

func groups(a *API) {
	register(a, resource[model.Group]{
		kind: "group", path: "groups",
		name:    func(g *model.Group) *string { return &g.Name },
		rev:     func(g *model.Group) int64 { return g.Revision },
		get:     a.store.GetGroup,
		create:  a.store.CreateGroup,
		replace: a.store.ReplaceGroup,
		del:     a.store.DeleteGroup,
		list: func(r *http.Request, opts store.ListOptions) (any, error) {
			return a.store.ListGroups(r.Context(), opts)
		},
	})
}

func devices(a *API) {
	register(a, resource[model.Device]{
		kind: "device", path: "devices",
		name:    func(d *model.Device) *string { return &d.Name },
		rev:     func(d *model.Device) int64 { return d.Revision },
		get:     a.store.GetDevice,
		create:  a.store.CreateDevice,
		replace: a.store.ReplaceDevice,
		del:     a.store.DeleteDevice,
		list: func(r *http.Request, opts store.ListOptions) (any, error) {
			return a.store.ListDevices(r.Context(), opts, store.DeviceFilter{Kind: model.DeviceKind(r.URL.Query().Get("kind"))})
		},
	})
}

func connections(a *API) {
	base := Prefix + "/connections"
	a.handle("GET "+base, func(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
		opts, err := listOptions(r)
		if err != nil {
			return err
		}
		q := r.URL.Query()
		page, err := a.store.ListConnections(r.Context(), opts, store.ConnectionFilter{
			Kind: model.ConnectionKind(q.Get("kind")), Node: q.Get("node"), Device: q.Get("device"),
		})
		if err != nil {
			return err
		}
		return reply(w, http.StatusOK, page)
	})
	a.handle("POST "+base, func(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
		var c model.Connection
		if err := decode(r, &c); err != nil {
			return err
		}
		if c.ID != "" {
			return problem.New(http.StatusBadRequest, "bad-json", "Malformed JSON", "id is set by herd from kind, node and end; leave it out")
		}
		out, err := a.store.Connect(r.Context(), id.Actor(), c)
		if err != nil {
			return err
		}
		w.Header().Set("Location", base+"/"+out.ID)
		return reply(w, http.StatusCreated, out)
	})
	a.handle("GET "+base+"/{id}", func(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
		c, err := a.store.GetConnection(r.Context(), r.PathValue("id"))
		if err != nil {
			return err
		}
		return reply(w, http.StatusOK, c)
	})
	a.handle("DELETE "+base+"/{id}", func(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
		if err := a.store.Disconnect(r.Context(), id.Actor(), r.PathValue("id")); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}
