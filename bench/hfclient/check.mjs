// Drives a Tamarack server's Hugging Face Hub API with @huggingface/hub, a client Tamarack did not write, and
// prints what it saw as one JSON object on stdout: cmd/tamarack's TestHubClient decides what is right.
//
// Environment: HUB_URL (the server), HF_TOKEN (hf_ + a Tamarack API token), MODEL, DATASET, GATED, HIDDEN
// (repository names "<vendor>/<slug>"), MODEL_FILE and DATASET_FILE (files to fetch).
import { createHash } from "node:crypto";
import { downloadFile, listFiles, modelInfo } from "@huggingface/hub";

const env = process.env;
const hubUrl = env.HUB_URL;
const accessToken = env.HF_TOKEN;

async function sha256(blob) {
  return createHash("sha256").update(Buffer.from(await blob.arrayBuffer())).digest("hex");
}

async function failure(fn) {
  try {
    await fn();
    return { ok: true };
  } catch (e) {
    return { ok: false, status: e.statusCode ?? null, message: String(e.message) };
  }
}

async function list(repo) {
  const out = [];
  for await (const f of listFiles({ repo, hubUrl, accessToken })) {
    out.push({ type: f.type, path: f.path, size: f.size, lfsOid: f.lfs?.oid ?? null });
  }
  return out;
}

const out = {};
const info = await modelInfo({ name: env.MODEL, hubUrl, accessToken });
out.modelInfo = { name: info.name, private: info.private, gated: info.gated };
out.modelFiles = await list(env.MODEL);
const weights = await downloadFile({ repo: env.MODEL, path: env.MODEL_FILE, hubUrl, accessToken });
out.modelFile = { size: weights.size, sha256: await sha256(weights) };
// A slice is fetched with a Range request: what resuming a download does.
out.modelSlice = Buffer.from(await weights.slice(2, 7).arrayBuffer()).toString("utf8");
out.missingFile = await downloadFile({ repo: env.MODEL, path: "no-such-file.bin", hubUrl, accessToken });

const dataset = { type: "dataset", name: env.DATASET };
out.datasetFiles = await list(dataset);
const csv = await downloadFile({ repo: dataset, path: env.DATASET_FILE, hubUrl, accessToken });
out.datasetFile = { size: csv.size, sha256: await sha256(csv) };

out.gated = await failure(() => downloadFile({ repo: env.GATED, path: env.MODEL_FILE, hubUrl, accessToken }));
out.hidden = await failure(() => list(env.HIDDEN));
out.anonymous = await failure(() => downloadFile({ repo: env.MODEL, path: env.MODEL_FILE, hubUrl }));

process.stdout.write(JSON.stringify(out) + "\n");
