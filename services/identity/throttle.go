package identity

import (
	"context"
	"fmt"
	"math"
	"time"

	"gorm.io/gorm"
)

// Sign-in throttling. Failed sign-ins are counted in identity_login_throttle, shared by every identity process
// on the database, under three keys:
//
//   - pair (account, client IP): the hard throttle. After PairFree failures each further failure makes that
//     client wait a delay that doubles from Base up to Max before it may try that account again.
//   - ip (client IP, all accounts): the same after IPFree failures, for one client spraying many accounts.
//   - acct (account, all IPs): never refuses anyone by itself. At AccountAlert failures the account is under
//     attack and its pairs get PairFreeUnderAttack free failures instead of PairFree, so guessers spread over
//     many addresses wait after their first miss.
//
// So a client that has not been failing against an account (no pair failures) and has not been spraying (its
// IP under IPFree) is never refused: a stranger cannot lock the owner out. Counters are keyed by the e-mail as
// typed (lower-cased), whether or not an account has it, so the answers never tell whether it exists.
//
// Every attempt is charged as a failure before the password is compared, in one transaction holding the
// counters' rows; a correct password then deletes the pair and refunds the other two. Charging first means a
// burst of concurrent guesses cannot all pass the check before the first failure is written.

// LoginThrottle is the throttling policy; zero fields take DefaultLoginThrottle's.
type LoginThrottle struct {
	PairFree            int           // failures of one (account, IP) before delays start
	PairFreeUnderAttack int           // the same while the account is under attack
	IPFree              int           // failures from one IP, over all accounts, before delays start
	AccountAlert        int           // failures on one account, from all IPs, that put it under attack
	Base                time.Duration // the first delay
	Max                 time.Duration // the longest delay
	Forget              time.Duration // a counter with no failure for this long starts again (and is pruned)
}

// DefaultLoginThrottle is the policy documented in docs/identity.md.
var DefaultLoginThrottle = LoginThrottle{PairFree: 5, PairFreeUnderAttack: 1, IPFree: 20, AccountAlert: 10,
	Base: time.Second, Max: 5 * time.Minute, Forget: time.Hour}

func (p LoginThrottle) withDefaults() LoginThrottle {
	d := DefaultLoginThrottle
	d = LoginThrottle{PairFree: positive(p.PairFree, d.PairFree), PairFreeUnderAttack: positive(p.PairFreeUnderAttack, d.PairFreeUnderAttack),
		IPFree: positive(p.IPFree, d.IPFree), AccountAlert: positive(p.AccountAlert, d.AccountAlert),
		Base: positive(p.Base, d.Base), Max: positive(p.Max, d.Max), Forget: positive(p.Forget, d.Forget)}
	// A counter must outlive its longest delay, or pruning would lift a throttle early.
	d.Forget = max(d.Forget, 2*d.Max)
	return d
}

// positive is v when it is set (above zero), else def.
func positive[T int | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

// delay is how long a client waits after its failures-th failure when free failures cost nothing: Base at
// the free-th, doubling with each further one, at most Max.
func (p LoginThrottle) delay(failures, free int) time.Duration {
	if failures < free || failures <= 0 {
		return 0
	}
	n := failures - free
	if n >= 62 || p.Base<<n > p.Max || p.Base<<n <= 0 {
		return p.Max
	}
	return p.Base << n
}

// counter is one row's state as of now: failures reset to zero once Forget has passed since the last one.
type counter struct {
	failures int
	last     time.Time
}

// throttleKeys are the rows one attempt touches.
type throttleKeys struct{ pair, ip, acct string }

func newThrottleKeys(email, ip string) throttleKeys {
	// NUL separates the pair's parts: it cannot be in an IP, so no other (e-mail, IP) hashes alike.
	return throttleKeys{pair: "pair:" + hashSecret(email+"\x00"+ip), ip: "ip:" + hashSecret(ip), acct: "acct:" + hashSecret(email)}
}

// charge is an attempt counted as a failure in advance; refund undoes it when the password was right.
type charge struct {
	keys     throttleKeys
	at       time.Time
	prevIP   counter
	prevAcct counter
}

// chargeAttempt counts one attempt as a failure of its three counters, unless the client must still wait:
// then it changes nothing and returns how long, and which counter refused ("account_ip" or "ip").
func (s *Service) chargeAttempt(ctx context.Context, k throttleKeys) (ch charge, wait time.Duration, by string, err error) {
	p := s.throttle
	err = s.tx(ctx, func(tx *gorm.DB) error {
		now := s.clock.Now()
		ch, wait, by = charge{keys: k, at: now}, 0, ""
		rows, err := lockThrottleRows(tx, k.pair, k.ip, k.acct)
		if err != nil {
			return err
		}
		pair, ip, acct := p.current(rows[k.pair], now), p.current(rows[k.ip], now), p.current(rows[k.acct], now)
		free := p.PairFree
		if acct.failures >= p.AccountAlert {
			free = p.PairFreeUnderAttack
		}
		if until := pair.last.Add(p.delay(pair.failures, free)); now.Before(until) {
			wait, by = until.Sub(now), "account_ip"
		}
		if until := ip.last.Add(p.delay(ip.failures, p.IPFree)); now.Before(until) && until.Sub(now) > wait {
			wait, by = until.Sub(now), "ip"
		}
		if wait > 0 {
			return nil
		}
		ch.prevIP, ch.prevAcct = rows[k.ip], rows[k.acct]
		return setThrottleRows(tx, now, map[string]int{k.pair: pair.failures + 1, k.ip: ip.failures + 1, k.acct: acct.failures + 1})
	})
	if err != nil {
		return charge{}, 0, "", fmt.Errorf("sign-in throttle: %w", err)
	}
	return ch, wait, by, nil
}

// current forgets failures older than Forget.
func (p LoginThrottle) current(c counter, now time.Time) counter {
	if c.failures > 0 && now.Sub(c.last) >= p.Forget {
		return counter{}
	}
	return c
}

// refund clears the (account, IP) counter after a correct password and takes the attempt back from the IP's
// and the account's, restoring their last failure time unless someone failed since.
func (s *Service) refund(ctx context.Context, ch charge) error {
	err := s.tx(ctx, func(tx *gorm.DB) error {
		if err := deleteThrottleRow(tx, ch.keys.pair); err != nil {
			return err
		}
		if err := refundThrottleRow(tx, ch.keys.ip, ch.at, ch.prevIP.last); err != nil {
			return err
		}
		return refundThrottleRow(tx, ch.keys.acct, ch.at, ch.prevAcct.last)
	})
	if err != nil {
		return fmt.Errorf("sign-in throttle: %w", err)
	}
	return nil
}

// PruneLoginThrottle deletes counters with no failure for Forget; Run calls it with the key maintenance.
func (s *Service) PruneLoginThrottle(ctx context.Context) (int64, error) {
	return pruneThrottle(s.db.WithContext(ctx), s.clock.Now().Add(-s.throttle.Forget))
}

func retrySeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}
