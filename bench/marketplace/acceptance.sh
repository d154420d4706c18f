#!/usr/bin/env bash
# Acceptance walk of the marketplace lifecycle through `tamarack serve` (needs identity: run from the repository root once the services are merged).
set -euo pipefail
BIN=${TAMARACK:-./bin/tamarack} # go build -o bin/tamarack ./cmd/tamarack
D=$(mktemp -d); B=http://127.0.0.1:18492; M=$B/api/v1/marketplace; I=$B/api/v1/identity
$BIN serve --data $D --addr 127.0.0.1:18492 --log-level warn > $D/serve.log 2>&1 &
PID=$!; trap 'kill $PID; wait $PID 2>/dev/null; rm -rf $D' EXIT
for i in $(seq 100); do curl -sf $B/readyz >/dev/null && break; sleep 0.2; done
j() { python3 -c "import sys,json; d=json.load(sys.stdin); print(eval('d'+sys.argv[1]))" "$1"; }
signup() { curl -sf $I/signup -H 'content-type: application/json' -d "{\"email\":\"$1\",\"password\":\"correct-horse-battery\",\"name\":\"$1\",\"organization\":{\"name\":\"$2\",\"kind\":\"$3\"}}"; }
login() { curl -sf $I/login -H 'content-type: application/json' -d "{\"email\":\"$1\",\"password\":\"correct-horse-battery\"}" | j "['access_token']"; }
V=$(signup vendor@x.ca "Aurora AI" vendor); VT=$(echo "$V" | j "['access_token']"); VORG=$(echo "$V" | j "['organization']['id']")
S=$(signup sme@x.ca "Small Co" sme); ST=$(echo "$S" | j "['access_token']")
O=$(signup other@x.ca "Borealis" vendor); OT=$(echo "$O" | j "['access_token']")
signup staff@x.ca "Programme" partner >/dev/null
$BIN users promote staff@x.ca --data $D > /dev/null
STAFF=$(login staff@x.ca)
curl -sf -X POST $I/organizations/$VORG/verify -H "authorization: Bearer $STAFF" -H 'content-type: application/json' -d '{"verified":true}' >/dev/null
echo "vendor $VORG verified"
L=$(curl -sf $M/listings -H "authorization: Bearer $VT" -H 'content-type: application/json' -d '{"kind":"model","slug":"maple-7b","title":"Maple 7B","summary":"Bilingual LLM","card_markdown":"# Maple\n<script>x</script>","license":{"spdx":"Apache-2.0"},"model":{"framework":"pytorch","task":"text-generation","parameters":7},"plans":[{"name":"Free","kind":"free","price_micro":0}]}' -o /dev/null -w '%{http_code}' || true)
echo "script in card -> $L (want 422)"
L=$(curl -sf $M/listings -H "authorization: Bearer $VT" -H 'content-type: application/json' -d '{"kind":"model","slug":"maple-7b","title":"Maple 7B","summary":"Bilingual LLM","card_markdown":"# Maple","license":{"spdx":"Apache-2.0"},"model":{"framework":"pytorch","task":"text-generation","parameters":7},"plans":[{"name":"Free","kind":"free","price_micro":0}]}')
LID=$(echo "$L" | j "['id']"); VID=$(echo "$L" | j "['pending_version']['id']")
head -c 300000 /dev/urandom > $D/w.bin; SUM=$(sha256sum $D/w.bin | cut -d' ' -f1)
curl -sf -X PUT "$M/listings/$LID/versions/1/artifacts/w.bin" -H "authorization: Bearer $VT" -H "X-Checksum-Sha256: $SUM" --data-binary @$D/w.bin > /dev/null
echo "uploaded w.bin"
for i in $(seq 50); do code=$(curl -s -o /dev/null -w '%{http_code}' -X POST $M/listings/$LID/submit -H "authorization: Bearer $VT"); [ "$code" = 200 ] && break; sleep 0.2; done
echo "submit -> $code (after the verification event reached the projection)"
curl -sf -X POST $M/reviews/$VID/decision -H "authorization: Bearer $STAFF" -H 'content-type: application/json' -d '{"decision":"request_changes","comment":"Add results"}' > /dev/null
curl -sf -X PATCH $M/listings/$LID -H "authorization: Bearer $VT" -H 'content-type: application/json' -d '{"summary":"Bilingual LLM, MMLU 61"}' > /dev/null
curl -sf -X POST $M/listings/$LID/submit -H "authorization: Bearer $VT" > /dev/null
echo "queue: $(curl -sf $M/reviews -H "authorization: Bearer $STAFF" | j "['items'][0]['age_seconds']")s old"
curl -sf -X POST $M/reviews/$VID/decision -H "authorization: Bearer $STAFF" -H 'content-type: application/json' -d '{"decision":"approve"}' > /dev/null
echo "search: $(curl -sf "$M/listings?q=mapl" | j "['total']") hit(s)"
PUB=$(curl -sf $M/listings/$LID); PLAN=$(echo "$PUB" | j "['published_version']['plans'][0]['id']"); ART=$(echo "$PUB" | j "['published_version']['artifacts'][0]['id']")
echo "order: $(curl -sf $M/orders -H "authorization: Bearer $ST" -H 'content-type: application/json' -d "{\"listing_id\":\"$LID\",\"plan_id\":\"$PLAN\"}" | j "['state']")"
curl -sfL $M/artifacts/$ART/download -H "authorization: Bearer $ST" -o $D/got.bin
echo "download sha256 match: $([ "$(sha256sum $D/got.bin | cut -d' ' -f1)" = "$SUM" ] && echo yes || echo NO)"
echo "unentitled org: $(curl -s -o /dev/null -w '%{http_code}' $M/artifacts/$ART/download -H "authorization: Bearer $OT")"
