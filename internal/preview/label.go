package preview

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/sandboxd/sandboxd/internal/manager"
)

// label returns the label of a preview host ("{port}-{sandboxId}-{token}"
// of host, any port and case aside), and false for a host that is not
// one.
func (p *Proxy) label(host string) (string, bool) {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	label, ok := strings.CutSuffix(strings.TrimSuffix(strings.ToLower(host), "."), p.suffix)
	return label, ok && label != ""
}

// parseLabel splits "{port}-{sandboxId}-{token}". Sandbox IDs hold '-'
// but tokens and ports never do: the port ends at the first '-', the
// token starts after the last.
func parseLabel(label string) (port int, id, token string, err error) {
	i, j := strings.IndexByte(label, '-'), strings.LastIndexByte(label, '-')
	if i < 0 || j <= i+1 {
		return 0, "", "", fmt.Errorf("want {port}-{sandboxId}-{token}")
	}
	portStr, id, token := label[:i], label[i+1:j], label[j+1:]
	port, err = strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 || strconv.Itoa(port) != portStr {
		return 0, "", "", fmt.Errorf("port %q", portStr)
	}
	if !validID(id) { // the host is lower case already
		return 0, "", "", fmt.Errorf("sandbox id %q", label[i+1:j])
	}
	if !manager.ValidToken(token) {
		return 0, "", "", fmt.Errorf("token %q: want 1-16 characters of [a-z0-9_]", token)
	}
	return port, id, token, nil
}

// validID reports whether id is a valid lower-case sandbox ID, as
// manager.NormalizeID checks it (1-63 characters of [a-z0-9-], not
// starting or ending with '-'), without a regexp: it runs on every
// preview request.
func validID(id string) bool {
	if len(id) < 1 || len(id) > 63 || id[0] == '-' || id[len(id)-1] == '-' {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
