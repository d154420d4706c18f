package main

import (
	"strings"
	"testing"
	"time"
)

// TestTryItJourney: a model listing's try-it image, across marketplace, testbed and billing through the
// process's JetStream. A tag is refused; the pinned image is reviewed and published; the testbed refuses a
// sandbox of it to an SME without access (403), then, once the SME's free order is granted, on a pool whose
// staff allow-list lacks the image (422 image_not_allowed); allowed by staff, the sandbox runs the image on the
// compute listing's pool and is stopped. Mounting the model's files goes through the marketplace over NATS:
// 403 without access, 404 for a compute listing, 422 no_artifacts with access (the model has none).
func TestTryItJourney(t *testing.T) {
	const image = "registry.example.com/aurora/maple-serve@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	eachJourney(t, func(t *testing.T, j journey) {
		const I, M, T, B = "/api/v1/identity", "/api/v1/marketplace", "/api/v1/testbed", "/api/v1/billing"
		vendor, vendorOrg := j.signup("vendor@tryit.example", "Aurora AI", "vendor")
		sme, smeOrg := j.signup("sme@tryit.example", "Try SME", "sme")
		staff := j.newStaff("staff@tryit.example")
		j.must(200, "POST", I+"/organizations/"+vendorOrg+"/verify", staff, map[string]any{"verified": true})
		j.must(200, "POST", I+"/organizations/"+smeOrg+"/verify", staff, map[string]any{"verified": true})
		pool := j.must(201, "POST", T+"/pools", staff, map[string]any{"name": "Try pool", "region": "ca-montreal",
			"backend": "simulator", "vendor_org_id": vendorOrg})
		poolID := pool.str("id")
		j.must(201, "POST", T+"/pools/"+poolID+"/nodes", staff, map[string]any{"name": "node-1", "cpu_millis": 64000,
			"memory_bytes": 256 << 30, "devices": []map[string]any{{"index": 0, "gpu_model": "h100-80gb"}}})
		publish := func(body map[string]any) string {
			t.Helper()
			l := j.eventually(201, "POST", M+"/listings", vendor, body)
			j.eventually(200, "POST", M+"/listings/"+l.str("id")+"/submit", vendor, nil)
			j.must(200, "POST", M+"/reviews/"+l.str("pending_version", "id")+"/decision", staff, map[string]any{"decision": "approve"})
			return l.str("id")
		}
		computeID := publish(map[string]any{"kind": "compute", "slug": "try-h100", "title": "H100 by the hour",
			"summary": "GPU time", "license": map[string]any{"spdx": "custom", "url": "https://tryit.example/terms"},
			"residency": "CA", "compute": map[string]any{"pool_id": poolID, "gpu_model": "h100-80gb", "vram_gb": 80,
				"devices_per_node": 1, "region": "ca-montreal", "min_duration_minutes": 1, "max_duration_minutes": 120},
			"plans": []map[string]any{{"name": "Per GPU-hour", "kind": "per_gpu_hour", "price_micro": 3_600_000}}})
		model := map[string]any{"kind": "model", "slug": "maple-try", "title": "Maple 7B", "summary": "A model to try",
			"license": map[string]any{"spdx": "Apache-2.0"}, "residency": "CA",
			"model":  map[string]any{"framework": "pytorch", "task": "text-generation"},
			"try_it": map[string]any{"image": "registry.example.com/aurora/maple-serve:latest"},
			"plans":  []map[string]any{{"name": "Research", "kind": "free", "price_micro": 0}}}
		if r := j.must(422, "POST", M+"/listings", vendor, model); !strings.Contains(string(r.raw), `"field":"try_it.image","code":"not_pinned"`) {
			t.Fatalf("a tagged try-it image: %s", r.raw)
		}
		model["try_it"] = map[string]any{"image": image, "command": []string{"/usr/bin/serve"}, "ports": []int{8080}}
		modelID := publish(model)
		j.eventually(201, "POST", B+"/grants", staff, map[string]any{"organization_id": smeOrg, "amount_micro": 100_000_000,
			"expires_at": time.Now().Add(30 * 24 * time.Hour).UTC().Format(time.RFC3339), "note": "Pilot"})

		launch := map[string]any{"listing_id": computeID, "gpu_count": 1, "duration_minutes": 10, "image_listing_id": modelID}
		if r := j.eventually(403, "POST", T+"/sandboxes", sme, launch); r.str("code") != "access_required" || r.str("image_listing_id") != modelID {
			t.Fatalf("launch without access to the model: %s", r.raw)
		}
		// Its files: the testbed asks the marketplace over the process's NATS, which decides as for a download.
		mount := map[string]any{"listing_id": computeID, "gpu_count": 1, "duration_minutes": 10, "template": "shell", "mount_listing_id": modelID}
		if r := j.eventually(403, "POST", T+"/sandboxes", sme, mount); r.str("code") != "access_required" || r.str("mount_listing_id") != modelID {
			t.Fatalf("mount without access to the model: %s", r.raw)
		}
		mount["mount_listing_id"] = computeID
		if r := j.must(404, "POST", T+"/sandboxes", sme, mount); r.str("code") != "mount_listing_not_found" {
			t.Fatalf("mount of a compute listing: %s", r.raw)
		}
		mount["mount_listing_id"] = modelID
		plans := j.must(200, "GET", M+"/listings/"+modelID, sme, nil)
		j.must(201, "POST", M+"/orders", sme, map[string]any{"listing_id": modelID, "plan_id": plans.str("published_version", "plans", "0", "id"), "quantity": 1})
		if r := j.eventually(422, "POST", T+"/sandboxes", sme, mount); r.str("code") != "no_artifacts" {
			t.Fatalf("mount of a model without files, with access: %s", r.raw)
		}
		if r := j.eventually(422, "POST", T+"/sandboxes", sme, launch); r.str("code") != "image_not_allowed" || r.str("image") != image {
			t.Fatalf("launch on a pool that does not allow the image: %s", r.raw)
		}
		if r := j.must(200, "GET", T+"/listings?image_listing_id="+modelID, sme, nil); r.str("items", "0", "image_allowed") != "false" {
			t.Fatalf("listings before the pool allows the image: %s", r.raw)
		}
		j.must(200, "PATCH", T+"/pools/"+poolID, staff, map[string]any{"settings": map[string]string{"images.allow": "registry.example.com/aurora/"}})
		if r := j.must(200, "GET", T+"/listings?image_listing_id="+modelID, sme, nil); r.str("items", "0", "image_allowed") != "true" {
			t.Fatalf("listings after the pool allows the image: %s", r.raw)
		}
		sb := j.must(202, "POST", T+"/sandboxes", sme, launch)
		if sb.str("image") != image || sb.str("image_listing_id") != modelID || sb.str("template") != "tryit" || sb.str("ports", "0") != "8080" {
			t.Fatalf("try-it sandbox: %s", sb.raw)
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
