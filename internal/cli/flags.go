package cli

import "strings"

// keyValues parses repeated KEY=VALUE values of the flag named flag.
func keyValues(flag string, values []string) (map[string]string, error) {
	if len(values) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(values))
	for _, v := range values {
		k, val, ok := strings.Cut(v, "=")
		if !ok || k == "" {
			return nil, usagef("invalid --%s %q: want KEY=VALUE", flag, v)
		}
		m[k] = val
	}
	return m, nil
}
