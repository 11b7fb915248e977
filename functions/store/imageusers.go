package store

import (
	"context"
	"fmt"
	"strings"
)

// maxNamedUsers is how many users an InUseError names before "and N more".
const maxNamedUsers = 10

// ImageUser is a group or node whose settings name an image.
type ImageUser struct {
	Kind   string // "group" or "node"
	Name   string
	Branch string // the branch the settings name; "" follows the image's live branch
	// Via is the group a node inherits the image from; "" when the
	// node's own settings name it.
	Via string
	// OwnBranch says the node's own settings name the branch.
	OwnBranch bool
}

// String names the user as refusals do: "node node001", "group compute".
func (u ImageUser) String() string { return u.Kind + " " + u.Name }

// ImageUsers returns the groups and nodes that boot image: groups by their
// own settings, nodes by their effective ones (inherited from the group),
// groups first, each sorted by name.
func (s *Store) ImageUsers(ctx context.Context, image string) ([]ImageUser, error) {
	var out []ImageUser
	for opts := (ListOptions{Limit: 1000}); ; {
		page, err := s.ListGroups(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("find users of image %q: %w", image, err)
		}
		for _, g := range page.Items {
			if g.Image == image {
				out = append(out, ImageUser{Kind: "group", Name: g.Name, Branch: g.Branch})
			}
		}
		if opts.Cursor = page.Next; opts.Cursor == "" {
			break
		}
	}
	for opts := (ListOptions{Limit: 1000}); ; {
		page, err := s.ListNodes(ctx, opts, NodeFilter{})
		if err != nil {
			return nil, fmt.Errorf("find users of image %q: %w", image, err)
		}
		for _, n := range page.Items {
			eff := n.Settings
			if n.Effective != nil {
				eff = *n.Effective
			}
			if eff.Image != image {
				continue
			}
			u := ImageUser{Kind: "node", Name: n.Name, Branch: eff.Branch, OwnBranch: n.Branch != ""}
			if n.Image == "" {
				u.Via = n.Group
			}
			out = append(out, u)
		}
		if opts.Cursor = page.Next; opts.Cursor == "" {
			break
		}
	}
	return out, nil
}

// InUseError refuses to delete or rename an image or branch that groups or
// nodes boot: they would be left pointing at nothing.
type InUseError struct {
	What  string   // "image rocky-9", "branch testing of image rocky-9"
	Users []string // "group compute", "node node001", …
}

func (e *InUseError) Error() string {
	users, more := e.Users, ""
	if len(users) > maxNamedUsers {
		more = fmt.Sprintf(" and %d more", len(users)-maxNamedUsers)
		users = users[:maxNamedUsers]
	}
	return fmt.Sprintf("%s is used by %s%s; point them elsewhere first", e.What, strings.Join(users, ", "), more)
}

// CheckImageUnused returns an *InUseError naming the groups and nodes that
// use image (only branch of it, when branch is not ""), or nil when none
// do. A node is named when its own settings name what would go (the image,
// or the branch); one that inherits it from its group is not named apart:
// naming the group says where to change it.
func (s *Store) CheckImageUnused(ctx context.Context, image, branch string) error {
	users, err := s.ImageUsers(ctx, image)
	if err != nil {
		return err
	}
	e := &InUseError{What: "image " + image}
	if branch != "" {
		e.What = fmt.Sprintf("branch %s of image %s", branch, image)
	}
	for _, u := range users {
		if branch != "" && u.Branch != branch {
			continue
		}
		if u.Kind == "node" && u.Via != "" && (branch == "" || !u.OwnBranch) {
			continue
		}
		e.Users = append(e.Users, u.String())
	}
	if len(e.Users) == 0 {
		return nil
	}
	return e
}
