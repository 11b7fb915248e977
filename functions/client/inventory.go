package client

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/herd-hpc/herd/functions/model"
)

// NodeQuery filters a node list. Range is a noderange (node[01-10],@gpu).
type NodeQuery struct {
	Range, Group, Tag, State, Text string
	ListOptions
}

func (q NodeQuery) values() url.Values {
	v := q.ListOptions.values()
	v.Set("range", q.Range)
	v.Set("group", q.Group)
	v.Set("tag", q.Tag)
	v.Set("state", q.State)
	v.Set("q", q.Text)
	return v
}

func (c *Client) nodes() objects[model.Node]     { return objects[model.Node]{c, "/nodes"} }
func (c *Client) groups() objects[model.Group]   { return objects[model.Group]{c, "/groups"} }
func (c *Client) devices() objects[model.Device] { return objects[model.Device]{c, "/devices"} }

// ListNodes returns one page of nodes.
func (c *Client) ListNodes(ctx context.Context, q NodeQuery) (model.Page[model.Node], error) {
	return c.nodes().list(ctx, q.values())
}

// AllNodes returns every node the query selects, following pages.
func (c *Client) AllNodes(ctx context.Context, q NodeQuery) ([]model.Node, error) {
	return c.nodes().all(ctx, q.values())
}

// GetNode reads one node; its Revision is the ETag for a later update.
func (c *Client) GetNode(ctx context.Context, name string) (model.Node, error) {
	return c.nodes().get(ctx, name)
}

// CreateNode adds a node.
func (c *Client) CreateNode(ctx context.Context, n model.Node) (model.Node, error) {
	return c.nodes().create(ctx, n)
}

// ReplaceNode stores n; rev, when not zero, must be the current revision.
func (c *Client) ReplaceNode(ctx context.Context, n model.Node, rev int64) (model.Node, error) {
	return c.nodes().replace(ctx, n.Name, n, rev)
}

// PatchNode applies a JSON merge patch (nil values delete fields).
func (c *Client) PatchNode(ctx context.Context, name string, patch map[string]any, rev int64) (model.Node, error) {
	return c.nodes().patch(ctx, name, patch, rev)
}

// DeleteNode removes a node and its connections.
func (c *Client) DeleteNode(ctx context.Context, name string, rev int64) error {
	return c.nodes().delete(ctx, name, rev)
}

// ListGroups returns one page of groups.
func (c *Client) ListGroups(ctx context.Context, o ListOptions) (model.Page[model.Group], error) {
	return c.groups().list(ctx, o.values())
}

// AllGroups returns every group.
func (c *Client) AllGroups(ctx context.Context) ([]model.Group, error) {
	return c.groups().all(ctx, url.Values{})
}

// GetGroup reads one group.
func (c *Client) GetGroup(ctx context.Context, name string) (model.Group, error) {
	return c.groups().get(ctx, name)
}

// CreateGroup adds a group.
func (c *Client) CreateGroup(ctx context.Context, g model.Group) (model.Group, error) {
	return c.groups().create(ctx, g)
}

// ReplaceGroup stores g.
func (c *Client) ReplaceGroup(ctx context.Context, g model.Group, rev int64) (model.Group, error) {
	return c.groups().replace(ctx, g.Name, g, rev)
}

// PatchGroup applies a JSON merge patch to a group.
func (c *Client) PatchGroup(ctx context.Context, name string, patch map[string]any, rev int64) (model.Group, error) {
	return c.groups().patch(ctx, name, patch, rev)
}

// DeleteGroup removes a group with no members.
func (c *Client) DeleteGroup(ctx context.Context, name string, rev int64) error {
	return c.groups().delete(ctx, name, rev)
}

// AllDevices returns every device, optionally of one kind.
func (c *Client) AllDevices(ctx context.Context, kind model.DeviceKind) ([]model.Device, error) {
	return c.devices().all(ctx, url.Values{"kind": {string(kind)}})
}

// GetDevice reads one device.
func (c *Client) GetDevice(ctx context.Context, name string) (model.Device, error) {
	return c.devices().get(ctx, name)
}

// CreateDevice adds a switch or PDU.
func (c *Client) CreateDevice(ctx context.Context, d model.Device) (model.Device, error) {
	return c.devices().create(ctx, d)
}

// PatchDevice applies a JSON merge patch to a device.
func (c *Client) PatchDevice(ctx context.Context, name string, patch map[string]any, rev int64) (model.Device, error) {
	return c.devices().patch(ctx, name, patch, rev)
}

// DeleteDevice removes a device nothing is connected to.
func (c *Client) DeleteDevice(ctx context.Context, name string, rev int64) error {
	return c.devices().delete(ctx, name, rev)
}

// ConnectionQuery filters connections.
type ConnectionQuery struct {
	Kind, Node, Device string
}

// AllConnections returns every connection the query selects.
func (c *Client) AllConnections(ctx context.Context, q ConnectionQuery) ([]model.Connection, error) {
	return objects[model.Connection]{c, "/connections"}.all(ctx, url.Values{"kind": {q.Kind}, "node": {q.Node}, "device": {q.Device}})
}

// Connect records a node end plugged into a device port or outlet.
func (c *Client) Connect(ctx context.Context, conn model.Connection) (model.Connection, error) {
	return objects[model.Connection]{c, "/connections"}.create(ctx, conn)
}

// Disconnect removes a connection by id.
func (c *Client) Disconnect(ctx context.Context, id string) error {
	return objects[model.Connection]{c, "/connections"}.delete(ctx, id, 0)
}

// AuditQuery filters the audit log. Since and Until take RFC 3339 times or
// durations ago ("24h").
type AuditQuery struct {
	Since, Until, User, Kind, Method, Ref string
	ListOptions
}

func (q AuditQuery) values() url.Values {
	v := q.ListOptions.values()
	v.Set("since", q.Since)
	v.Set("until", q.Until)
	v.Set("user", q.User)
	v.Set("kind", q.Kind)
	v.Set("method", q.Method)
	v.Set("ref", q.Ref)
	return v
}

// Audit returns one page of audit events, newest first.
func (c *Client) Audit(ctx context.Context, q AuditQuery) (model.Page[model.AuditEvent], error) {
	var page model.Page[model.AuditEvent]
	_, err := c.do(ctx, http.MethodGet, withQuery("/audit", q.values()), nil, nil, &page)
	return page, err
}

// FollowAudit waits up to wait for events after the stream position after
// ("" for from now on) and returns them oldest first with the next position.
func (c *Client) FollowAudit(ctx context.Context, q AuditQuery, after string, wait time.Duration) (model.AuditFollowReply, error) {
	v := q.values()
	v.Set("after", after)
	v.Set("wait", wait.String())
	var out model.AuditFollowReply
	_, err := c.do(ctx, http.MethodGet, withQuery("/audit/follow", v), nil, nil, &out)
	return out, err
}

// ListUsers returns every account.
func (c *Client) ListUsers(ctx context.Context) ([]model.User, error) {
	var page model.Page[model.User]
	_, err := c.do(ctx, http.MethodGet, "/users", nil, nil, &page)
	return page.Items, err
}

// CreateUser adds an account.
func (c *Client) CreateUser(ctx context.Context, u model.NewUser) (model.User, error) {
	var out model.User
	_, err := c.do(ctx, http.MethodPost, "/users", nil, u, &out)
	return out, err
}

// DeleteUser removes an account and its tokens.
func (c *Client) DeleteUser(ctx context.Context, name string) error {
	_, err := c.do(ctx, http.MethodDelete, "/users/"+url.PathEscape(name), nil, nil, nil)
	return err
}

// CreateToken makes an API token for the calling user.
func (c *Client) CreateToken(ctx context.Context, t model.NewToken) (model.CreatedToken, error) {
	var out model.CreatedToken
	_, err := c.do(ctx, http.MethodPost, "/tokens", nil, t, &out)
	return out, err
}

// ListTokens lists the calling user's tokens.
func (c *Client) ListTokens(ctx context.Context) ([]model.Token, error) {
	var page model.Page[model.Token]
	_, err := c.do(ctx, http.MethodGet, "/tokens", nil, nil, &page)
	return page.Items, err
}

// DeleteToken revokes one of the calling user's tokens.
func (c *Client) DeleteToken(ctx context.Context, id string) error {
	_, err := c.do(ctx, http.MethodDelete, "/tokens/"+url.PathEscape(id), nil, nil, nil)
	return err
}
