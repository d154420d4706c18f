package identity

import (
	"sync"
	"testing"
)

// TestConcurrentRefreshOfOneToken: two refreshes racing with one token cannot both win; the loser is a reuse,
// which revokes the family, so neither new token survives.
func TestConcurrentRefreshOfOneToken(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *tenv) {
		a := e.signup("race@example.com", "Org", "sme")
		var wg sync.WaitGroup
		results := make([]resp, 2)
		for i := range results {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				results[i] = e.do("POST", api+"/refresh", "", map[string]any{"refresh_token": a.refresh})
			}(i)
		}
		wg.Wait()
		ok := 0
		for _, r := range results {
			switch {
			case r.status == 200:
				ok++
			case r.status == 401 && r.code() == "refresh_reused":
			default:
				t.Fatalf("unexpected answer %d %s", r.status, r.raw)
			}
		}
		if ok != 1 {
			t.Fatalf("%d refreshes of one token succeeded, want exactly 1", ok)
		}
		for _, r := range results {
			if r.status == 200 {
				want(t, e.do("POST", api+"/refresh", "", map[string]any{"refresh_token": r.str("refresh_token")}), 401, "invalid_refresh_token")
			}
		}
	})
}

// TestConcurrentOwnerDemotions: two owners demoting each other at once leave at least one owner.
func TestConcurrentOwnerDemotions(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, e *tenv) {
		a := e.signup("a@example.com", "Org", "vendor")
		b := e.signup("b@example.com", "B's", "sme")
		base := api + "/organizations/" + a.orgID + "/members"
		want(t, e.do("POST", base, a.access, map[string]any{"email": b.email, "role": "owner"}), 201, "")
		want(t, e.do("POST", api+"/invitations/"+e.inviteToken()+"/accept", b.access, nil), 200, "")
		bIn := e.login(b.email, a.orgID)

		var wg sync.WaitGroup
		res := make([]resp, 2)
		wg.Add(2)
		go func() {
			defer wg.Done()
			res[0] = e.do("PATCH", base+"/"+b.userID, a.access, map[string]any{"role": "member"})
		}()
		go func() {
			defer wg.Done()
			res[1] = e.do("PATCH", base+"/"+a.userID, bIn.access, map[string]any{"role": "member"})
		}()
		wg.Wait()
		n, err := countOwners(e.db, a.orgID)
		if err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Fatalf("%d owners left (answers %d %s / %d %s)", n, res[0].status, res[0].code(), res[1].status, res[1].code())
		}
	})
}
