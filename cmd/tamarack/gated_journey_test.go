package main

import (
	"testing"
	"time"
)

// TestGatedComputeJourney: a gated compute listing, across marketplace and testbed through the process's
// JetStream: the testbed lists it but refuses sandboxes and reservations with 403 access_required until the
// vendor approves the SME's access request (entitlement.granted), then accepts them; another organisation is
// still refused.
func TestGatedComputeJourney(t *testing.T) {
	eachJourney(t, func(t *testing.T, j journey) {
		const I, M, T, B = "/api/v1/identity", "/api/v1/marketplace", "/api/v1/testbed", "/api/v1/billing"
		vendor, vendorOrg := j.signup("vendor@gated.example", "Gated GPU", "vendor")
		sme, smeOrg := j.signup("sme@gated.example", "Gated SME", "sme")
		other, _ := j.signup("other@gated.example", "Other SME", "sme")
		staff := j.newStaff("staff@gated.example")
		j.must(200, "POST", I+"/organizations/"+vendorOrg+"/verify", staff, map[string]any{"verified": true})
		j.must(200, "POST", I+"/organizations/"+smeOrg+"/verify", staff, map[string]any{"verified": true})
		pool := j.must(201, "POST", T+"/pools", staff, map[string]any{"name": "Gated pool", "region": "ca-montreal",
			"backend": "simulator", "vendor_org_id": vendorOrg})
		poolID := pool.str("id")
		j.must(201, "POST", T+"/pools/"+poolID+"/nodes", staff, map[string]any{"name": "node-1", "cpu_millis": 64000,
			"memory_bytes": 256 << 30, "devices": []map[string]any{{"index": 0, "gpu_model": "h100-80gb"}, {"index": 1, "gpu_model": "h100-80gb"}}})
		cl := j.eventually(201, "POST", M+"/listings", vendor, map[string]any{"kind": "compute", "slug": "gated-h100", "title": "Gated H100",
			"summary": "Approval needed", "license": map[string]any{"spdx": "custom", "url": "https://gated.example/terms"},
			"residency": "CA", "gated": true, "compute": map[string]any{"pool_id": poolID, "gpu_model": "h100-80gb", "vram_gb": 80,
				"devices_per_node": 2, "region": "ca-montreal", "min_duration_minutes": 1, "max_duration_minutes": 120},
			"plans": []map[string]any{{"name": "Per GPU-hour", "kind": "per_gpu_hour", "price_micro": 3_600_000}}})
		clID := cl.str("id")
		j.eventually(200, "POST", M+"/listings/"+clID+"/submit", vendor, nil)
		j.must(200, "POST", M+"/reviews/"+cl.str("pending_version", "id")+"/decision", staff, map[string]any{"decision": "approve"})
		j.eventually(201, "POST", B+"/grants", staff, map[string]any{"organization_id": smeOrg, "amount_micro": 100_000_000,
			"expires_at": time.Now().Add(30 * 24 * time.Hour).UTC().Format(time.RFC3339), "note": "Pilot"})

		launch := map[string]any{"listing_id": clID, "gpu_model": "h100-80gb", "gpu_count": 1, "template": "shell", "duration_minutes": 10}
		start := time.Now().Add(2 * time.Hour).UTC().Truncate(time.Minute)
		reserve := map[string]any{"listing_id": clID, "gpu_count": 1, "starts_at": start.Format(time.RFC3339),
			"ends_at": start.Add(time.Hour).Format(time.RFC3339)}
		// Refused (once the testbed has the listing), though listed with access_required.
		if r := j.eventually(403, "POST", T+"/sandboxes", sme, launch); r.str("code") != "access_required" {
			t.Fatalf("launch without access: %s", r.raw)
		}
		if r := j.must(403, "POST", T+"/reservations", sme, reserve); r.str("code") != "access_required" {
			t.Fatalf("reserve without access: %s", r.raw)
		}
		ls := j.must(200, "GET", T+"/listings", sme, nil)
		if ls.str("items", "0", "id") != clID || ls.str("items", "0", "gated") != "true" || ls.str("items", "0", "access_required") != "true" {
			t.Fatalf("testbed listings: %s", ls.raw)
		}

		// The SME asks, the vendor approves: the entitlement event opens the listing in the testbed.
		ar := j.must(201, "POST", M+"/listings/"+clID+"/access-requests", sme, map[string]any{"purpose": "Train a model"})
		j.must(200, "POST", M+"/access-requests/"+ar.str("id")+"/decision", vendor, map[string]any{"decision": "approve"})
		sb := j.eventually(202, "POST", T+"/sandboxes", sme, launch)
		j.must(201, "POST", T+"/reservations", sme, reserve)
		if r := j.must(403, "POST", T+"/sandboxes", other, launch); r.str("code") != "access_required" {
			t.Fatalf("another organisation: %s", r.raw)
		}
		j.until("sandbox running", func() bool {
			return j.must(200, "GET", T+"/sandboxes/"+sb.str("id"), sme, nil).str("state") == "running"
		})
		j.must(202, "POST", T+"/sandboxes/"+sb.str("id")+"/stop", sme, nil)
		j.until("sandbox stopped", func() bool {
			return j.must(200, "GET", T+"/sandboxes/"+sb.str("id"), sme, nil).str("state") == "stopped"
		})
	})
}
