package preview

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// forwardingHeaders are proxy information that only the daemon, or a
// trusted proxy, may give; from anyone else they are dropped (as are the
// daemon's own X-Sandboxd-* headers, from everyone).
var forwardingHeaders = []string{"Forwarded", "X-Real-Ip", "X-Forwarded-Port", "X-Forwarded-Server", "X-Forwarded-Ssl"}

// setForwarded sets X-Forwarded-For, -Host and -Proto on the outgoing
// request and drops spoofable proxy and internal headers, and header
// names with '_'. From a trusted proxy, its X-Forwarded-* are kept (For
// is appended to).
func (p *Proxy) setForwarded(pr *httputil.ProxyRequest) {
	for k := range pr.Out.Header {
		// Names with '_' are dropped too, as nginx and gunicorn do: a
		// service that reads them with dashes (CGI and WSGI map both to
		// HTTP_X_FORWARDED_FOR) would take X_Forwarded_For for the
		// header this sets.
		if strings.HasPrefix(k, "X-Sandboxd-") || strings.ContainsRune(k, '_') {
			delete(pr.Out.Header, k)
		}
	}
	proto, host, trusted := p.forwarded(pr.In)
	if trusted {
		// Rewrite starts with no Forwarded or X-Forwarded-* on Out: a
		// trusted proxy's are put back (its X-Forwarded-For chain for
		// SetXForwarded to append to).
		for _, k := range []string{"Forwarded", "X-Forwarded-For"} {
			if v := pr.In.Header.Values(k); len(v) > 0 {
				pr.Out.Header[k] = v
			}
		}
	} else {
		for _, k := range forwardingHeaders {
			pr.Out.Header.Del(k)
		}
	}
	pr.SetXForwarded()
	if proto != "" {
		pr.Out.Header.Set("X-Forwarded-Proto", proto)
	}
	if host != "" {
		pr.Out.Header.Set("X-Forwarded-Host", host)
	}
}

// forwarded reports whether r comes straight from a trusted proxy
// (Config.TrustedProxies), and if so its X-Forwarded-Proto (http or https;
// anything else is ignored) and X-Forwarded-Host.
func (p *Proxy) forwarded(r *http.Request) (proto, host string, trusted bool) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil || !slices.ContainsFunc(p.cfg.TrustedProxies, func(pfx netip.Prefix) bool { return pfx.Contains(ap.Addr().Unmap()) }) {
		return "", "", false
	}
	if proto = r.Header.Get("X-Forwarded-Proto"); proto != "https" && proto != "http" {
		proto = ""
	}
	return proto, r.Header.Get("X-Forwarded-Host"), true
}

// URL returns the preview URL of port of sandbox id with token, as the
// client of r (an API call) sees it: the scheme r came in with (https
// behind a trusted TLS-terminating proxy), and the port of the host r
// addressed, if it named one.
func (p *Proxy) URL(r *http.Request, port int, id, token string) string {
	scheme, host, _ := p.forwarded(r)
	switch {
	case scheme != "":
	case r.TLS != nil:
		scheme = "https"
	default:
		scheme = "http"
	}
	if host == "" {
		host = r.Host
	}
	suffix := ""
	if _, lp, err := net.SplitHostPort(host); err == nil && lp != "" {
		suffix = ":" + lp
	}
	return scheme + "://" + strconv.Itoa(port) + "-" + id + "-" + token + p.suffix + suffix + "/"
}
