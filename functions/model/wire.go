package model

import "time"

// LoginRequest is the body of POST /api/v1/login.
type LoginRequest struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

// LoginReply answers POST /api/v1/login: a session token to send as a
// bearer token until it expires.
type LoginReply struct {
	Token   string    `json:"token"`
	Expires time.Time `json:"expires"`
	User    User      `json:"user"`
}

// AuditFollowReply is one long-poll answer of GET /api/v1/audit/follow.
type AuditFollowReply struct {
	Items []AuditEvent `json:"items"`
	// After is the stream position to send next time.
	After string `json:"after"`
}

// NewUser is the body of POST /api/v1/users.
type NewUser struct {
	Name     string `json:"name"`
	Role     Role   `json:"role"`
	Password string `json:"password"`
}

// NewToken is the body of POST /api/v1/tokens.
type NewToken struct {
	Name string `json:"name"`
	// TTL such as "720h"; empty means the token does not expire.
	TTL string `json:"ttl,omitempty"`
}

// CreatedToken answers POST /api/v1/tokens; Secret is shown this once.
type CreatedToken struct {
	Token
	Secret string `json:"secret"`
}
