package testbed

import (
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/tamarack-ai/tamarack/platform/sqldb"
)

// Queries. Every function takes the *gorm.DB (or transaction) to run on and maps not-found and duplicate
// keys to the service's problems. A read on behalf of a caller takes the caller's organisation and filters
// by it here, so tenancy holds where data is read; reads that cross organisations (programme staff, the
// supervisor, the scheduler, agents' reports checked against the agent that sent them) have their own
// functions, each saying why.

func mapNotFound(err, sentinel error) error {
	if sqldb.IsNotFound(err) {
		return sentinel
	}
	return err
}

func lockIf(db *gorm.DB, lock bool) *gorm.DB {
	if lock {
		return sqldb.ForUpdate(db)
	}
	return db
}

// Sandboxes.

// sandboxOfOrg is a sandbox of the caller's organisation; another organisation's answers not found.
func sandboxOfOrg(db *gorm.DB, orgID, id string) (Sandbox, error) {
	var sb Sandbox
	err := db.Where("id = ? AND org_id = ?", id, orgID).Take(&sb).Error
	return sb, mapNotFound(err, ErrSandboxNotFound)
}

// sandboxOfOrgs is a sandbox of any of the organisations a caller belongs to (an SSH key's owner, who is a
// member of several); others answer not found.
func sandboxOfOrgs(db *gorm.DB, orgIDs []string, id string) (Sandbox, error) {
	var sb Sandbox
	if len(orgIDs) == 0 {
		return sb, ErrSandboxNotFound
	}
	err := db.Where("id = ? AND org_id IN ?", id, orgIDs).Take(&sb).Error
	return sb, mapNotFound(err, ErrSandboxNotFound)
}

// anySandbox is a sandbox of whatever organisation: for staff (who see every organisation's) and for the
// testbed's own work on a sandbox already authorised or reported by the agent that runs it.
func anySandbox(db *gorm.DB, id string) (Sandbox, error) {
	var sb Sandbox
	err := db.Where("id = ?", id).Take(&sb).Error
	return sb, mapNotFound(err, ErrSandboxNotFound)
}

// lockSandbox loads a sandbox for update inside tx. Internal: every state change goes through Service.update,
// whose callers have checked who asks.
func lockSandbox(tx *gorm.DB, id string) (Sandbox, error) {
	var sb Sandbox
	err := sqldb.ForUpdate(tx).Where("id = ?", id).Take(&sb).Error
	return sb, mapNotFound(err, ErrSandboxNotFound)
}

// sandboxExists reports whether a sandbox is recorded. Internal: reconciliation asks it of a backend's
// sandbox it found no live record for.
func sandboxExists(db *gorm.DB, id string) (bool, error) {
	var n int64
	err := db.Model(&Sandbox{}).Where("id = ?", id).Count(&n).Error
	return n > 0, err
}

// sandboxesOfOrg lists an organisation's sandboxes, newest first, from after on (limit+1 rows, for the
// next page's cursor).
func sandboxesOfOrg(db *gorm.DB, orgID, state string, limit int, after *SandboxCursor) ([]Sandbox, error) {
	q := db.Where("org_id = ?", orgID)
	if state != "" {
		q = q.Where("state = ?", state)
	}
	if after != nil {
		created := time.UnixMilli(after.CreatedMS).UTC()
		q = q.Where("created_at < ? OR (created_at = ? AND id < ?)", created, created, after.ID)
	}
	var out []Sandbox
	return out, q.Order("created_at DESC, id DESC").Limit(limit + 1).Find(&out).Error
}

// liveSandboxes lists every sandbox that has not ended. Internal: the supervisor and the scheduler's index
// look after every organisation's.
func liveSandboxes(db *gorm.DB) ([]Sandbox, error) {
	var out []Sandbox
	return out, db.Where("state NOT IN ?", []string{StateStopped, StateFailed}).Find(&out).Error
}

// mountingSandboxes lists an organisation's sandboxes that have not ended and mount a listing's files.
// Internal: a revoked entitlement stops them (ApplyEntitlement).
func mountingSandboxes(db *gorm.DB, orgID, listingID string) ([]Sandbox, error) {
	var out []Sandbox
	return out, db.Where("org_id = ? AND mount_listing_id = ? AND state NOT IN ?", orgID, listingID,
		[]string{StateStopping, StateStopped, StateFailed}).Order("id").Find(&out).Error
}

// gatedSandboxes lists the IDs of an organisation's sandboxes launched from a listing while it is gated (and
// not the organisation's own), not ending yet: a revocation of the organisation's entitlement stops them.
func gatedSandboxes(tx *gorm.DB, orgID, listingID string) ([]string, error) {
	var ids []string
	return ids, tx.Model(&Sandbox{}).
		Where("org_id = ? AND listing_id = ? AND vendor_org_id <> org_id AND state NOT IN ?", orgID, listingID,
			[]string{StateStopping, StateStopped, StateFailed}).
		Where("EXISTS (SELECT 1 FROM testbed_listings l WHERE l.id = testbed_sandboxes.listing_id AND l.gated = ?)", true).
		Order("id").Pluck("id", &ids).Error
}

// gatedReservations lists an organisation's pending or active reservations of a listing while it is gated (and
// not the organisation's own), locked for update: a revocation of the organisation's entitlement cancels them.
func gatedReservations(tx *gorm.DB, orgID, listingID string) ([]Reservation, error) {
	var out []Reservation
	return out, sqldb.ForUpdate(tx).Where("org_id = ? AND listing_id = ? AND state IN ?", orgID, listingID, []string{ResPending, ResActive}).
		Where("EXISTS (SELECT 1 FROM testbed_listings l WHERE l.id = testbed_reservations.listing_id AND l.gated = ? AND l.vendor_org_id <> testbed_reservations.org_id)", true).
		Order("id").Find(&out).Error
}

// unsettledSandboxes lists the sandboxes of one runner that have not ended or are not removed from it yet:
// those of backend kind run by this process (agentID ""), or those of an enrolled agent of a pool.
// Internal: reconciliation compares them with what that runner holds.
func unsettledSandboxes(db *gorm.DB, kind, agentID, poolID string) ([]Sandbox, error) {
	q := db.Where("agent_id = ? AND pool_id = ?", agentID, poolID)
	if agentID == "" {
		q = db.Where("backend = ? AND agent_id = ''", kind)
	}
	var out []Sandbox
	return out, q.Where("state NOT IN ? OR backend_removed = ?", []string{StateStopped, StateFailed}, false).Find(&out).Error
}

// removableSandboxes lists up to 100 ended sandboxes still on their backend that ended before before.
// Internal: the supervisor's collection, across organisations.
func removableSandboxes(db *gorm.DB, before time.Time) ([]Sandbox, error) {
	var out []Sandbox
	return out, db.Where("state IN ? AND backend_removed = ? AND ended_at < ?",
		[]string{StateStopped, StateFailed}, false, stamp(before)).Limit(100).Find(&out).Error
}

// runningSandboxesOfAgent lists those of ids that an agent of a pool runs: an agent's heartbeat speaks for
// its own sandboxes only.
func runningSandboxesOfAgent(db *gorm.DB, agentID, poolID string, ids []string) ([]Sandbox, error) {
	var out []Sandbox
	return out, db.Where("agent_id = ? AND pool_id = ? AND state = ? AND id IN ?", agentID, poolID, StateRunning, ids).
		Find(&out).Error
}

// createSandbox records a new sandbox.
func createSandbox(tx *gorm.DB, sb *Sandbox) error { return tx.Create(sb).Error }

// saveSandbox writes every column of a sandbox loaded with lockSandbox.
func saveSandbox(tx *gorm.DB, sb *Sandbox) error { return tx.Save(sb).Error }

// setUsageCursor moves a sandbox's metering cursor (in the transaction of the sample's outbox row).
func setUsageCursor(tx *gorm.DB, id string, seq uint64, end time.Time) error {
	return tx.Model(&Sandbox{}).Where("id = ?", id).Updates(map[string]any{"usage_seq": seq, "usage_end_at": stamp(end)}).Error
}

// setImageDigest records the digest of the image a sandbox runs.
func setImageDigest(db *gorm.DB, id, digest string) error {
	return db.Model(&Sandbox{}).Where("id = ?", id).Update("image_digest", digest).Error
}

// setProvisioning writes cols of a sandbox only while it is provisioning; ok is false when it no longer is.
func setProvisioning(db *gorm.DB, id string, cols map[string]any) (ok bool, err error) {
	res := db.Model(&Sandbox{}).Where("id = ? AND state = ?", id, StateProvisioning).Updates(cols)
	return res.RowsAffected > 0, res.Error
}

// touchSandbox moves a sandbox's last activity to now unless it moved in the last 10 seconds.
func touchSandbox(db *gorm.DB, id string, now time.Time) error {
	now = stamp(now)
	return db.Model(&Sandbox{}).Where("id = ? AND activity_at < ?", id, now.Add(-10*time.Second)).Update("activity_at", now).Error
}

// markUnreachable records, once, when a sandbox's agent stopped answering.
func markUnreachable(db *gorm.DB, id string, now time.Time) error {
	return db.Model(&Sandbox{}).Where("id = ? AND unreachable_at IS NULL", id).Update("unreachable_at", stamp(now)).Error
}

// clearUnreachable clears the unreachable mark of the sandboxes an agent runs (agentID and poolID), or of
// the platform host's own (embedded: agent_id ”, whatever their pool), once that agent answers.
func clearUnreachable(db *gorm.DB, embedded bool, agentID, poolID string) error {
	q := db.Model(&Sandbox{}).Where("unreachable_at IS NOT NULL")
	if embedded {
		q = q.Where("agent_id = ''")
	} else {
		q = q.Where("agent_id = ? AND pool_id = ?", agentID, poolID)
	}
	return q.Update("unreachable_at", nil).Error
}

// markBackendRemoved records that a sandbox is gone from its backend.
func markBackendRemoved(db *gorm.DB, id string) error {
	return db.Model(&Sandbox{}).Where("id = ?", id).Update("backend_removed", true).Error
}

// scheduleWalletStop marks an organisation's live sandboxes (not yet stopping) to stop at stopAt, unless one
// is marked to stop earlier already.
func scheduleWalletStop(tx *gorm.DB, orgID string, stopAt time.Time) error {
	stopAt = stamp(stopAt)
	return tx.Model(&Sandbox{}).
		Where("org_id = ? AND state NOT IN ? AND (wallet_stop_at IS NULL OR wallet_stop_at > ?)", orgID,
			[]string{StateStopped, StateFailed, StateStopping}, stopAt).
		Update("wallet_stop_at", stopAt).Error
}

// Device claims.

func createClaims(tx *gorm.DB, claims []DeviceClaim) error { return tx.Create(&claims).Error }

// releaseClaims drops a sandbox's device claims.
func releaseClaims(tx *gorm.DB, sandboxID string) error {
	return tx.Where("sandbox_id = ?", sandboxID).Delete(&DeviceClaim{}).Error
}

// setClaimsExpiry moves the expiry of a sandbox's device claims.
func setClaimsExpiry(tx *gorm.DB, sandboxID string, expires time.Time) error {
	return tx.Model(&DeviceClaim{}).Where("sandbox_id = ?", sandboxID).Update("expires_at", stamp(expires)).Error
}

// poolClaims lists a pool's device claims. Internal: the scheduler's index, whatever organisation holds them.
func poolClaims(db *gorm.DB, poolID string) ([]DeviceClaim, error) {
	var out []DeviceClaim
	return out, db.Where("pool_id = ?", poolID).Find(&out).Error
}

// Scheduler index: everything it holds, across organisations.

// allNodes lists every node. Internal: the scheduler's index.
func allNodes(db *gorm.DB) ([]Node, error) {
	var out []Node
	return out, db.Find(&out).Error
}

// allDevices lists every device. Internal: the scheduler's index.
func allDevices(db *gorm.DB) ([]Device, error) {
	var out []Device
	return out, db.Find(&out).Error
}

// allClaims lists every device claim. Internal: the scheduler's index.
func allClaims(db *gorm.DB) ([]DeviceClaim, error) {
	var out []DeviceClaim
	return out, db.Find(&out).Error
}

// liveReservations lists every pending or active reservation. Internal: the scheduler's index.
func liveReservations(db *gorm.DB) ([]Reservation, error) {
	var out []Reservation
	return out, db.Where("state IN ?", []string{ResPending, ResActive}).Find(&out).Error
}

// devicesByID lists devices by ID, by index. Internal: the scheduler placed them.
func devicesByID(tx *gorm.DB, ids []string) ([]Device, error) {
	var out []Device
	return out, tx.Where("id IN ?", ids).Order("idx").Find(&out).Error
}

// Nodes and devices.

// anyNode is a node by ID. Internal: the scheduler placed a sandbox on it.
func anyNode(db *gorm.DB, id string) (Node, error) {
	var n Node
	err := db.Where("id = ?", id).Take(&n).Error
	return n, mapNotFound(err, ErrNodeNotFound)
}

// nodeOfPool is a node of a pool the caller was checked to manage (managedPool), locked for update.
func nodeOfPool(tx *gorm.DB, poolID, id string) (Node, error) {
	var n Node
	err := sqldb.ForUpdate(tx).Where("id = ? AND pool_id = ?", id, poolID).Take(&n).Error
	return n, mapNotFound(err, ErrNodeNotFound)
}

// nodeNamed is a pool's node of that name, or gorm's not-found: an agent registering a node asks whether it
// exists, and whose it is.
func nodeNamed(db *gorm.DB, poolID, name string) (Node, error) {
	var n Node
	return n, db.Where("pool_id = ? AND name = ?", poolID, name).Take(&n).Error
}

// poolNodes lists a pool's nodes by name (pools and their hardware are the public catalogue).
func poolNodes(db *gorm.DB, poolID string) ([]Node, error) {
	var out []Node
	return out, db.Where("pool_id = ?", poolID).Order("name").Find(&out).Error
}

// poolDevices lists a pool's devices by node and index (the public catalogue).
func poolDevices(db *gorm.DB, poolID string) ([]Device, error) {
	var out []Device
	return out, db.Where("pool_id = ?", poolID).Order("node_id, idx").Find(&out).Error
}

// poolNodeCount counts a pool's nodes.
func poolNodeCount(db *gorm.DB, poolID string) (int64, error) {
	var n int64
	return n, db.Model(&Node{}).Where("pool_id = ?", poolID).Count(&n).Error
}

// nodeCounts counts every pool's nodes, by pool (the public catalogue).
func nodeCounts(db *gorm.DB) (map[string]int, error) {
	var counts []struct {
		PoolID string
		N      int
	}
	if err := db.Model(&Node{}).Select("pool_id, count(*) as n").Group("pool_id").Scan(&counts).Error; err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, c := range counts {
		out[c.PoolID] = c.N
	}
	return out, nil
}

// poolGPUModels lists the distinct models of a pool's devices.
func poolGPUModels(tx *gorm.DB, poolID string) ([]string, error) {
	var models []string
	err := tx.Model(&Device{}).Where("pool_id = ?", poolID).Distinct().Order("gpu_model").Pluck("gpu_model", &models).Error
	return models, err
}

// createNode records a node and its devices; a name its pool already has answers ErrNodeExists.
func createNode(tx *gorm.DB, n *Node, devs []Device) error {
	if err := tx.Create(n).Error; err != nil {
		if sqldb.IsDuplicate(err) {
			return ErrNodeExists
		}
		return err
	}
	if len(devs) > 0 {
		return tx.Create(&devs).Error
	}
	return nil
}

func saveNode(tx *gorm.DB, n *Node) error { return tx.Save(n).Error }

// setNodeColumns writes cols of one node (an agent's heartbeat about it).
func setNodeColumns(db *gorm.DB, id string, cols map[string]any) error {
	return db.Model(&Node{}).Where("id = ?", id).Updates(cols).Error
}

// agentNodes lists the nodes an enrolled agent of a pool registered (its heartbeat speaks for them only).
func agentNodes(db *gorm.DB, agentID, poolID string) ([]Node, error) {
	var out []Node
	return out, db.Where("agent_id = ? AND pool_id = ?", agentID, poolID).Order("name").Find(&out).Error
}

// embeddedAgentNodes lists the platform host's own nodes of local pools, which the embedded agent runs.
// Internal: its heartbeat, across the vendors of those pools.
func embeddedAgentNodes(db *gorm.DB) ([]Node, error) {
	var out []Node
	return out, db.Where("agent_id = '' AND pool_id IN (?)", db.Model(&Pool{}).Select("id").Where("backend = ?", "local")).
		Find(&out).Error
}

// agentDeviceCount counts the devices of an agent's nodes.
func agentDeviceCount(db *gorm.DB, agentID string) (int64, error) {
	var n int64
	return n, db.Model(&Device{}).Where("node_id IN (?)", db.Model(&Node{}).Select("id").Where("agent_id = ?", agentID)).
		Count(&n).Error
}

// setAgentNodesDown marks every node of an agent down (it was revoked).
func setAgentNodesDown(tx *gorm.DB, agentID string) error {
	return tx.Model(&Node{}).Where("agent_id = ?", agentID).Update("health", NodeDown).Error
}

// lostNodeIDs lists the down nodes whose sandboxes are lost or unreachable: not those an agent that still
// answers (heartbeat at or after since) reports down itself. Internal: the supervisor, across pools.
func lostNodeIDs(db *gorm.DB, since time.Time) ([]string, error) {
	var out []string
	return out, db.Model(&Node{}).Where("health = ? AND (agent_health <> ? OR heartbeat_at < ?)", NodeDown, NodeDown, stamp(since)).
		Pluck("id", &out).Error
}

// heartbeatPoolNodes marks the nodes of pools (those this process runs) that are not down alive at now.
// Internal: the supervisor.
func heartbeatPoolNodes(db *gorm.DB, poolIDs []string, now time.Time) error {
	return db.Model(&Node{}).Where("pool_id IN ? AND health <> ?", poolIDs, NodeDown).Update("heartbeat_at", stamp(now)).Error
}

// staleNodeIDs lists the nodes not down whose last heartbeat is older than since, but those of pools
// except (this process's own). Internal: the supervisor, across pools.
func staleNodeIDs(db *gorm.DB, except []string, since time.Time) ([]string, error) {
	q := db.Model(&Node{}).Where("health <> ? AND heartbeat_at < ?", NodeDown, stamp(since))
	if len(except) > 0 {
		q = q.Where("pool_id NOT IN ?", except)
	}
	var out []string
	return out, q.Pluck("id", &out).Error
}

// setNodesDown marks nodes down. Internal: the supervisor found them silent.
func setNodesDown(db *gorm.DB, ids []string) error {
	return db.Model(&Node{}).Where("id IN ?", ids).Update("health", NodeDown).Error
}

// Pools. The list of pools and their hardware is the public catalogue: reading one by ID is for anyone;
// changing one goes through poolOfVendor (or anyPool for staff, see managedPool).

// poolByID is a pool by ID (lock: for update): the public catalogue, and the testbed's own work on the pool
// of a sandbox, listing or agent.
func poolByID(db *gorm.DB, id string, lock bool) (Pool, error) {
	var p Pool
	err := lockIf(db, lock).Where("id = ?", id).Take(&p).Error
	return p, mapNotFound(err, ErrPoolNotFound)
}

// poolOfVendor is a pool of the caller's (vendor) organisation (lock: for update); another organisation's
// answers not found.
func poolOfVendor(db *gorm.DB, orgID, id string, lock bool) (Pool, error) {
	var p Pool
	err := lockIf(db, lock).Where("id = ? AND vendor_org_id = ?", id, orgID).Take(&p).Error
	return p, mapNotFound(err, ErrPoolNotFound)
}

// poolNamed is a vendor's pool of that name, or gorm's not-found (seeding asks whether it exists).
func poolNamed(db *gorm.DB, vendorOrgID, name string) (Pool, error) {
	var p Pool
	return p, db.Where("vendor_org_id = ? AND name = ?", vendorOrgID, name).Take(&p).Error
}

// allPools lists every pool, oldest first (the public catalogue).
func allPools(db *gorm.DB) ([]Pool, error) {
	var out []Pool
	return out, db.Order("created_at, id").Find(&out).Error
}

// poolsByID lists pools by ID (the public catalogue: which of them allow an image).
func poolsByID(db *gorm.DB, ids []string) ([]Pool, error) {
	var out []Pool
	return out, db.Where("id IN ?", ids).Find(&out).Error
}

// poolIDsOfBackends lists the IDs of the pools run by backends of these kinds. Internal: the supervisor
// heartbeats the nodes of the pools this process runs.
func poolIDsOfBackends(db *gorm.DB, kinds []string) ([]string, error) {
	var out []string
	return out, db.Model(&Pool{}).Where("backend IN ?", kinds).Pluck("id", &out).Error
}

// vendorPoolIDs lists the IDs of a vendor organisation's pools (only poolID, when given).
func vendorPoolIDs(db *gorm.DB, orgID, poolID string) ([]string, error) {
	return pluckPoolIDs(db.Model(&Pool{}).Where("vendor_org_id = ?", orgID), poolID)
}

// everyPoolID lists the IDs of every organisation's pools (only poolID, when given). Staff: the programme's
// utilisation.
func everyPoolID(db *gorm.DB, poolID string) ([]string, error) {
	return pluckPoolIDs(db.Model(&Pool{}), poolID)
}

func pluckPoolIDs(q *gorm.DB, poolID string) ([]string, error) {
	if poolID != "" {
		q = q.Where("id = ?", poolID)
	}
	out := []string{}
	return out, q.Order("id").Pluck("id", &out).Error
}

// createPool records a pool; a name its vendor already has answers ErrPoolExists.
func createPool(tx *gorm.DB, p *Pool) error {
	if err := tx.Create(p).Error; err != nil {
		if sqldb.IsDuplicate(err) {
			return ErrPoolExists
		}
		return err
	}
	return nil
}

// savePool writes every column of a pool; a name its vendor already has answers ErrPoolExists.
func savePool(tx *gorm.DB, p *Pool) error {
	if err := tx.Save(p).Error; err != nil {
		if sqldb.IsDuplicate(err) {
			return ErrPoolExists
		}
		return err
	}
	return nil
}

// Site agents and their enrolment tokens. The pool they belong to was checked first (managedPool), or the
// message comes from the agent itself on its own subject.

// agentOfPool is an agent enrolled for a pool.
func agentOfPool(db *gorm.DB, poolID, id string) (Agent, error) {
	var a Agent
	err := db.Where("id = ? AND pool_id = ?", id, poolID).Take(&a).Error
	return a, mapNotFound(err, ErrAgentNotFound)
}

// poolAgents lists a pool's agents, newest first.
func poolAgents(db *gorm.DB, poolID string) ([]Agent, error) {
	var out []Agent
	return out, db.Where("pool_id = ?", poolID).Order("created_at DESC, id").Find(&out).Error
}

// activeAgents lists every agent not revoked. Internal: reconciliation at start, across pools.
func activeAgents(db *gorm.DB) ([]Agent, error) {
	var out []Agent
	return out, db.Where("revoked_at IS NULL").Find(&out).Error
}

// activeAgentCount counts a pool's agents not revoked.
func activeAgentCount(db *gorm.DB, poolID string) (int64, error) {
	var n int64
	return n, db.Model(&Agent{}).Where("pool_id = ? AND revoked_at IS NULL", poolID).Count(&n).Error
}

// agentSamplesGPUs reports whether an agent of a pool measures its host's GPUs.
func agentSamplesGPUs(db *gorm.DB, poolID, id string) (bool, error) {
	var n int64
	err := db.Model(&Agent{}).Where("id = ? AND pool_id = ? AND gpu_sampler = ?", id, poolID, true).Count(&n).Error
	return n > 0, err
}

func createAgent(tx *gorm.DB, a *Agent) error { return tx.Create(a).Error }

func saveAgent(tx *gorm.DB, a *Agent) error { return tx.Save(a).Error }

// setAgentColumns writes cols of one agent (its heartbeat).
func setAgentColumns(db *gorm.DB, id string, cols map[string]any) error {
	return db.Model(&Agent{}).Where("id = ?", id).Updates(cols).Error
}

func createAgentToken(tx *gorm.DB, t *AgentToken) error { return tx.Create(t).Error }

func saveAgentToken(tx *gorm.DB, t *AgentToken) error { return tx.Save(t).Error }

// agentTokenOfPool is an enrolment token of a pool.
func agentTokenOfPool(db *gorm.DB, poolID, id string) (AgentToken, error) {
	var t AgentToken
	err := db.Where("id = ? AND pool_id = ?", id, poolID).Take(&t).Error
	return t, mapNotFound(err, ErrAgentTokenNotFound)
}

// poolAgentTokens lists a pool's enrolment tokens, newest first.
func poolAgentTokens(db *gorm.DB, poolID string) ([]AgentToken, error) {
	var out []AgentToken
	return out, db.Where("pool_id = ?", poolID).Order("created_at DESC, id").Find(&out).Error
}

// agentTokenByHash is the enrolment token of that hash, locked for update; ErrBadEnrolToken when none is.
// Whoever holds the token is the caller: it names its pool.
func agentTokenByHash(tx *gorm.DB, hash string) (AgentToken, error) {
	var t AgentToken
	if err := sqldb.ForUpdate(tx).Where("token_hash = ?", hash).Take(&t).Error; err != nil {
		return t, ErrBadEnrolToken
	}
	return t, nil
}

// spendAgentToken marks an unused token used by agentID at now; ErrBadEnrolToken when it was used meanwhile.
func spendAgentToken(tx *gorm.DB, id, agentID string, now time.Time) error {
	res := tx.Model(&AgentToken{}).Where("id = ? AND used_at IS NULL", id).Updates(map[string]any{"used_at": stamp(now), "agent_id": agentID})
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected != 1 {
		return ErrBadEnrolToken
	}
	return nil
}

// Listings: the testbed's projection of the marketplace's published catalogue. Who may see a listing is
// decided by the caller (Listing.VisibleFor, ImageListing.visibleFor): a restricted listing's organisations
// are a list, not a column to filter on.

// listingByID is a compute listing.
func listingByID(db *gorm.DB, id string) (Listing, error) {
	var l Listing
	err := db.Where("id = ?", id).Take(&l).Error
	return l, mapNotFound(err, ErrListingNotFound)
}

// allListings lists every compute listing by ID.
func allListings(db *gorm.DB) ([]Listing, error) {
	var out []Listing
	return out, db.Order("id").Find(&out).Error
}

// listingVersion is the version of a projected compute listing, 0 when there is none.
func listingVersion(tx *gorm.DB, id string) (int, error) {
	var l Listing
	err := tx.Where("id = ?", id).Take(&l).Error
	if sqldb.IsNotFound(err) {
		return 0, nil
	}
	return l.Version, err
}

func saveListing(tx *gorm.DB, l *Listing) error { return tx.Save(l).Error }

// dropListing removes a listing's projections (compute, and try-it image).
func dropListing(tx *gorm.DB, id string) error {
	if err := tx.Delete(&ImageListing{}, "id = ?", id).Error; err != nil {
		return err
	}
	return tx.Delete(&Listing{}, "id = ?", id).Error
}

// imageListingByID is the projection of a model or dataset listing's try-it image, or gorm's not-found.
func imageListingByID(tx *gorm.DB, id string) (ImageListing, error) {
	var l ImageListing
	return l, tx.Where("id = ?", id).Take(&l).Error
}

// imageListingWithImage is a model or dataset listing that offers a try-it image.
func imageListingWithImage(db *gorm.DB, id string) (ImageListing, error) {
	var l ImageListing
	err := db.Where("id = ? AND image <> ''", id).Take(&l).Error
	return l, mapNotFound(err, ErrImageListingNotFound)
}

func saveImageListing(tx *gorm.DB, l *ImageListing) error { return tx.Save(l).Error }

// Entitlements: each read is of one organisation's.

// entitlementOf is an organisation's entitlement to a listing, locked for update, or gorm's not-found.
func entitlementOf(tx *gorm.DB, orgID, listingID string) (Entitlement, error) {
	var e Entitlement
	return e, sqldb.ForUpdate(tx).Where("org_id = ? AND listing_id = ?", orgID, listingID).Take(&e).Error
}

// putEntitlement inserts or replaces an organisation's entitlement to a listing.
func putEntitlement(tx *gorm.DB, e Entitlement) error {
	return tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "org_id"}, {Name: "listing_id"}},
		DoUpdates: clause.AssignmentColumns([]string{"entitlement_id", "active", "expires_at", "at", "updated_at"})}).
		Create(&e).Error
}

// entitled reports whether an organisation holds a current entitlement to a listing at now.
func entitled(db *gorm.DB, orgID, listingID string, now time.Time) (bool, error) {
	var n int64
	err := db.Model(&Entitlement{}).Where("org_id = ? AND listing_id = ? AND active = ? AND (expires_at IS NULL OR expires_at > ?)",
		orgID, listingID, true, stamp(now)).Count(&n).Error
	return n > 0, err
}

// entitledListingIDs lists the listings an organisation holds a current entitlement to at now.
func entitledListingIDs(db *gorm.DB, orgID string, now time.Time) ([]string, error) {
	var ids []string
	return ids, db.Model(&Entitlement{}).Where("org_id = ? AND active = ? AND (expires_at IS NULL OR expires_at > ?)", orgID, true, stamp(now)).
		Pluck("listing_id", &ids).Error
}

// Reservations.

// reservationOfOrg is a reservation of the caller's organisation, locked for update; another organisation's
// answers not found.
func reservationOfOrg(tx *gorm.DB, orgID, id string) (Reservation, error) {
	var r Reservation
	err := sqldb.ForUpdate(tx).Where("id = ? AND org_id = ?", id, orgID).Take(&r).Error
	return r, mapNotFound(err, ErrReservationNotFound)
}

// anyReservation is a reservation of whatever organisation, locked for update: staff cancel any.
func anyReservation(tx *gorm.DB, id string) (Reservation, error) {
	var r Reservation
	err := sqldb.ForUpdate(tx).Where("id = ?", id).Take(&r).Error
	return r, mapNotFound(err, ErrReservationNotFound)
}

// reservationsOfOrg lists an organisation's reservations, newest window first (limit+1 rows).
func reservationsOfOrg(db *gorm.DB, orgID string, limit int) ([]Reservation, error) {
	var out []Reservation
	return out, db.Where("org_id = ?", orgID).Order("starts_at DESC, id").Limit(limit + 1).Find(&out).Error
}

// liveReservationCount counts an organisation's pending and active reservations.
func liveReservationCount(tx *gorm.DB, orgID string) (int64, error) {
	var n int64
	return n, tx.Model(&Reservation{}).Where("org_id = ? AND state IN ?", orgID, []string{ResPending, ResActive}).Count(&n).Error
}

func createReservation(tx *gorm.DB, r *Reservation) error { return tx.Create(r).Error }

func saveReservation(tx *gorm.DB, r *Reservation) error { return tx.Save(r).Error }

// activateReservations moves the pending reservations starting by now to active. Internal: the supervisor,
// across organisations.
func activateReservations(db *gorm.DB, now time.Time) error {
	return db.Model(&Reservation{}).Where("state = ? AND starts_at <= ?", ResPending, stamp(now)).Update("state", ResActive).Error
}

// endedReservations lists the pending and active reservations ended by now. Internal: the supervisor,
// across organisations.
func endedReservations(db *gorm.DB, now time.Time) ([]Reservation, error) {
	var out []Reservation
	return out, db.Where("state IN ? AND ends_at <= ?", []string{ResPending, ResActive}, stamp(now)).Find(&out).Error
}

// completeReservation marks a reservation completed.
func completeReservation(db *gorm.DB, id string) error {
	return db.Model(&Reservation{}).Where("id = ?", id).Update("state", ResCompleted).Error
}

// lockReservations locks pool and model's reservations for the transaction (reservation_lock.go) and returns
// the pending and active ones still running at or after from. Internal: capacity is counted across
// organisations.
func lockReservations(tx *gorm.DB, pool, model string, from time.Time) ([]Reservation, error) {
	row := reservationLock{PoolID: pool, GPUModel: model}
	if err := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&row).Error; err != nil {
		return nil, err
	}
	if err := sqldb.ForUpdate(tx).Where("pool_id = ? AND gpu_model = ?", pool, model).Take(&row).Error; err != nil {
		return nil, err
	}
	var out []Reservation
	err := tx.Where("pool_id = ? AND gpu_model = ? AND state IN ? AND ends_at > ?", pool, model,
		[]string{ResPending, ResActive}, stamp(from)).Find(&out).Error
	return out, err
}

// Audit log.

func createAudit(db *gorm.DB, e *AuditEntry) error { return db.Create(e).Error }

// auditEntries lists staff actions, newest first (instant, then ID), after the cursor (zero: from the newest;
// limit+1 rows). Staff: the programme's audit log, across organisations.
func auditEntries(db *gorm.DB, limit int, before AuditCursor) ([]AuditEntry, error) {
	q := db.Order("at DESC, id DESC").Limit(limit + 1)
	switch at := stamp(time.UnixMilli(before.AtMS)); {
	case before.AtMS == 0:
	case before.ID == "":
		q = q.Where("at < ?", at)
	default:
		q = q.Where("at < ? OR (at = ? AND id < ?)", at, at, before.ID)
	}
	var out []AuditEntry
	return out, q.Find(&out).Error
}

// GPU samples. The sandbox they are of was read first, scoped to its caller.

// addGPUSample records a sample (once per sandbox and instant).
func addGPUSample(db *gorm.DB, row *GPUSample) error {
	return db.Clauses(clause.OnConflict{DoNothing: true}).Create(row).Error
}

// trimGPUSamples drops a sandbox's samples older than before.
func trimGPUSamples(db *gorm.DB, sandboxID string, before time.Time) error {
	return db.Where("sandbox_id = ? AND at < ?", sandboxID, stamp(before)).Delete(&GPUSample{}).Error
}

// pruneEndedGPUSamples deletes the samples of sandboxes that ended before before. Internal: the
// supervisor's collection, across organisations.
func pruneEndedGPUSamples(db *gorm.DB, before time.Time) (int64, error) {
	ended := db.Model(&Sandbox{}).Select("id").Where("state IN ? AND ended_at < ?",
		[]string{StateStopped, StateFailed}, stamp(before))
	res := db.Where("sandbox_id IN (?)", ended).Delete(&GPUSample{})
	return res.RowsAffected, res.Error
}

// recentGPUSamples lists a sandbox's limit most recent samples, newest first.
func recentGPUSamples(db *gorm.DB, sandboxID string, limit int) ([]GPUSample, error) {
	out := []GPUSample{}
	return out, db.Where("sandbox_id = ?", sandboxID).Order("at DESC").Limit(limit).Find(&out).Error
}

// Sandbox tokens.

func createSandboxToken(db *gorm.DB, t *SandboxToken) error { return db.Create(t).Error }

// dropExpiredSandboxTokens deletes the tokens expired before now.
func dropExpiredSandboxTokens(db *gorm.DB, now time.Time) error {
	return db.Where("expires_at < ?", stamp(now)).Delete(&SandboxToken{}).Error
}

// sandboxTokenByHash is the sandbox token of that hash, or gorm's not-found. Whoever holds the token is the
// caller: it names its sandbox.
func sandboxTokenByHash(db *gorm.DB, hash string) (SandboxToken, error) {
	var t SandboxToken
	return t, db.Where("token_hash = ?", hash).Take(&t).Error
}

// Utilisation of pools the caller was checked to see (vendorPoolIDs, everyPoolID).

// nodeDevices is a node's registration time and its device count.
type nodeDevices struct {
	CreatedAt time.Time
	Devices   int64
}

// poolNodeDevices lists, for each node of pools with devices, when it registered and how many it has.
func poolNodeDevices(db *gorm.DB, poolIDs []string) ([]nodeDevices, error) {
	var out []nodeDevices
	return out, db.Table("testbed_nodes AS n").Select("n.created_at AS created_at, COUNT(d.id) AS devices").
		Joins("JOIN testbed_devices d ON d.node_id = n.id").Where("n.pool_id IN ?", poolIDs).Group("n.id, n.created_at").
		Scan(&out).Error
}

// startedSandboxesIn lists the sandboxes of pools that started before end and had not ended by start (only
// the columns utilisation needs).
func startedSandboxesIn(db *gorm.DB, poolIDs []string, start, end time.Time) ([]Sandbox, error) {
	var out []Sandbox
	return out, db.Select("id, gpu_count, started_at, ended_at, usage_end_at, state").
		Where("pool_id IN ? AND started_at < ? AND (ended_at IS NULL OR ended_at > ?)", poolIDs, stamp(end), stamp(start)).
		Find(&out).Error
}

// Images: what a host's image cache must keep, across organisations (the cache is the host's).

// liveSandboxImages lists the image and unpacked digest of every sandbox that has not ended and has either.
func liveSandboxImages(db *gorm.DB) ([]Sandbox, error) {
	var out []Sandbox
	return out, db.Select("image", "image_digest").
		Where("state NOT IN ? AND (image <> '' OR image_digest <> '')", []string{StateStopped, StateFailed}).
		Find(&out).Error
}

// allPoolSettings lists every pool's settings (only that column).
func allPoolSettings(db *gorm.DB) ([]Pool, error) {
	var out []Pool
	return out, db.Select("settings").Find(&out).Error
}
