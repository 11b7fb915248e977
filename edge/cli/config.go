package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/herd-hpc/herd/functions/client"
)

// credentials is what herd login stores: the server and a session token
// for it.
type credentials struct {
	Server  string    `json:"server"`
	User    string    `json:"user,omitempty"`
	Token   string    `json:"token,omitempty"`
	Expires time.Time `json:"expires,omitzero"`
}

// credentialsPath is $HERD_CONFIG, else credentials under the user's config
// directory ($XDG_CONFIG_HOME/herd, else ~/.config/herd).
func (a *app) credentialsPath() (string, error) {
	if p := a.getenv("HERD_CONFIG"); p != "" {
		return p, nil
	}
	if d := a.getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "herd", "credentials"), nil
	}
	if h := a.getenv("HOME"); h != "" {
		return filepath.Join(h, ".config", "herd", "credentials"), nil
	}
	return "", errors.New("neither HERD_CONFIG nor HOME is set, so there is nowhere to keep credentials")
}

// loadCredentials reads the credentials file; a missing file is no login.
func (a *app) loadCredentials() (credentials, string, error) {
	var c credentials
	path, err := a.credentialsPath()
	if err != nil {
		return c, "", err
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, path, nil
	}
	if err != nil {
		return c, path, fmt.Errorf("read credentials: %w", err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, path, fmt.Errorf("read credentials %s: %w (delete the file and log in again)", path, err)
	}
	return c, path, nil
}

// saveCredentials writes c to path readable by the owner only, atomically:
// a temporary file in the same directory renamed over the old one, so a
// crash never leaves half a file.
func saveCredentials(path string, c credentials) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save credentials: %w", err)
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("save credentials: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".credentials-*")
	if err != nil {
		return fmt.Errorf("save credentials: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("save credentials: %w", err)
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("save credentials: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save credentials: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save credentials: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save credentials: %w", err)
	}
	return nil
}

// serverURL picks the API: --server, else $HERD_SERVER, else the server
// logged in to, else DefaultServer.
func (a *app) serverURL(flagValue string, stored credentials) (string, error) {
	s := flagValue
	if s == "" {
		s = a.server
	}
	if s == "" {
		s = a.getenv("HERD_SERVER")
	}
	if s == "" {
		s = stored.Server
	}
	if s == "" {
		s = DefaultServer
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", &usageError{msg: fmt.Sprintf("server %q is not a URL such as https://herd.example.org", s)}
	}
	return strings.TrimRight(s, "/"), nil
}

// session is who the CLI talks to and as whom.
type session struct {
	server string
	token  string
	// fromEnv is true when the token came from HERD_TOKEN.
	fromEnv bool
	creds   credentials
}

// session resolves the server and token. The stored token goes only to the
// server it was issued by.
func (a *app) session() (session, error) {
	creds, _, err := a.loadCredentials()
	if err != nil {
		return session{}, err
	}
	server, err := a.serverURL("", creds)
	if err != nil {
		return session{}, err
	}
	s := session{server: server, creds: creds}
	if t := a.getenv("HERD_TOKEN"); t != "" {
		s.token, s.fromEnv = t, true
	} else if creds.Token != "" && sameServer(creds.Server, server) {
		s.token = creds.Token
	}
	return s, nil
}

func sameServer(a, b string) bool {
	return strings.TrimRight(a, "/") == strings.TrimRight(b, "/")
}

// client returns an API client for the resolved server and token.
func (a *app) client() (*client.Client, error) {
	s, err := a.session()
	if err != nil {
		return nil, err
	}
	return client.New(s.server, s.token, nil), nil
}
