// Package eaton drives Eaton Rack PDU G4 network cards (Network-M2 class)
// through their REST API at /rest/mbdetnrs/2.0, as power.PDU driver
// "eaton-g4".
//
// The calls it makes, as Eaton's published API describes them (the "Rack
// PDU G4" Postman collection and the network card user guide; what is
// public of them was read through third-party clients written from those
// documents, not from a card):
//
//   - POST /rest/mbdetnrs/2.0/oauth2/token/ with the JSON body
//     {"grant_type": "password", "scope": "GUIPolicy", "username", "password"}
//     → {"access_token", "token_type": "Bearer", "expires_in", "session"};
//     the token goes in "Authorization: Bearer …" on every later call, and
//     a call with an expired token is refused with 401.
//     A wrong password is refused with 401; a login while the account
//     already has a session with 403 (code "ConcurrentSession", spelt
//     "ConcurentSession" by some firmware): the card allows one session per
//     account.
//   - GET /rest/mbdetnrs/2.0/powerDistributions/1/outlets/{n} → the outlet,
//     whose status.switchedOn says whether it is on.
//   - POST /rest/mbdetnrs/2.0/powerDistributions/1/outlets/{n}/actions/switchOn
//     and …/actions/switchOff switch it.
//   - DELETE /rest + session (/mbdetnrs/2.0/sessionService/sessions/{id})
//     logs out.
//
// One Client holds one session for its account and shares it between all
// callers; it logs in again only when the token has expired or a call was
// refused with 401, and it never logs in twice at once, so herd itself never
// trips the one-session rule. The card's self-signed certificate is pinned
// by its SHA-256 fingerprint (power.TLSConfig).
package eaton

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/herd-hpc/herd/edge/power"
	"github.com/herd-hpc/herd/functions/model"
)

// Driver is the name OutletTarget.Driver carries for this driver.
const Driver = "eaton-g4"

const api = "/rest/mbdetnrs/2.0"

// ErrConcurrentSession means the card refused the login because the
// account already has a session: someone is logged in to the web interface
// with it, or another edge uses it, or this edge lost its session when it
// stopped (the card ends that one after its inactivity timeout).
var ErrConcurrentSession = errors.New("the account already has a session on the card, which allows one per account: give herd an account of its own, or wait for the card to end the old session")

// Client is one account's session on one card. It is safe for concurrent
// use.
type Client struct {
	cfg  power.PDUConfig
	base string
	http *http.Client

	// login serialises logins; mu guards the session fields.
	login   sync.Mutex
	mu      sync.Mutex
	token   string
	session string
}

// New returns a client for the card at cfg.Address; it logs in on first
// use.
func New(cfg power.PDUConfig) (*Client, error) {
	if cfg.Address == "" {
		return nil, errors.New("eaton: no card address")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 20 * time.Second
	}
	tlsConfig, err := power.TLSConfig(cfg.Fingerprint)
	if err != nil {
		return nil, fmt.Errorf("eaton card %s: %w", cfg.Address, err)
	}
	return &Client{
		cfg:  cfg,
		base: "https://" + cfg.Address,
		http: &http.Client{
			Timeout:   cfg.Timeout,
			Transport: &http.Transport{TLSClientConfig: tlsConfig, MaxIdleConnsPerHost: 4, IdleConnTimeout: time.Minute},
		},
	}, nil
}

// NewPDU is New as a power.NewPDU, for power.PDUDrivers.
func NewPDU(cfg power.PDUConfig) (power.PDU, error) { return New(cfg) }

// OutletState reads outlet n's status.switchedOn.
func (c *Client) OutletState(ctx context.Context, outlet string) (model.PowerState, error) {
	path, err := outletPath(outlet)
	if err != nil {
		return model.PowerStateUnknown, err
	}
	var body struct {
		Status struct {
			SwitchedOn *bool `json:"switchedOn"`
		} `json:"status"`
	}
	if err := c.call(ctx, http.MethodGet, path, &body); err != nil {
		return model.PowerStateUnknown, fmt.Errorf("read outlet %s on %s: %w", outlet, c.cfg.Address, err)
	}
	if body.Status.SwitchedOn == nil {
		return model.PowerStateUnknown, fmt.Errorf("read outlet %s on %s: the answer has no status.switchedOn", outlet, c.cfg.Address)
	}
	if *body.Status.SwitchedOn {
		return model.PowerStateOn, nil
	}
	return model.PowerStateOff, nil
}

// Switch runs the outlet's switchOn or switchOff action.
func (c *Client) Switch(ctx context.Context, outlet string, on bool) error {
	path, err := outletPath(outlet)
	if err != nil {
		return err
	}
	action := "/actions/switchOff"
	if on {
		action = "/actions/switchOn"
	}
	if err := c.call(ctx, http.MethodPost, path+action, nil); err != nil {
		return fmt.Errorf("%s outlet %s on %s: %w", strings.TrimPrefix(action, "/actions/"), outlet, c.cfg.Address, err)
	}
	return nil
}

// Close logs the session out, so the account is free for the next login
// (this edge's next start, or an admin).
func (c *Client) Close(ctx context.Context) error {
	c.login.Lock()
	defer c.login.Unlock()
	c.mu.Lock()
	token, session := c.token, c.session
	c.token, c.session = "", ""
	c.mu.Unlock()
	defer c.http.CloseIdleConnections()
	if token == "" || session == "" {
		return nil
	}
	status, _, err := c.send(ctx, http.MethodDelete, "/rest"+session, token, nil)
	if err != nil {
		return fmt.Errorf("log out of %s: %w", c.cfg.Address, err)
	}
	if status != http.StatusOK && status != http.StatusNoContent && status != http.StatusUnauthorized {
		return fmt.Errorf("log out of %s: HTTP %d", c.cfg.Address, status)
	}
	return nil
}

// call makes one authenticated call, logging in first when there is no
// live token and once more when the card refuses the token.
func (c *Client) call(ctx context.Context, method, path string, out any) error {
	for attempt := 0; ; attempt++ {
		token, err := c.currentToken(ctx)
		if err != nil {
			return err
		}
		var body []byte
		if method == http.MethodPost {
			body = []byte("{}")
		}
		status, answer, err := c.send(ctx, method, api+path, token, body)
		if err != nil {
			return err
		}
		if status == http.StatusUnauthorized && attempt == 0 {
			// The token expired early or the card restarted: log in again.
			c.forget(token)
			continue
		}
		if status < 200 || status > 299 {
			return fmt.Errorf("HTTP %d: %s", status, describe(answer))
		}
		if out != nil {
			if err := json.Unmarshal(answer, out); err != nil {
				return fmt.Errorf("read answer: %w", err)
			}
		}
		return nil
	}
}

// currentToken returns the live token, logging in if there is none.
func (c *Client) currentToken(ctx context.Context) (string, error) {
	c.login.Lock()
	defer c.login.Unlock()
	c.mu.Lock()
	token := c.token
	c.mu.Unlock()
	// The token is used until the card refuses it (call then logs in
	// again). Renewing it early by expires_in would log in while the old
	// session still lives, which the one-session rule refuses.
	if token != "" {
		return token, nil
	}
	return c.logIn(ctx)
}

func (c *Client) logIn(ctx context.Context) (string, error) {
	request, err := json.Marshal(map[string]string{
		"grant_type": "password",
		"scope":      "GUIPolicy",
		"username":   c.cfg.Username,
		"password":   c.cfg.Password,
	})
	if err != nil {
		return "", err
	}
	status, answer, err := c.send(ctx, http.MethodPost, api+"/oauth2/token/", "", request)
	if err != nil {
		return "", fmt.Errorf("log in to %s as %q: %w", c.cfg.Address, c.cfg.Username, err)
	}
	switch {
	case status == http.StatusForbidden && mentionsSession(answer):
		return "", fmt.Errorf("log in to %s as %q: %w", c.cfg.Address, c.cfg.Username, ErrConcurrentSession)
	case status == http.StatusUnauthorized || status == http.StatusForbidden || status == http.StatusBadRequest:
		return "", fmt.Errorf("log in to %s as %q: %w (HTTP %d: %s)", c.cfg.Address, c.cfg.Username, power.ErrRefused, status, describe(answer))
	case status != http.StatusOK && status != http.StatusCreated:
		return "", fmt.Errorf("log in to %s as %q: HTTP %d: %s", c.cfg.Address, c.cfg.Username, status, describe(answer))
	}
	var grant struct {
		AccessToken string `json:"access_token"`
		Session     string `json:"session"`
	}
	if err := json.Unmarshal(answer, &grant); err != nil || grant.AccessToken == "" {
		return "", fmt.Errorf("log in to %s as %q: no access_token in the answer", c.cfg.Address, c.cfg.Username)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.token, c.session = grant.AccessToken, grant.Session
	return c.token, nil
}

// forget drops a token the card refused, unless another caller has already
// replaced it.
func (c *Client) forget(token string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token == token {
		c.token, c.session = "", ""
	}
}

// send makes one HTTP request and reads the whole answer. Request bodies
// are never put in errors: the login carries the password.
func (c *Client) send(ctx context.Context, method, path, token string, body []byte) (int, []byte, error) {
	var reader io.Reader
	if body != nil {
		reader = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, reader)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, nil, fmt.Errorf("read answer: %w", err)
	}
	return resp.StatusCode, answer, nil
}

// outletPath checks an outlet id: the G4 numbers its outlets from 1.
func outletPath(outlet string) (string, error) {
	n, err := strconv.Atoi(outlet)
	if err != nil || n < 1 || strconv.Itoa(n) != outlet {
		return "", fmt.Errorf("outlet %q: the Eaton G4 numbers outlets 1, 2, 3…", outlet)
	}
	return "/powerDistributions/1/outlets/" + outlet, nil
}

func mentionsSession(answer []byte) bool {
	s := strings.ToLower(string(answer))
	return strings.Contains(s, "concurrentsession") || strings.Contains(s, "concurentsession") || strings.Contains(s, "session")
}

// describe picks the card's own words from an error answer.
func describe(answer []byte) string {
	var e struct {
		Code        string `json:"code"`
		Description string `json:"description"`
	}
	if json.Unmarshal(answer, &e) == nil && (e.Code != "" || e.Description != "") {
		return strings.TrimSpace(e.Code + " " + e.Description)
	}
	s := strings.Join(strings.Fields(string(answer)), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
