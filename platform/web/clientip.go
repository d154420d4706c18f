package web

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// The client's address. Fiber's own ProxyHeader setting is left off on purpose: with it, c.IP() answers the
// leftmost X-Forwarded-For entry, which the client writes itself, so even a trusted proxy that appends to the
// header would let any client choose its address. ClientIP instead walks the header from the right, past
// trusted proxies only.

const clientIPKey = "tamarack_client_ip"

// ParseTrustedProxies reads a comma-separated list of IP addresses and CIDR prefixes ("10.0.0.0/8,
// 192.0.2.7") into prefixes; every bad entry is reported.
func ParseTrustedProxies(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	var bad []string
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if strings.Contains(s, "/") {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				bad = append(bad, s)
				continue
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			bad = append(bad, s)
			continue
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("not an IP address or CIDR prefix: %s", strings.Join(bad, ", "))
	}
	return out, nil
}

// ClientIP is the address of the client that sent the request: the peer's, unless the peer is a trusted
// proxy (Config.TrustedProxies), in which case it is the rightmost X-Forwarded-For entry that is not itself
// a trusted proxy. Rate limits and audit entries must use it rather than c.IP().
func ClientIP(c *fiber.Ctx) string {
	if v, ok := c.Locals(clientIPKey).(string); ok {
		return v
	}
	return c.IP()
}

// clientIP resolves ClientIP once per request.
func clientIP(trusted []netip.Prefix) fiber.Handler {
	return func(c *fiber.Ctx) error {
		peer, _ := netip.AddrFromSlice(c.Context().RemoteIP())
		var xff []string
		for _, v := range c.Request().Header.PeekAll(fiber.HeaderXForwardedFor) {
			xff = append(xff, string(v))
		}
		c.Locals(clientIPKey, resolveClientIP(peer.Unmap(), xff, trusted).String())
		return c.Next()
	}
}

// resolveClientIP walks the forwarding chain from the peer back towards the client, as long as each hop
// is a trusted proxy. An entry that does not parse stops the walk at the last trusted hop: garbage written
// by a client must not become an address (it would dodge per-IP limits with every new string).
func resolveClientIP(peer netip.Addr, xff []string, trusted []netip.Prefix) netip.Addr {
	if !isTrusted(peer, trusted) {
		return peer
	}
	var hops []string
	for _, h := range xff {
		hops = append(hops, strings.Split(h, ",")...)
	}
	addr := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := parseHop(hops[i])
		if !ok {
			return addr
		}
		addr = a
		if !isTrusted(a, trusted) {
			return a
		}
	}
	return addr
}

// parseHop reads one X-Forwarded-For entry: an address, possibly with a port.
func parseHop(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
