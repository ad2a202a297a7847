package api

// ExposePortRequest is the body of POST /v1/sandboxes/{id}/ports.
type ExposePortRequest struct {
	// Port is the TCP port inside the sandbox: 1024-65535, not one of the
	// ports the system itself uses.
	Port int `json:"port"`
	// Name is a label for the port, shown in listings.
	Name string `json:"name,omitempty"`
	// Token is the preview URL's token, [a-z0-9_]{1,16}; empty makes the
	// daemon pick a random one. Re-exposing a port keeps its token; asking
	// for a different one is PORT_ALREADY_EXPOSED.
	Token string `json:"token,omitempty"`
}

// ExposedPort describes one exposed port of a sandbox.
type ExposedPort struct {
	Port  int    `json:"port"`
	Name  string `json:"name"`
	Token string `json:"token"`
	// ExposedAt is the preview URL:
	// http(s)://{port}-{sandboxId}-{token}.{previewDomain}[:listenPort]/
	ExposedAt string `json:"exposedAt"`
}

// ExposedPortList is the body of GET /v1/sandboxes/{id}/ports.
type ExposedPortList struct {
	Ports []ExposedPort `json:"ports"`
	Count int           `json:"count"`
}
